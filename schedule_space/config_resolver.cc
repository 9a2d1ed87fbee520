#include "schedule_space/config_resolver.h"

#include <optional>

#include "schedule_space/error.h"

namespace ktune {

namespace {

ResolvedTemplate refused(ResolveProblem problem, std::string reason, const Template* tmpl = nullptr) {
  ResolvedTemplate r;
  r.tmpl = tmpl;
  r.problem = problem;
  r.reason = std::move(reason);
  return r;
}

std::string outside_space(const ConfigSpace& space, uint64_t index) {
  return "config index " + std::to_string(index) + " is outside the space (" + std::to_string(space.size()) + " configs)";
}

const char* kind_text(TargetKind kind) { return kind == TargetKind::kCuda ? "CUDA GPUs" : "CPUs"; }

}  // namespace

const Template& ResolvedTemplate::get() const {
  if (!ok()) throw Error(reason);
  return *tmpl;
}

const Config& ResolvedConfig::get() const {
  if (!ok()) throw Error(reason);
  return config;
}

ResolvedTemplate resolve_template(const std::string& name, int version) {
  for (const Template* t : all_templates()) {
    if (t->name() != name) continue;
    if (t->version() != version) {
      return refused(ResolveProblem::kOtherVersion, "template " + name + " is version " + std::to_string(t->version()) +
                                                        " in this build, not version " + std::to_string(version));
    }
    ResolvedTemplate r;
    r.tmpl = t;
    return r;
  }
  return refused(ResolveProblem::kUnknownTemplate, "template '" + name + "' is not in this build");
}

ResolvedTemplate resolve_template(const std::string& name, int version, const Workload& w) {
  ResolvedTemplate r = resolve_template(name, version);
  if (!r.ok()) return r;
  if (std::optional<std::string> why = r.tmpl->unsupported(w)) {
    return refused(ResolveProblem::kWrongWorkload, "template " + name + ": " + *why, r.tmpl);
  }
  return r;
}

ResolvedConfig resolve_config(const ConfigRef& ref, const Workload& w, const Target& t) {
  ResolvedConfig out;
  auto refuse = [&](ResolveProblem problem, std::string reason) {
    out.problem = problem;
    out.reason = std::move(reason);
    return std::move(out);
  };
  const ResolvedTemplate found = resolve_template(ref.template_name, ref.template_version, w);
  out.tmpl = found.tmpl;
  if (!found.ok()) return refuse(found.problem, found.reason);
  const Template& tmpl = *found.tmpl;
  if (tmpl.target_kind() != t.kind) {
    return refuse(ResolveProblem::kWrongTarget, "template " + tmpl.name() + " is for " + kind_text(tmpl.target_kind()) +
                                                    ", not for " + t.device_key());
  }
  try {
    out.space = tmpl.space(w, t);
  } catch (const Error& e) {
    return refuse(ResolveProblem::kWrongWorkload, "template " + tmpl.name() + ": " + e.what());
  }
  if (ref.config_index >= out.space.size()) {
    return refuse(ResolveProblem::kOutsideSpace, "template " + tmpl.name() + " version " + std::to_string(tmpl.version()) +
                                                     " for " + w.key() + ": " + outside_space(out.space, ref.config_index));
  }
  out.config = out.space.get(ref.config_index);
  if (!ref.config_text.empty()) {
    const std::string decoded = out.space.describe(out.config);
    if (decoded != ref.config_text) {
      return refuse(ResolveProblem::kOtherConfig,
                    "config #" + std::to_string(ref.config_index) + " = '" + ref.config_text + "' of template " +
                        tmpl.name() + " version " + std::to_string(tmpl.version()) + " for " + w.key() +
                        ": this build decodes it as '" + decoded + "' (the template changed without a version bump?)");
    }
  }
  return out;
}

Config config_at(const ConfigSpace& space, uint64_t index) {
  if (index >= space.size()) throw Error(outside_space(space, index));
  return space.get(index);
}

}  // namespace ktune
