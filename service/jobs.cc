#include "service/jobs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <optional>
#include <random>

#include "db/stored_device.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "tuner/tuning.h"
#include "workers/convert.h"
#include "workers/farm_measurer.h"

namespace ktune {

namespace {

constexpr int kMaxOps = 1000;
constexpr int kMaxTrials = 1000000;
constexpr int kMaxWeight = 1000000;

[[noreturn]] void bad(const std::string& why) { throw FarmError(FarmError::kInvalidArgument, "job spec: " + why); }

std::string new_job_id() {
  std::random_device rd;
  char buf[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffff);
  return std::string("job-") + buf + "-" + suffix;
}

bool ended(const std::string& state) { return state == "done" || state == "cancelled" || state == "failed"; }

v1::JobSpec parse_spec(const JobRow& row) {
  v1::JobSpec spec;
  wire::from_json(row.spec, &spec, "job " + row.id + " in the database has a malformed spec");
  return spec;
}

bool is_model(const v1::JobSpec& spec) { return spec.tasks_size() > 0; }

// The job's workloads with their weights (operators: weight 1).
std::vector<TuningTask> tasks_of(const v1::JobSpec& spec) {
  std::vector<TuningTask> out;
  for (const std::string& op : spec.ops()) out.push_back(TuningTask{Workload::parse(op), 1});
  for (const v1::ModelTask& t : spec.tasks()) out.push_back(TuningTask{Workload::parse(t.workload_key()), t.weight()});
  return out;
}

double or_zero(double s) { return std::isfinite(s) ? s : 0; }

}  // namespace

struct JobManager::Run {
  std::string id;
  v1::JobSpec spec;
  std::atomic<bool> cancel{false};
  std::atomic<bool> finished{false};  // run_job has returned
  std::atomic<bool> state_stored{true};  // the database holds its latest state
  std::thread thread;
  mutable std::mutex mu;
  std::string state = "queued";
  std::string message;
  std::optional<TuningProgress> progress;  // the engine's latest snapshot
  std::vector<Workload> workloads;         // what progress's tasks point at
};

// Keeps the running engine's latest snapshot for status() to read.
class JobManager::Observer : public TuningObserver {
 public:
  explicit Observer(Run& run) : run_(run) {}
  void started(const TuningProgress& p) override { keep(p); }
  void progress(const TuningProgress& p) override { keep(p); }

 private:
  void keep(const TuningProgress& p) {
    std::lock_guard lock(run_.mu);
    run_.progress = p;
    // The snapshot's workload pointers point into the engine, which ends
    // before the run does; keep copies to point at instead.
    run_.workloads.clear();
    for (const TuningProgress::Task& t : p.tasks) run_.workloads.push_back(*t.workload);
    for (size_t i = 0; i < run_.progress->tasks.size(); ++i) run_.progress->tasks[i].workload = &run_.workloads[i];
  }
  Run& run_;
};

JobManager::JobManager(Database& db, DeviceFarm& farm, JobLimits limits) : db_(db), farm_(farm), limits_(limits) {}

JobManager::~JobManager() { shutdown(); }

void JobManager::validate(const v1::JobSpec& spec) {
  const bool model = is_model(spec);
  if (model && spec.ops_size() > 0) bad("both operators and model tasks; a job tunes one or the other");
  if (!model && spec.ops_size() == 0) bad("no operators (give at least one --op, or a model)");
  const int n = model ? spec.tasks_size() : spec.ops_size();
  if (n > kMaxOps) bad(std::to_string(n) + (model ? " tasks" : " operators") + "; at most " + std::to_string(kMaxOps));
  auto check_workload = [&](const std::string& key, const std::string& what) {
    try {
      templates_to_tune(Workload::parse(key), spec.template_name(), std::nullopt);
    } catch (const Error& e) {
      bad(what + " '" + key + "': " + e.what());
    }
  };
  for (const std::string& op : spec.ops()) check_workload(op, "operator");
  for (const v1::ModelTask& t : spec.tasks()) {
    check_workload(t.workload_key(), "task");
    if (t.weight() < 1 || t.weight() > kMaxWeight) {
      bad("task '" + t.workload_key() + "' has weight " + std::to_string(t.weight()) + "; weights are in 1.." +
          std::to_string(kMaxWeight));
    }
  }
  if (spec.model().size() > 1000) bad("model name longer than 1000 characters");
  if (!model && (!spec.model().empty() || spec.task_cap() != 0)) bad("a model name and task cap are for model jobs");
  if (spec.task_cap() < 0) bad("task cap must be >= 0");
  if (spec.device_key().empty()) bad("no device key (--device-key, e.g. cpu/amd-epyc/avx512/2t)");
  if (spec.device_key().size() > 200) bad("device key longer than 200 characters");
  if (spec.trials() <= 0 || spec.trials() > kMaxTrials) {
    bad("trials must be in 1.." + std::to_string(kMaxTrials) + ", got " + std::to_string(spec.trials()));
  }
  const std::string tuner = spec.tuner().empty() ? "xgb" : spec.tuner();
  try {
    check_tuner_name(tuner);
  } catch (const Error& e) {
    bad(e.what());
  }
  if (spec.batch_size() < 0 || spec.batch_size() > 1024) bad("batch size must be in 0..1024 (0: 16)");
  if (spec.early_stopping() < 0) bad("early stopping must be >= 0");
  if (spec.final_top() < -1 || spec.final_top() > 100) bad("final top must be in -1..100 (-1: 3)");
  if (spec.repeat() < 0 || spec.repeat() > 1000) bad("repeat must be in 0..1000 (0: default)");
}

std::string JobManager::submit(const v1::JobSpec& spec_in) {
  validate(spec_in);
  v1::JobSpec spec = spec_in;
  if (spec.tuner().empty()) spec.set_tuner("xgb");
  // Canonical workload keys, so progress matches the records.
  for (int i = 0; i < spec.ops_size(); ++i) spec.set_ops(i, Workload::parse(spec.ops(i)).key());
  for (int i = 0; i < spec.tasks_size(); ++i) {
    spec.mutable_tasks(i)->set_workload_key(Workload::parse(spec.tasks(i).workload_key()).key());
  }
  std::lock_guard submitting(submit_mu_);
  {
    std::lock_guard lock(mu_);
    reap_locked();
    // A cancelled run is over for the user, though its thread may take a moment.
    const auto unfinished = std::count_if(runs_.begin(), runs_.end(),
                                          [](const auto& r) { return !r.second->finished && !r.second->cancel; });
    if (unfinished >= limits_.max_jobs) {
      throw FarmError(FarmError::kResourceExhausted,
                      "the daemon already has " + std::to_string(unfinished) +
                          " unfinished jobs (its --max-jobs limit): wait for one to end, cancel one (ktune cancel "
                          "ID), or restart the daemon with a larger --max-jobs");
    }
  }
  if (farm_.queue_full()) {
    throw FarmError(FarmError::kResourceExhausted,
                    "the device farm holds " + std::to_string(farm_.items()) +
                        " measurement items, its most (the daemon's --max-queued-items limit): wait for the "
                        "workers to catch up, or restart the daemon with a larger --max-queued-items");
  }
  const std::string id = new_job_id();
  try {
    db_.add_job(JobRow{id, wire::to_json(spec), "queued", "", 0, 0});
  } catch (const Error& e) {
    spdlog::error("cannot store a submitted job: {}", e.what());
    throw FarmError(FarmError::kUnavailable, std::string("cannot store the job: ") + e.what());
  }
  spdlog::info("job {} submitted: {} {} on {}, {} trials{}, tuner {}", id,
               is_model(spec) ? spec.tasks_size() : spec.ops_size(), is_model(spec) ? "model tasks" : "operators",
               spec.device_key(), spec.trials(), is_model(spec) ? " for the model" : " each", spec.tuner());
  start(id, spec);
  return id;
}

void JobManager::reap_locked() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    // One whose state the database lacks stays: status() reads it here.
    if (!it->second->finished || !it->second->state_stored) {
      ++it;
      continue;
    }
    if (it->second->thread.joinable()) it->second->thread.join();  // it has returned: no wait
    it = runs_.erase(it);
  }
}

void JobManager::start(const std::string& id, const v1::JobSpec& spec) {
  std::lock_guard lock(mu_);
  reap_locked();
  if (shutting_down_ || runs_.count(id)) return;
  auto run = std::make_unique<Run>();
  run->id = id;
  run->spec = spec;
  Run* r = run.get();
  runs_.emplace(id, std::move(run));
  r->thread = std::thread([this, r] { run_job(*r); });
}

void JobManager::resume() {
  for (const JobRow& row : db_.jobs()) {
    if (ended(row.state)) continue;
    try {
      v1::JobSpec spec = parse_spec(row);
      validate(spec);
      spdlog::info("job {}: resuming", row.id);
      start(row.id, spec);
    } catch (const Error& e) {
      spdlog::error("job {}: cannot resume: {}", row.id, e.what());
      db_.set_job_state(row.id, "failed", std::string("cannot resume: ") + e.what());
    }
  }
}

void JobManager::shutdown() {
  shutting_down_ = true;
  std::map<std::string, std::unique_ptr<Run>> runs;
  {
    std::lock_guard lock(mu_);
    runs.swap(runs_);
  }
  for (auto& [id, run] : runs) {
    if (run->thread.joinable()) run->thread.join();
  }
}

void JobManager::run_job(Run& run) {
  struct Finished {
    Run& run;
    ~Finished() { run.finished = true; }
  } finished{run};
  // The state is kept in memory first, so status() shows it even when the
  // database cannot store it (full disk); that is logged, never thrown out
  // of the job's thread.
  auto set_state = [&](const std::string& state, const std::string& message) {
    if (run.cancel) return;  // cancel() has stored the final state
    {
      std::lock_guard lock(run.mu);
      run.state = state;
      run.message = message;
    }
    try {
      db_.set_job_state(run.id, state, message);
      run.state_stored = true;
    } catch (const std::exception& e) {
      run.state_stored = false;
      spdlog::error("job {}: cannot store its state '{}': {}", run.id, state, e.what());
    }
  };
  auto stop = [&] { return run.cancel.load() || shutting_down_.load(); };
  const v1::JobSpec& spec = run.spec;
  try {
    set_state("running", "");
    // The device's description comes from its workers (now, or as stored
    // when one registered before a restart).
    Target target;
    bool waiting = false;
    while (true) {
      if (std::optional<Target> t = device_target(spec.device_key())) {
        target = *t;
        break;
      }
      if (stop()) return;
      if (!waiting) {
        spdlog::info("job {}: waiting for a worker of device key {}", run.id, spec.device_key());
        set_state("waiting", "waiting for a worker of device key " + spec.device_key());
      }
      waiting = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (waiting) set_state("running", "");
    spdlog::info("job {}: running on {}", run.id, spec.device_key());

    TuningRequest request;
    request.tasks = tasks_of(spec);
    request.target = target;
    request.budget = is_model(spec) ? Budget::kModel : Budget::kPerWorkload;
    TuneOptions& options = request.options;
    options.trials = spec.trials();
    if (spec.batch_size() > 0) options.batch_size = spec.batch_size();
    options.early_stopping = spec.early_stopping();
    options.final_top = spec.final_top() < 0 ? 3 : spec.final_top();
    if (spec.repeat() > 0) options.measure.repeat = spec.repeat();
    options.seeds = !spec.no_seeds();
    options.transfer = !spec.no_transfer();
    options.job = run.id;
    options.stop = stop;
    request.tuner = spec.tuner();
    request.seed = spec.seed();
    request.template_name = spec.template_name();
    request.task_cap = spec.task_cap();
    FarmMeasurer measurer(farm_, run.id, spec.device_key(), stop);
    DatabaseLog log(db_);
    Observer observer(run);
    const TuningResult result = tune(request, measurer, &log, &observer);
    if (shutting_down_) {  // stays unfinished: resumed on restart
      spdlog::info("job {}: stopped with the daemon after {} trials; it resumes at the next start", run.id,
                   result.trials_before + result.trials);
      return;
    }
    if (run.cancel) return;  // cancel() stored the state
    int failures = 0;
    std::string first_failure;
    for (const WorkloadResult& w : result.workloads) {
      if (!w.best && w.trials > 0 && !std::isfinite(w.best_s)) {
        ++failures;
        if (first_failure.empty()) first_failure = w.workload.key() + ": " + w.first_error;
      }
    }
    std::string message = failures ? std::to_string(failures) + " workload(s) had no valid candidate; first: " + first_failure
                                   : "";
    spdlog::info("job {}: done, {} trials in {:.1f} s (most in flight at once: {}){}", run.id,
                 result.trials_before + result.trials, result.elapsed_s, result.max_in_flight,
                 message.empty() ? "" : "; " + message);
    set_state("done", message);
  } catch (const std::exception& e) {
    if (shutting_down_) return;
    spdlog::error("job {}: failed: {}", run.id, e.what());
    set_state("failed", e.what());
  }
}

std::optional<Target> JobManager::device_target(const std::string& device_key) const {
  std::optional<Target> target;
  if (std::optional<v1::DeviceInfo> info = farm_.device(device_key)) {
    target = wire::from_proto(info->target());
  } else if (std::optional<DeviceDescription> stored = stored_device(db_, device_key)) {
    target = stored->target;
  }
  if (target) target->key = device_key;
  return target;
}

v1::JobStatus JobManager::status_of(const JobRow& row, bool detailed) const {
  v1::JobStatus s;
  s.set_job_id(row.id);
  v1::JobSpec spec;
  try {
    spec = parse_spec(row);
  } catch (const Error& e) {
    s.set_state("failed");
    s.set_message(e.what());
    return s;
  }
  const bool model = is_model(spec);
  *s.mutable_spec() = spec;
  s.set_kind(model ? "model" : "ops");
  s.set_state(row.state);
  s.set_message(row.message);
  s.set_created_at(row.created_at);
  s.set_updated_at(row.updated_at);
  s.set_workers(farm_.live_workers(spec.device_key()));
  std::optional<TuningProgress> live;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(row.id);
    if (it != runs_.end()) {
      std::lock_guard run_lock(it->second->mu);
      if (!ended(row.state)) {
        s.set_state(it->second->state);
        s.set_message(it->second->message);
        live = it->second->progress;
      }
    }
  }
  std::vector<TuningTask> tasks;
  try {
    tasks = tasks_of(spec);
  } catch (const Error& e) {
    s.set_message(e.what());
    return s;
  }
  // Not running: what the records say; the model's times need the device.
  std::vector<TaskTimes> times(tasks.size());
  if (!live && detailed) {
    std::optional<Target> target;
    try {
      target = device_target(spec.device_key());
    } catch (const Error&) {
    }
    if (target) {
      DatabaseLog log(db_);
      times = task_times(tasks, *target, log);
    }
  }
  int done_total = 0, in_flight_total = 0;
  double estimated = 0, untuned = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const std::string key = tasks[i].workload.key();
    v1::TaskProgress* t = s.add_tasks();
    t->set_workload_key(key);
    t->set_weight(tasks[i].weight);
    t->set_trials_total(model ? 0 : spec.trials());
    double best_s = kNoTime, default_s = kNoTime;
    bool task_done = false;
    if (live && i < live->tasks.size()) {
      const TuningProgress::Task& p = live->tasks[i];
      t->set_trials_done(p.trials);
      t->set_in_flight(p.in_flight);
      t->set_errors(p.errors);
      best_s = p.best_s;
      default_s = p.default_s;
      task_done = p.done;
    } else {
      const JobTaskCounts c = db_.job_counts(row.id, key);
      t->set_trials_done(static_cast<int32_t>(c.search));
      t->set_errors(static_cast<int32_t>(c.errors));
      best_s = std::min(times[i].best_s, c.best_cost);
      default_s = times[i].default_s;
      task_done = s.state() == "done" || (!model && c.search >= spec.trials());
    }
    t->set_best_s(or_zero(best_s));
    t->set_default_s(or_zero(default_s));
    t->set_best_gflops(std::isfinite(best_s) && best_s > 0 ? tasks[i].workload.flops() / best_s / 1e9 : 0);
    t->set_state(task_done ? "done" : t->in_flight() > 0 ? "running" : "pending");
    done_total += t->trials_done();
    in_flight_total += t->in_flight();
    if (std::isfinite(best_s)) estimated += tasks[i].weight * best_s;
    if (std::isfinite(default_s)) untuned += tasks[i].weight * default_s;
  }
  s.set_trials_done(done_total);
  s.set_in_flight(in_flight_total);
  s.set_trials_total(model ? spec.trials() : spec.trials() * static_cast<int>(tasks.size()));
  if (model) {
    s.set_estimated_s(estimated);
    s.set_untuned_s(untuned);
  }
  return s;
}

v1::JobStatus JobManager::status(const std::string& id) const {
  std::optional<JobRow> row = db_.job(id);
  if (!row) throw FarmError(FarmError::kNotFound, "no job '" + id + "'");
  return status_of(*row, true);
}

std::vector<v1::JobStatus> JobManager::list() const {
  std::vector<v1::JobStatus> out;
  for (const JobRow& row : db_.jobs()) out.push_back(status_of(row, false));
  return out;
}

v1::JobStatus JobManager::cancel(const std::string& id) {
  std::optional<JobRow> row = db_.job(id);
  if (!row) throw FarmError(FarmError::kNotFound, "no job '" + id + "'");
  if (ended(row->state)) {
    throw FarmError(FarmError::kFailedPrecondition, "job " + id + " has already ended (" + row->state + ")");
  }
  db_.set_job_state(id, "cancelled", "cancelled by a client");
  spdlog::info("job {}: cancelled by a client", id);
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(id);
    if (it != runs_.end()) {
      it->second->cancel = true;
      std::lock_guard run_lock(it->second->mu);
      it->second->state = "cancelled";
      it->second->message = "cancelled by a client";
    }
  }
  return status(id);
}

}  // namespace ktune
