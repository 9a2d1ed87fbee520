#include "tuner/task_scheduler.h"

#include <algorithm>
#include <cmath>

#include "schedule_space/error.h"

namespace ktune {

TaskScheduler::TaskScheduler(std::vector<double> weights, TaskSchedulerOptions options) : options_(options) {
  if (options_.trials < 0 || options_.warmup < 0 || options_.chunk < 1 || options_.task_cap < 0 ||
      !(options_.alpha >= 0 && options_.alpha <= 1)) {
    throw Error("task scheduler: trials, warm-up and cap must be >= 0, chunk >= 1 and alpha in [0, 1]");
  }
  for (double w : weights) {
    if (!(w > 0)) throw Error("task scheduler: every task weight must be > 0");
    State s;
    s.weight = w;
    tasks_.push_back(s);
  }
}

void TaskScheduler::set_state(size_t task, int trials, double best_s) {
  State& s = tasks_.at(task);
  s.trials = trials;
  s.best = best_s;
  s.best_before_last = best_s;
  s.last_trials = 0;
  s.in_flight = 0;
}

void TaskScheduler::allocate(const Allocation& a) {
  State& s = tasks_.at(a.task);
  s.best_before_last = s.best;
  s.last_trials = a.trials;
  s.trials += a.trials;
  s.in_flight += a.trials;
}

void TaskScheduler::complete(size_t task, int trials, double best_s) {
  State& s = tasks_.at(task);
  s.in_flight = std::max(0, s.in_flight - trials);
  s.best = std::min(s.best, best_s);
}

void TaskScheduler::release(size_t task, int trials, bool exhausted) {
  State& s = tasks_.at(task);
  const int n = std::min(trials, s.in_flight);
  s.in_flight -= n;
  s.trials -= n;
  s.last_trials = std::max(0, s.last_trials - n);
  if (exhausted) s.exhausted = true;
}

void TaskScheduler::record(size_t task, int trials, double best_s) {
  allocate({task, trials});
  complete(task, trials, best_s);
  if (trials == 0) tasks_.at(task).exhausted = true;  // asked for trials, got none: nothing left to try
}

void TaskScheduler::exhausted(size_t task) { tasks_.at(task).exhausted = true; }

int TaskScheduler::room(const State& s) const {
  if (s.exhausted) return 0;
  const int left = options_.trials - trials_done();
  const int cap_left = options_.task_cap > 0 ? options_.task_cap - s.trials : left;
  return std::max(0, std::min(left, cap_left));
}

int TaskScheduler::trials_done() const {
  int n = 0;
  for (const State& s : tasks_) n += s.trials;
  return n;
}

std::optional<TaskScheduler::Allocation> TaskScheduler::next(int chunk) const {
  // Warm-up first, in task order.
  for (size_t i = 0; i < tasks_.size(); ++i) {
    const int r = room(tasks_[i]);
    if (r > 0 && tasks_[i].trials < options_.warmup) {
      return Allocation{i, std::min(r, options_.warmup - tasks_[i].trials)};
    }
  }
  std::optional<size_t> pick;
  double best_gain = -1;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    const State& s = tasks_[i];
    if (room(s) <= 0) continue;
    double gain;
    if (!std::isfinite(s.best)) {
      gain = std::numeric_limits<double>::max();  // nothing valid yet: its time is unknown, maybe large
    } else {
      const double backward = s.last_trials > 0 && std::isfinite(s.best_before_last)
                                  ? (s.best_before_last - s.best) / s.last_trials
                                  : 0;
      const double optimistic = s.best / std::max(1, s.trials);
      gain = s.weight * (options_.alpha * backward + (1 - options_.alpha) * optimistic);
    }
    if (gain > best_gain) {
      best_gain = gain;
      pick = i;
    }
  }
  if (!pick) return std::nullopt;
  return Allocation{*pick, std::min(room(tasks_[*pick]), chunk > 0 ? chunk : options_.chunk)};
}

double TaskScheduler::estimated_total() const {
  double total = 0;
  for (const State& s : tasks_) {
    if (std::isfinite(s.best)) total += s.weight * s.best;
  }
  return total;
}

}  // namespace ktune
