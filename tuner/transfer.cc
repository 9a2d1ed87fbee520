#include "tuner/transfer.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "db/record_config.h"
#include "schedule_space/config_resolver.h"
#include "tuner/tuner.h"

namespace ktune {

std::shared_ptr<const TransferModel> TransferModel::train(const std::vector<Record>& history,
                                                          const Target& target, const TransferOptions& options) {
  // Usable records, grouped by workload, one per distinct config.
  struct Row {
    std::vector<float> features;
    double throughput;
  };
  std::map<std::string, std::vector<Row>> by_workload;
  std::set<std::tuple<std::string, std::string, uint64_t>> seen;
  size_t used = 0;
  // Spaces are costly to build: one per (workload, template) of the history.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const ConfigSpace>> spaces;
  for (const Record& r : history) {
    if (used >= options.max_records) break;
    if (!usable(r)) continue;
    if (!seen.insert({r.workload_key, r.template_name, r.config_index}).second) continue;
    try {
      const Workload w = Workload::parse(r.workload_key);
      const Template& tmpl = resolve_template(r.template_name, r.template_version, w).get();
      std::shared_ptr<const ConfigSpace>& space = spaces[{r.workload_key, r.template_name}];
      if (!space) space = std::make_shared<const ConfigSpace>(tmpl.space(w, target));
      // The index names this config only where the space decodes it as recorded.
      const Config c = config_at(*space, r.config_index);
      if (!r.config_text.empty() && space->describe(c) != r.config_text) continue;
      const ir::Program p = tmpl.instantiate(w, target, *space, c);
      by_workload[r.workload_key].push_back({cost_model::curve_features(p), 1.0 / r.result.mean_cost()});
      ++used;
    } catch (const Error&) {
      continue;  // a workload or config this build cannot take: not history
    }
  }
  cost_model::Matrix x;
  std::vector<float> y;
  std::vector<unsigned> groups;
  for (auto& [workload, rows] : by_workload) {
    double best = 0;
    for (const Row& row : rows) best = std::max(best, row.throughput);
    for (Row& row : rows) {
      x.push_back(std::move(row.features));
      y.push_back(static_cast<float>(row.throughput / best));
    }
    groups.push_back(static_cast<unsigned>(rows.size()));
  }
  if (x.size() < std::max<size_t>(options.min_records, 2)) return nullptr;
  cost_model::XgbModel model(options.model);
  model.fit(x, y, {}, model.options().objective == "rank:pairwise" ? groups : std::vector<unsigned>{});
  auto out = std::shared_ptr<TransferModel>(new TransferModel(std::move(model)));
  out->records_ = x.size();
  out->workloads_ = by_workload.size();
  out->rows_ = std::move(x);
  out->scores_ = std::move(y);
  out->groups_ = std::move(groups);
  return out;
}

}  // namespace ktune
