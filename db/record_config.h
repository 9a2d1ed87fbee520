// Which config of which template version a stored Record names, asked of the
// one resolver (schedule_space/config_resolver.h), so that bests, exports,
// imports, benchmarks and transfer learning all count the same records as
// usable.
#pragma once

#include "db/database.h"
#include "schedule_space/config_resolver.h"
#include "schedule_space/target.h"

namespace ktune {

// Whether this build has r's template at the version that measured it: a
// config index names a config within one template version only.
bool template_current(const Record& r);

// Whether r counts as a result here: a successful measurement of a current
// template (template_current). What bests, exports, benchmarks and transfer
// learning take.
bool usable(const Record& r);

// r's config for its workload on target t: resolve_config with r's template,
// version, index and config text. A workload key that does not parse is
// ResolveProblem::kUnreadableWorkload. Never throws for a record this build
// cannot use; the result says why.
ResolvedConfig resolve(const Record& r, const Target& t);

}  // namespace ktune
