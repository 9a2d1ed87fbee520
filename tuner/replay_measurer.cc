#include "tuner/replay_measurer.h"

#include <utility>

namespace ktune {

ReplayMeasurer::ReplayMeasurer(Lookup lookup) : lookup_(std::move(lookup)) {}

std::vector<MeasureResult> ReplayMeasurer::measure(const std::vector<MeasureInput>& inputs,
                                                   const MeasureOptions&) {
  std::vector<MeasureResult> results;
  results.reserve(inputs.size());
  for (const MeasureInput& in : inputs) {
    std::optional<MeasureResult> recorded = lookup_(in);
    if (recorded) {
      ++hits_;
      results.push_back(std::move(*recorded));
    } else {
      ++misses_;
      MeasureResult r;
      r.error = MeasureError::kNotRecorded;
      r.error_message = "config #" + std::to_string(in.config.index) + " of " +
                        (in.tmpl ? in.tmpl->name() : std::string("?")) + " was never measured for " +
                        in.workload.key() + " on " + in.target.device_key() + " in the replayed records";
      results.push_back(std::move(r));
    }
    results.back().worker = "replay";
  }
  return results;
}

namespace {

// (template name, template version, config index) -> recorded result, and
// whether it came from a "search" record.
struct Recorded {
  MeasureResult result;
  bool from_search = false;
};
using RecordedTable = std::map<std::tuple<std::string, int, uint64_t>, Recorded>;

RecordedTable read_table(const Database& db, const std::string& workload, const std::string& device) {
  RecordedTable table;
  std::vector<Record> records = db.history(workload, device);  // newest first
  // Oldest first, so the first measurement of a config is the one kept; a
  // "search" record replaces an earlier record of another kind.
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    auto key = std::make_tuple(it->template_name, it->template_version, it->config_index);
    const bool search = it->kind == "search";
    auto found = table.find(key);
    if (found == table.end() || (!found->second.from_search && search)) table[key] = {it->result, search};
  }
  return table;
}

}  // namespace

std::unique_ptr<ReplayMeasurer> ReplayMeasurer::from_database(std::shared_ptr<const Database> db) {
  auto tables = std::make_shared<std::map<std::pair<std::string, std::string>, RecordedTable>>();
  return std::make_unique<ReplayMeasurer>(
      [db = std::move(db), tables](const MeasureInput& in) -> std::optional<MeasureResult> {
        const auto task_key = std::make_pair(in.workload.key(), in.target.device_key());
        auto it = tables->find(task_key);
        if (it == tables->end()) {
          it = tables->emplace(task_key, read_table(*db, task_key.first, task_key.second)).first;
        }
        if (!in.tmpl) return std::nullopt;
        auto found = it->second.find(std::make_tuple(in.tmpl->name(), in.tmpl->version(), in.config.index));
        if (found == it->second.end()) return std::nullopt;
        return found->second.result;
      });
}

}  // namespace ktune
