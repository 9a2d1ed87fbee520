#include "service/jobs.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <iostream>
#include <random>

#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "tuner/tuner.h"
#include "workers/convert.h"
#include "workers/farm_measurer.h"

namespace ktune {

namespace {

constexpr int kMaxOps = 1000;
constexpr int kMaxTrials = 1000000;

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

}  // namespace

struct JobManager::Run {
  std::string id;
  v1::JobSpec spec;
  std::atomic<bool> cancel{false};
  std::thread thread;
  mutable std::mutex mu;
  std::string state = "queued";
  std::string message;
  std::string current;  // workload key being tuned
};

JobManager::JobManager(Database& db, DeviceFarm& farm) : db_(db), farm_(farm) {}

JobManager::~JobManager() { shutdown(); }

void JobManager::validate(const v1::JobSpec& spec) {
  if (spec.ops_size() == 0) bad("no operators (give at least one --op)");
  if (spec.ops_size() > kMaxOps) bad(std::to_string(spec.ops_size()) + " operators; at most " + std::to_string(kMaxOps));
  for (const std::string& op : spec.ops()) {
    try {
      templates_to_tune(Workload::parse(op), spec.template_name(), std::nullopt);
    } catch (const Error& e) {
      bad("operator '" + op + "': " + e.what());
    }
  }
  if (spec.device_key().empty()) bad("no device key (--device-key, e.g. cpu/amd-epyc/avx512/2t)");
  if (spec.device_key().size() > 200) bad("device key longer than 200 characters");
  if (spec.trials() <= 0 || spec.trials() > kMaxTrials) {
    bad("trials must be in 1.." + std::to_string(kMaxTrials) + ", got " + std::to_string(spec.trials()));
  }
  const std::string tuner = spec.tuner().empty() ? "xgb" : spec.tuner();
  if (tuner != "xgb" && tuner != "ga" && tuner != "random" && tuner != "grid") {
    bad("unknown tuner '" + tuner + "': accepted tuners are xgb, ga, random, grid");
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
  // Canonical operator keys, so progress matches the records.
  for (int i = 0; i < spec.ops_size(); ++i) spec.set_ops(i, Workload::parse(spec.ops(i)).key());
  const std::string id = new_job_id();
  db_.add_job(JobRow{id, wire::to_json(spec), "queued", "", 0, 0});
  start(id, spec);
  return id;
}

void JobManager::start(const std::string& id, const v1::JobSpec& spec) {
  std::lock_guard lock(mu_);
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
      std::cerr << "ktune daemon: resuming " << row.id << "\n";
      start(row.id, spec);
    } catch (const Error& e) {
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
  auto set_state = [&](const std::string& state, const std::string& message) {
    if (run.cancel) return;  // cancel() has stored the final state
    {
      std::lock_guard lock(run.mu);
      run.state = state;
      run.message = message;
    }
    db_.set_job_state(run.id, state, message);
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
      std::optional<v1::DeviceInfo> info = farm_.device(spec.device_key());
      if (!info) {
        if (std::optional<std::string> stored = db_.device(spec.device_key())) {
          v1::DeviceInfo d;
          wire::from_json(*stored, &d, "device " + spec.device_key() + " in the database");
          info = d;
        }
      }
      if (info) {
        target = wire::from_proto(info->target());
        target.key = spec.device_key();
        break;
      }
      if (stop()) return;
      if (!waiting) set_state("waiting", "waiting for a worker of device key " + spec.device_key());
      waiting = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (waiting) set_state("running", "");

    int failures = 0;
    std::string first_failure;
    for (const std::string& op : spec.ops()) {
      if (stop()) break;
      const Workload w = Workload::parse(op);
      {
        std::lock_guard lock(run.mu);
        run.current = w.key();
      }
      const std::vector<const Template*> templates = templates_to_tune(w, spec.template_name(), target.kind);
      for (size_t i = 0; i < templates.size() && !stop(); ++i) {
        const Template& tmpl = *templates[i];
        TuneOptions options;
        const int budget = even_share(spec.trials(), templates.size(), i);
        const JobTaskCounts done = db_.job_counts(run.id, w.key(), tmpl.name());
        options.final_top = spec.final_top() < 0 ? 3 : spec.final_top();
        options.trials = std::max<int>(0, budget - static_cast<int>(done.search));
        if (options.trials == 0 && (options.final_top == 0 || done.final > 0)) continue;  // finished before
        if (spec.batch_size() > 0) options.batch_size = spec.batch_size();
        options.early_stopping = spec.early_stopping();
        if (spec.repeat() > 0) options.measure.repeat = spec.repeat();
        options.seeds = !spec.no_seeds();
        options.transfer = !spec.no_transfer();
        options.job = run.id;
        options.stop = stop;
        Task task = Task::make(w, target, tmpl);
        std::unique_ptr<Tuner> tuner = make_tuner(spec.tuner(), task, spec.seed(), &db_, options.transfer);
        FarmMeasurer measurer(farm_, run.id, spec.device_key(), stop);
        TuneSummary s = tune(task, *tuner, measurer, &db_, options);
        if (!s.stopped && !s.best && s.trials > 0) {
          ++failures;
          if (first_failure.empty()) first_failure = w.key() + ": " + s.first_error;
        }
      }
    }
    if (shutting_down_) return;  // stays unfinished: resumed on restart
    if (run.cancel) return;      // cancel() stored the state
    set_state("done", failures ? std::to_string(failures) + " operator(s) had no valid candidate; first: " + first_failure
                               : "");
  } catch (const std::exception& e) {
    if (shutting_down_) return;
    set_state("failed", e.what());
  }
}

v1::JobStatus JobManager::status_of(const JobRow& row) const {
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
  *s.mutable_spec() = spec;
  s.set_state(row.state);
  s.set_message(row.message);
  s.set_created_at(row.created_at);
  s.set_updated_at(row.updated_at);
  std::string current;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(row.id);
    if (it != runs_.end()) {
      std::lock_guard run_lock(it->second->mu);
      if (!ended(row.state)) {
        s.set_state(it->second->state);
        s.set_message(it->second->message);
      }
      current = it->second->current;
    }
  }
  s.set_workers(farm_.live_workers(spec.device_key()));
  for (const std::string& op : spec.ops()) {
    v1::TaskProgress* t = s.add_tasks();
    t->set_workload_key(op);
    const JobTaskCounts c = db_.job_counts(row.id, op);
    t->set_trials_done(static_cast<int32_t>(c.search));
    t->set_trials_total(spec.trials());
    t->set_errors(static_cast<int32_t>(c.errors));
    double flops = 0;
    try {
      flops = Workload::parse(op).flops();
    } catch (const Error&) {
    }
    t->set_best_gflops(std::isfinite(c.best_cost) && c.best_cost > 0 ? flops / c.best_cost / 1e9 : 0);
    const bool finished = s.state() == "done" || c.search >= spec.trials();
    t->set_state(finished ? "done" : op == current && !ended(s.state()) ? "running" : "pending");
  }
  return s;
}

v1::JobStatus JobManager::status(const std::string& id) const {
  std::optional<JobRow> row = db_.job(id);
  if (!row) throw FarmError(FarmError::kNotFound, "no job '" + id + "'");
  return status_of(*row);
}

std::vector<v1::JobStatus> JobManager::list() const {
  std::vector<v1::JobStatus> out;
  for (const JobRow& row : db_.jobs()) out.push_back(status_of(row));
  return out;
}

v1::JobStatus JobManager::cancel(const std::string& id) {
  std::optional<JobRow> row = db_.job(id);
  if (!row) throw FarmError(FarmError::kNotFound, "no job '" + id + "'");
  if (ended(row->state)) {
    throw FarmError(FarmError::kFailedPrecondition, "job " + id + " has already ended (" + row->state + ")");
  }
  db_.set_job_state(id, "cancelled", "cancelled by a client");
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
