// JobManager: the tuning daemon's jobs.
//
// A job tunes a list of operators on one device key, each with a trial
// budget, a tuner and its options. Submitted jobs are stored in the
// database and run at once, concurrently, each on its own thread with its
// own tuners measuring through the DeviceFarm (which shares a device key's
// workers between jobs round robin). Progress comes from the job's records.
// After a restart, resume() starts every unfinished job again: trials
// already recorded for it count against its budget, configs in the database
// are never measured again, and the tuners rebuild their state from them.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "db/database.h"
#include "proto/ktune.pb.h"
#include "workers/device_farm.h"

namespace ktune {

class JobManager {
 public:
  JobManager(Database& db, DeviceFarm& farm);
  ~JobManager();  // shutdown()
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Validates, stores and starts a job; returns its id. Throws
  // FarmError(kInvalidArgument) naming what is wrong with the spec.
  std::string submit(const v1::JobSpec& spec);
  // Throws FarmError(kNotFound) for an unknown id.
  v1::JobStatus status(const std::string& id) const;
  std::vector<v1::JobStatus> list() const;
  // Stops a queued or running job (its records stay). Throws kNotFound, or
  // kFailedPrecondition for a job that has already ended.
  v1::JobStatus cancel(const std::string& id);
  // Starts the database's unfinished jobs (after a restart).
  void resume();
  // Stops every running job without ending it: a later resume() goes on.
  void shutdown();

  // Throws FarmError(kInvalidArgument) unless the spec can run.
  static void validate(const v1::JobSpec& spec);

 private:
  struct Run;
  void start(const std::string& id, const v1::JobSpec& spec);
  void run_job(Run& run);
  v1::JobStatus status_of(const JobRow& row) const;

  Database& db_;
  DeviceFarm& farm_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Run>> runs_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace ktune
