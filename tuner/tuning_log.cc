#include "tuner/tuning_log.h"

namespace ktune {

void DatabaseLog::store(Record& r) {
  std::vector<Record> one = {std::move(r)};
  db_.insert(one);
  r = std::move(one[0]);
}

bool DatabaseLog::mark_best(const Record& r, const std::function<bool(const Record& current)>& keep_current) {
  return db_.mark_best(r.id, keep_current);
}

std::vector<Record> DatabaseLog::history(const std::string& workload_key, const std::string& device_key) const {
  return db_.history(workload_key, device_key);
}

std::optional<Record> DatabaseLog::best(const std::string& workload_key, const std::string& device_key) const {
  return db_.best(workload_key, device_key);
}

std::vector<Record> DatabaseLog::device_history(const std::string& device_key, const std::string& exclude_workload,
                                                const std::string& preferred_op, int limit) const {
  return db_.device_history(device_key, exclude_workload, preferred_op, limit);
}

JobTaskCounts DatabaseLog::job_counts(const std::string& job, const std::string& workload_key,
                                      const std::string& template_name) const {
  return db_.job_counts(job, workload_key, template_name);
}

}  // namespace ktune
