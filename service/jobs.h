// JobManager: the tuning daemon's jobs.
//
// A job tunes operators (each with its own trial budget) or a model's tasks
// (one budget, the task scheduler deciding where it goes) on one device key,
// through tuner/tuning.h's one tuning API — the same code `ktune tune` runs
// locally — with a FarmMeasurer in place of the local measurer. Submitted
// jobs are stored in the database and run at once, concurrently, each on a
// thread of its own; within a job many batches of several tasks are in flight
// at once, so every worker of the device key stays busy (the DeviceFarm
// shares them between jobs round robin). Progress comes from the running
// engine, or from the job's records once it has ended. After a restart,
// resume() starts every unfinished job again: trials already recorded for it
// count against its budget, configs in the database are never measured
// again, and the tuners rebuild their state from them.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "db/database.h"
#include "proto/ktune.pb.h"
#include "schedule_space/target.h"
#include "workers/device_farm.h"

namespace ktune {

struct JobLimits {
  // Unfinished jobs (queued, waiting or running) at once; submit() refuses
  // more with kResourceExhausted. Jobs resumed after a restart are started
  // whatever the limit (they were accepted before).
  int max_jobs = 64;
};

class JobManager {
 public:
  JobManager(Database& db, DeviceFarm& farm, JobLimits limits = {});
  ~JobManager();  // shutdown()
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Validates, stores and starts a job; returns its id. Throws
  // FarmError: kInvalidArgument naming what is wrong with the spec;
  // kResourceExhausted at limits.max_jobs unfinished jobs, or while the
  // farm holds its most measurement items (the message names the daemon
  // flag that raises the limit); kUnavailable if the job cannot be stored
  // (full disk: the message says so).
  std::string submit(const v1::JobSpec& spec);
  // Throws FarmError(kNotFound) for an unknown id.
  v1::JobStatus status(const std::string& id) const;
  // Every job, oldest first (without a model job's estimated times).
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
  class Observer;
  void start(const std::string& id, const v1::JobSpec& spec);
  void run_job(Run& run);
  v1::JobStatus status_of(const JobRow& row, bool detailed) const;
  // The device key's target as its workers described it (now, or as stored
  // when one registered before a restart); nullopt before any did. Throws
  // ktune::Error for a stored description that does not read.
  std::optional<Target> device_target(const std::string& device_key) const;

  // Joins and forgets the runs whose thread has ended (and whose state the
  // database holds); their status comes from the database from then on.
  void reap_locked();

  Database& db_;
  DeviceFarm& farm_;
  JobLimits limits_;
  std::mutex submit_mu_;  // one submit() at a time: the limit is checked and taken at once
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Run>> runs_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace ktune
