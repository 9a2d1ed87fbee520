// The one tuning API: tune workloads, or a model's tasks within one budget.
//
// `ktune tune` (a local measurer, the embedded database) and the daemon's
// jobs (a FarmMeasurer, the daemon's database) call the same functions; they
// differ only in the Measurer and the TuningLog they pass. Everything about
// how tuning is done lives here: the split of a workload's trials between its
// templates, the templates' seed configs, the search strategy with transfer
// learning, the untuned default and the warm-up of a model's tasks, the task
// scheduler, the final re-measurement of the top candidates, the marking of
// the best, and resuming a job from its records.
//
// How it runs. One engine thread dispatches; tuners propose beside it. With
// a measurer that times on this machine (Measurer::parallel_slots() == 0) it
// is the classic loop: propose a batch, measure it, learn, repeat — nothing
// runs while a candidate is timed. With a farm (slots > 0) it keeps about
// twice the farm's slots of candidates in flight: many batches, of several
// tasks and several of one task, are measured at once, each result is stored
// the moment it arrives, and a task's tuner retrains and proposes its next
// batch on a background thread while the others' candidates are dispatched.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "measure/measure.h"
#include "tuner/tuner.h"
#include "tuner/tuning_log.h"

namespace ktune {

// One workload to tune; for a model, one of its tasks with its weight (how
// many of the model's nodes compute it).
struct TuningTask {
  Workload workload;
  int weight = 1;
};

enum class Budget {
  // options.trials for each workload, shared evenly by its templates, which
  // are tuned one after another.
  kPerWorkload,
  // options.trials for all tasks together: first each task's untuned
  // default (its first template's first seed) and a warm-up share, then
  // the TaskScheduler gives each next chunk to the task expected to cut the
  // model's estimated time (sum of weight x best time) the most.
  kModel,
};

struct TuningRequest {
  std::vector<TuningTask> tasks;
  Target target;
  Budget budget = Budget::kPerWorkload;
  TuneOptions options;        // trials, batch size, finals, seeds, transfer, job, stop
  std::string tuner = "xgb";  // make_tuner's names
  uint64_t seed = 1;
  std::string template_name;  // "": every template that takes the workload
  // Measure exactly these configs (ConfigSpace::describe() texts) instead of
  // searching: one workload, and its named or first template.
  std::vector<std::string> configs;
  int task_cap = 0;           // kModel: at most this many trials per task (0: none)
};

constexpr double kNoTime = std::numeric_limits<double>::infinity();

struct WorkloadResult {
  Workload workload;
  int weight = 1;
  int trials = 0;          // search trials of this run, all templates
  int trials_before = 0;   // of the job, by earlier runs (resumed)
  int errors = 0;
  std::vector<TuneSummary> templates;  // one per template, in the order tuned
  std::optional<Record> best;  // the run's winner, re-measured (nullopt: nothing valid)
  double best_s = kNoTime;     // the best usable time on the device now, any run's
  double default_s = kNoTime;  // kModel: the untuned default's time
  std::string first_error;     // why nothing was valid, when nothing was
};

struct TuningResult {
  std::vector<WorkloadResult> workloads;  // in the request's order
  int trials = 0;        // search trials of this run
  int trials_before = 0; // of the job, by earlier runs
  bool stopped = false;  // options.stop ended it: no re-measurement, nothing marked
  double elapsed_s = 0;
  double search_s = 0;   // tuner time (training, proposals), summed over threads
  int max_in_flight = 0; // most candidates submitted to the measurer and not answered at once
  int proposals = 0;     // tuner calls (each trains if it has new results, then proposes a batch)
  // Sum of weight x best_s (untuned: x default_s) over tasks that have one.
  double estimated_s() const;
  double untuned_s() const;
};

// A snapshot of a run, given to the observer after every change.
struct TuningProgress {
  struct Task {
    const Workload* workload = nullptr;
    int weight = 1;
    int trials = 0;     // search trials measured, earlier runs of the job included
    int in_flight = 0;  // allocated, not measured yet
    int budget = 0;     // kPerWorkload: its trials; kModel: 0
    int errors = 0;
    double best_s = kNoTime;
    double default_s = kNoTime;
    bool done = false;
  };
  std::vector<Task> tasks;
  int trials = 0;      // measured, earlier runs of the job included
  int budget = 0;      // all tasks'
  int in_flight = 0;
  int trials_at_start = 0;
  double elapsed_s = 0;
  size_t last_task = 0;  // the task whose results came last
  double estimated_s() const;
  double untuned_s() const;
};

// Called on the engine's thread; must not block for long.
class TuningObserver {
 public:
  virtual ~TuningObserver() = default;
  // Before the first candidate: the state the run starts from (a resumed
  // job's earlier trials in trials_at_start).
  virtual void started(const TuningProgress& /*p*/) {}
  // A template of a workload starts its search (kPerWorkload: the previous
  // one's search is over) with this many trials (kModel: 0, the scheduler
  // decides as it goes).
  virtual void template_started(const Task& /*task*/, int /*trials*/) {}
  // A template's tuner learns from a transfer base model trained on this
  // many records of other workloads.
  virtual void transfer_learned(const Task& /*task*/, size_t /*records*/) {}
  // Search results came in.
  virtual void progress(const TuningProgress& /*p*/) {}
  // A template's search is over (before the final re-measurement).
  virtual void template_finished(const TuneSummary& /*s*/) {}
};

// Tunes the request's tasks, measuring with measurer and storing every
// record in log (may be null: nothing stored, nothing resumed). Configs the
// log holds for (workload, device key, template) are never measured again
// and are where the tuners start from. With options.job set, the job's
// search records in the log count against its budget (a re-run goes on
// where an interrupted one stopped), and a workload whose top candidates the
// job has re-measured is not re-measured again. Throws ktune::Error for a bad
// request (no tasks, an unknown tuner or template, a config text that does
// not parse or is invalid) before measuring anything, and when the log
// cannot store; candidates that fail are error records, not exceptions.
TuningResult tune(const TuningRequest& request, Measurer& measurer, TuningLog* log,
                  TuningObserver* observer = nullptr);

// One template with a tuner of the caller's (a list of configs, a faulty
// test template, a search strategy under study): the same engine, one task.
TuneSummary tune(const Task& task, Tuner& tuner, Measurer& measurer, TuningLog* log, const TuneOptions& options,
                 const std::function<void(const TuneProgress&)>& on_progress = {});

// Per task of a model, as the log has it: the best usable time on the device
// (any run's) and the untuned default's recorded time. What a model job
// shows before, during and after its run.
struct TaskTimes {
  double best_s = kNoTime;
  double default_s = kNoTime;
};
std::vector<TaskTimes> task_times(const std::vector<TuningTask>& tasks, const Target& target, const TuningLog& log);

// The untuned default config of a workload: its first template's first seed
// (index 0 when the template has none).
Config default_config(const Task& first_template);

}  // namespace ktune
