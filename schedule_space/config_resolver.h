// The one answer to "which config of which template version does this name":
// a record, an export entry or a farm item stores (template name, template
// version, config index), and a config index names a config within one
// version of one template's space only. Every reader asks here, so a record
// this build cannot use is refused the same way, for the same reason,
// everywhere.
//
// Safe to call from several threads (templates are stateless).
#pragma once

#include <cstdint>
#include <string>

#include "schedule_space/config_space.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune {

// Why a stored (template, version, config index) names nothing this build
// can use.
enum class ResolveProblem {
  kNone,
  kUnknownTemplate,      // no template of that name in this build
  kOtherVersion,         // the template is at another version here
  kUnreadableWorkload,   // the workload key does not parse (record level, db/record_config.h)
  kWrongWorkload,        // the template does not take the workload (another operator, a shape it does not handle)
  kWrongTarget,          // the template is for another target kind
  kOutsideSpace,         // the index is past the end of the space for that workload and target
  kOtherConfig,          // the index decodes to another config than the stored text
};

// What a record stores of its config.
struct ConfigRef {
  std::string template_name;
  int template_version = 0;
  uint64_t config_index = 0;
  // ConfigSpace::describe() of the config when it was stored; "" = not
  // checked. A template whose knobs changed without a version bump decodes
  // the index as another config: this text catches it.
  std::string config_text;
};

// A template, or why none.
struct ResolvedTemplate {
  const Template* tmpl = nullptr;  // set iff ok()
  ResolveProblem problem = ResolveProblem::kNone;
  std::string reason;              // one sentence naming the template and the problem; "" iff ok()

  bool ok() const { return problem == ResolveProblem::kNone; }
  // The template; throws ktune::Error(reason) if !ok().
  const Template& get() const;
};

// A config, or why none.
struct ResolvedConfig {
  // The template at the version named: set unless the problem is
  // kUnknownTemplate, kOtherVersion or kUnreadableWorkload.
  const Template* tmpl = nullptr;
  ConfigSpace space;  // tmpl's space for the workload and target, where it was built
  Config config;      // the config named; valid iff ok()
  ResolveProblem problem = ResolveProblem::kNone;
  std::string reason;  // "" iff ok()

  bool ok() const { return problem == ResolveProblem::kNone; }
  // The config; throws ktune::Error(reason) if !ok().
  const Config& get() const;
};

// The template called name at exactly version in this build. Reasons read
// "template 'X' is not in this build" and "template X is version 3 in this
// build, not version 2".
ResolvedTemplate resolve_template(const std::string& name, int version);

// As above, and the template takes workload w (its operator and shape,
// Template::unsupported): "template X: <why it does not take w>".
ResolvedTemplate resolve_template(const std::string& name, int version, const Workload& w);

// The config ref names for workload w on target t: the template as above, for
// t's kind, and the config at ref.config_index of its space for (w, t), which
// describes as ref.config_text where that is given. Never throws for a ref
// this build cannot use; the result says why.
ResolvedConfig resolve_config(const ConfigRef& ref, const Workload& w, const Target& t);

// The config at index of a space already built (for callers that keep spaces,
// such as the farm worker). Throws ktune::Error "config index N is outside
// the space (M configs)" past its end.
Config config_at(const ConfigSpace& space, uint64_t index);

}  // namespace ktune
