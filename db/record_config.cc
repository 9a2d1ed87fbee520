#include "db/record_config.h"

#include <optional>

#include "schedule_space/error.h"
#include "schedule_space/workload.h"

namespace ktune {

bool template_current(const Record& r) { return resolve_template(r.template_name, r.template_version).ok(); }

bool usable(const Record& r) { return r.result.ok() && template_current(r); }

ResolvedConfig resolve(const Record& r, const Target& t) {
  std::optional<Workload> w;
  try {
    w = Workload::parse(r.workload_key);
  } catch (const Error& e) {
    ResolvedConfig out;
    out.problem = ResolveProblem::kUnreadableWorkload;
    out.reason = "workload '" + r.workload_key + "': " + e.what();
    return out;
  }
  return resolve_config(ConfigRef{r.template_name, r.template_version, r.config_index, r.config_text}, *w, t);
}

}  // namespace ktune
