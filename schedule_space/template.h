// Schedule templates: for one (operator, target kind), a ConfigSpace and a
// way to instantiate a loop-nest Program from any config of it.
//
// Templates are stateless singletons registered in a table; they are safe to
// use from several threads. The template's name and version are part of every
// record: a template whose generated code changes meaning bumps its version.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "schedule_space/config_space.h"
#include "schedule_space/ir.h"
#include "schedule_space/target.h"
#include "schedule_space/workload.h"

namespace ktune {

class Template {
 public:
  virtual ~Template() = default;
  virtual std::string name() const = 0;  // e.g. "matmul_cpu_packed"
  virtual int version() const = 0;
  virtual OpKind op() const = 0;
  virtual TargetKind target_kind() const = 0;

  // Why this template cannot take workload w at all (wrong operator, or a
  // shape outside what a specialized template handles, e.g. a 1x1 conv2d
  // template given a 3x3 conv), or nullopt if it can. space() and
  // instantiate() throw ktune::Error for such a workload; check() returns
  // this reason.
  virtual std::optional<std::string> unsupported(const Workload& w) const {
    if (w.op() != op()) return name() + " does not take " + w.key();
    return std::nullopt;
  }

  // The space for this workload and target. Deterministic: the same inputs
  // give the same space (indices are stable across processes and machines
  // with the same target vector width and thread count).
  virtual ConfigSpace space(const Workload& w, const Target& t) const = 0;

  // Cheap check, before anything is built: nullopt if the config can be
  // instantiated, else the reason it is invalid.
  virtual std::optional<std::string> check(const Workload& w, const Target& t,
                                           const ConfigSpace& space, const Config& c) const = 0;

  // A few configs an analytical model of the target expects to be good (for
  // a GEMM: a register tile that fills the vector registers, k blocks that
  // fit L1, m blocks that fit L2), best guess first. The tuning loop measures
  // them before its search, so even a small budget starts from a sound
  // kernel; search then has to beat them. Every seed passes check(). The
  // default has none.
  virtual std::vector<Config> seed_configs(const Workload& w, const Target& t,
                                           const ConfigSpace& space) const {
    (void)w, (void)t, (void)space;
    return {};
  }

  // Throws ktune::Error if check() would fail.
  virtual ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                                  const Config& c) const = 0;
};

// All registered templates.
const std::vector<const Template*>& all_templates();
// Templates for an operator on a target kind, the default first. Some may
// not take every shape of the operator (see Template::unsupported); prefer
// the overload below when the workload is known.
std::vector<const Template*> templates_for(OpKind op, TargetKind kind);
// The templates that take workload w on a target kind, the best default
// first: a template specialized for w's shape (e.g. 1x1 conv2d through the
// GEMM path) comes before the operator's general one.
std::vector<const Template*> templates_for(const Workload& w, TargetKind kind);
// Throws ktune::Error listing the known names if there is none called name.
const Template& find_template(const std::string& name);
// The templates to tune w with: the one named (checked: its operator, that it
// takes w, and its target kind when kind is given), or, with no name, every
// template of kind (the CPU when not given) that takes w, as templates_for
// orders them. Throws ktune::Error naming the problem.
std::vector<const Template*> templates_to_tune(const Workload& w, const std::string& template_name,
                                               std::optional<TargetKind> kind);

}  // namespace ktune
