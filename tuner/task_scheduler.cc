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

void TaskScheduler::set_min_warmup(size_t task, int trials) { tasks_.at(task).min_warmup = std::max(0, trials); }

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

// A task's share of the time the model is estimated to take (weight x best
// time); a task without a valid time yet counts as the mean of the others.
std::vector<double> TaskScheduler::time_shares() const {
  std::vector<double> t(tasks_.size(), 0);
  double known = 0;
  int n_known = 0;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (std::isfinite(tasks_[i].best)) {
      t[i] = tasks_[i].weight * tasks_[i].best;
      known += t[i];
      ++n_known;
    }
  }
  const double fill = n_known > 0 ? known / n_known : 1.0;
  double total = 0;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (!std::isfinite(tasks_[i].best)) t[i] = fill;
    total += t[i];
  }
  for (double& x : t) x = total > 0 ? x / total : 1.0 / static_cast<double>(tasks_.size());
  return t;
}

int TaskScheduler::least_warmup(size_t task) const {
  return std::min(tasks_.at(task).min_warmup, std::max(1, options_.warmup));
}

int TaskScheduler::warmup_target(size_t task) const {
  const int least = least_warmup(task);
  if (!options_.weighted_warmup) return std::max(options_.warmup, least);
  // Every task a quarter of the warm-up; the rest of all tasks' warm-up
  // shared by their share of the estimated time, at most three times the
  // warm-up each: a task that holds most of the model's time starts with
  // most of the trials.
  const int floor = std::max(1, options_.warmup / 4);
  const double pool = static_cast<double>(options_.warmup - floor) * static_cast<double>(tasks_.size());
  const std::vector<double> shares = time_shares();
  const int extra = static_cast<int>(std::lround(pool * shares.at(task)));
  return std::max(least, std::min(floor + extra, 3 * options_.warmup));
}

std::optional<TaskScheduler::Allocation> TaskScheduler::next(int chunk) const {
  // Warm-up first: the tasks that hold the most estimated time first.
  const std::vector<double> shares = time_shares();
  std::vector<size_t> order(tasks_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (options_.weighted_warmup) {
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shares[a] > shares[b]; });
  }
  // Every task's minimum before any task's share of the rest.
  for (size_t i : order) {
    const int r = room(tasks_[i]);
    const int least = least_warmup(i);
    if (r > 0 && tasks_[i].trials < least) return Allocation{i, std::min(r, least - tasks_[i].trials)};
  }
  for (size_t i : order) {
    const int r = room(tasks_[i]);
    const int target = warmup_target(i);
    if (r > 0 && tasks_[i].trials < target) {
      const int want = target - tasks_[i].trials;
      return Allocation{i, std::min({r, want, chunk > 0 ? std::max(chunk, options_.warmup) : want})};
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
