// TuningLog: what tuning reads of earlier measurements and where it writes
// new ones. The tuning engine talks only to this interface; DatabaseLog is
// the SQLite tuning log behind it (the embedded default and the daemon).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "db/database.h"

namespace ktune {

class TuningLog {
 public:
  virtual ~TuningLog() = default;

  // --- the sink ---
  // Stores one record and fills in its id. Throws ktune::Error when it
  // cannot (the caller's run then ends; nothing stored before is lost).
  virtual void store(Record& r) = 0;
  // Marks a stored record the best of its (workload, device key) unless
  // keep_current is true for the pair's current best (another record):
  // decided and written at once (Database::mark_best), so a concurrent
  // writer's mark is never overwritten unseen. Returns whether it marked.
  virtual bool mark_best(const Record& r, const std::function<bool(const Record& current)>& keep_current) = 0;

  // --- what was measured before ---
  // Records of a workload on a device key, newest first.
  virtual std::vector<Record> history(const std::string& workload_key, const std::string& device_key) const = 0;
  // The marked best of (workload, device key), else its fastest ok record.
  virtual std::optional<Record> best(const std::string& workload_key, const std::string& device_key) const = 0;
  // Valid records of other workloads on a device key, for transfer learning
  // (Database::device_history).
  virtual std::vector<Record> device_history(const std::string& device_key, const std::string& exclude_workload,
                                             const std::string& preferred_op, int limit) const = 0;
  // What a job has measured for a workload (of one template if named).
  virtual JobTaskCounts job_counts(const std::string& job, const std::string& workload_key,
                                   const std::string& template_name = "") const = 0;
};

// A TuningLog over a Database (which must outlive it). Thread-safe, as the
// Database is.
class DatabaseLog : public TuningLog {
 public:
  explicit DatabaseLog(Database& db) : db_(db) {}
  void store(Record& r) override;
  bool mark_best(const Record& r, const std::function<bool(const Record& current)>& keep_current) override;
  std::vector<Record> history(const std::string& workload_key, const std::string& device_key) const override;
  std::optional<Record> best(const std::string& workload_key, const std::string& device_key) const override;
  std::vector<Record> device_history(const std::string& device_key, const std::string& exclude_workload,
                                     const std::string& preferred_op, int limit) const override;
  JobTaskCounts job_counts(const std::string& job, const std::string& workload_key,
                           const std::string& template_name = "") const override;

 private:
  Database& db_;
};

}  // namespace ktune
