// TaskScheduler: which task of a model gets the next trials.
//
// A model is a set of tasks with weights (occurrences). Its estimated
// operator time is the sum over tasks of weight x best time. The scheduler
// first gives every task a warm-up share; then each allocation goes to the
// task expected to reduce that sum the most per trial, in the spirit of
// Ansor's gradient-based task scheduler (Zheng et al., OSDI 2020): for task
// i with t_i trials and best time g_i,
//   gain_i = w_i * (alpha * backward_i + (1 - alpha) * g_i / t_i)
// where backward_i is how much g_i fell per trial over its last allocation
// and g_i / t_i the optimistic guess that another t_i trials would halve it.
// A task without any valid measurement yet goes first. The budget counts
// every trial; a task stops at its cap or when its space is exhausted.
// Pure bookkeeping: the caller runs the trials and reports back. Trials are
// counted from their allocation: with a farm, many allocations are in
// flight at once (allocate, then complete or release each), and the
// gradient of a task is what its last allocation has gained so far.
// Not thread-safe: one caller (the tuning engine's thread).
#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

namespace ktune {

struct TaskSchedulerOptions {
  int trials = 0;       // the model's budget (all tasks together)
  int warmup = 16;      // trials every task gets first (on average, when weighted)
  // Share the warm-up by the tasks' estimated time (weight x best time, as
  // the untuned defaults give it) instead of evenly: every task gets a
  // quarter of it, the rest goes where the time is.
  bool weighted_warmup = false;
  int chunk = 16;       // trials per allocation after the warm-up
  int task_cap = 0;     // at most this many trials per task; 0: no cap
  double alpha = 0.2;   // weight of the observed improvement vs the optimistic guess
};

class TaskScheduler {
 public:
  // Throws ktune::Error on bad options or weights (<= 0).
  TaskScheduler(std::vector<double> weights, TaskSchedulerOptions options);

  // The task's state so far (cumulative trials, best seconds or +inf), e.g.
  // from the database when resuming.
  void set_state(size_t task, int trials, double best_s);
  // The task's warm-up is at least this many trials whatever its share of
  // the time (e.g. its untuned default and one seed of each of its templates:
  // a template never tried cannot win).
  void set_min_warmup(size_t task, int trials);
  struct Allocation {
    size_t task;
    int trials;
  };
  // The next allocation, or nullopt when the budget is spent or no task can
  // take more. Changes nothing until allocate(). After the warm-up an
  // allocation is `chunk` trials (0: the options' chunk).
  std::optional<Allocation> next(int chunk = 0) const;
  // Counts a.trials as task a.task's from now on (in flight).
  void allocate(const Allocation& a);
  // `trials` of the task's allocated trials were measured; its best time is
  // now best_s (or was already better).
  void complete(size_t task, int trials, double best_s);
  // `trials` of the task's allocated trials will not be measured (its
  // tuner had no more configs, or they were cancelled): they go back to
  // the budget. exhausted: the task has nothing more to try.
  void release(size_t task, int trials, bool exhausted);
  // allocate() and complete() at once, for a caller that runs each
  // allocation to its end before asking again; 0 trials: exhausted.
  void record(size_t task, int trials, double best_s);
  // No more configs to try for this task.
  void exhausted(size_t task);

  // Trials allocated, in flight included.
  int trials_done() const;
  int trials(size_t task) const { return tasks_.at(task).trials; }
  // The trials task gets in the warm-up, before the gradient decides.
  int warmup_target(size_t task) const;
  bool warming_up(size_t task) const { return trials(task) < warmup_target(task); }
  int in_flight(size_t task) const { return tasks_.at(task).in_flight; }
  double best(size_t task) const { return tasks_.at(task).best; }
  // Sum of weight x best time over tasks with a valid measurement.
  double estimated_total() const;
  size_t size() const { return tasks_.size(); }

 private:
  struct State {
    double weight = 1;
    int trials = 0;
    double best = std::numeric_limits<double>::infinity();
    double best_before_last = std::numeric_limits<double>::infinity();
    int last_trials = 0;  // size of the last allocation
    int in_flight = 0;    // allocated, neither completed nor released
    bool exhausted = false;
    int min_warmup = 0;
  };
  int room(const State& s) const;  // trials it can still take
  // The task's minimum warm-up (set_min_warmup), held to the warm-up.
  int least_warmup(size_t task) const;
  std::vector<double> time_shares() const;
  TaskSchedulerOptions options_;
  std::vector<State> tasks_;
};

}  // namespace ktune
