// Blind search strategies: random sampling without repeats, and grid order.
#include <algorithm>
#include <unordered_set>

#include "schedule_space/error.h"
#include "tuner/transfer.h"
#include "tuner/tuner.h"
#include "tuner/tuning_log.h"

namespace ktune {

Task Task::make(const Workload& w, const Target& t, const Template& tmpl) {
  if (tmpl.op() != w.op()) {
    throw Error("template " + tmpl.name() + " is for " + std::string(op_name(tmpl.op())) +
                ", not " + std::string(op_name(w.op())));
  }
  Task task;
  task.workload = w;
  task.target = t;
  task.tmpl = &tmpl;
  task.space = std::make_shared<const ConfigSpace>(tmpl.space(w, t));
  return task;
}

namespace {

// The set of indices already visited (proposed, excluded, or rejected by
// the template's cheap check).
class VisitedSet {
 public:
  explicit VisitedSet(uint64_t space_size) : space_size_(space_size) {}
  // Indices outside the space (e.g. from a database written for another
  // space) are ignored.
  bool insert(uint64_t index) { return index < space_size_ && visited_.insert(index).second; }
  bool contains(uint64_t index) const { return visited_.count(index) != 0; }
  bool exhausted() const { return visited_.size() >= space_size_; }

 private:
  uint64_t space_size_;
  std::unordered_set<uint64_t> visited_;
};

bool is_valid(const Task& task, const Config& c) {
  return !task.tmpl->check(task.workload, task.target, *task.space, c).has_value();
}

// What both blind strategies share: they learn nothing from results, and
// each index is visited once — proposed if the template accepts it.
class BlindTuner : public Tuner {
 public:
  explicit BlindTuner(const Task& task) : task_(task), visited_(task.space->size()) {}

  void update(const std::vector<Config>&, const std::vector<MeasureResult>&) override {}

  void exclude(const std::vector<uint64_t>& indices) override {
    for (uint64_t i : indices) visited_.insert(i);
  }

 protected:
  // Marks index visited and appends its config to batch if it is new and valid.
  void visit(uint64_t index, std::vector<Config>& batch) {
    if (!visited_.insert(index)) return;
    Config c = task_.space->get(index);
    if (is_valid(task_, c)) batch.push_back(std::move(c));
  }

  Task task_;
  VisitedSet visited_;
};

class RandomTuner : public BlindTuner {
 public:
  RandomTuner(const Task& task, uint64_t seed) : BlindTuner(task), rng_(seed) {}

  std::vector<Config> next_batch(int n) override {
    std::vector<Config> batch;
    const uint64_t size = task_.space->size();
    // Rejection sampling is fine while most of the space is unvisited; a
    // bounded number of draws keeps a nearly-exhausted or mostly-invalid
    // space from spinning, and a sweep over the rest finishes it exactly.
    int64_t draws_left = 2000LL * std::max(n, 1);
    std::uniform_int_distribution<uint64_t> pick(0, size - 1);
    while (static_cast<int>(batch.size()) < n && !visited_.exhausted()) {
      uint64_t index;
      if (draws_left-- > 0) {
        index = pick(rng_);
        if (visited_.contains(index)) continue;
      } else {
        while (sweep_ < size && visited_.contains(sweep_)) ++sweep_;
        if (sweep_ >= size) break;
        index = sweep_;
      }
      visit(index, batch);
    }
    return batch;
  }

  bool has_next() const override { return !visited_.exhausted(); }

 private:
  std::mt19937_64 rng_;
  uint64_t sweep_ = 0;
};

class GridTuner : public BlindTuner {
 public:
  explicit GridTuner(const Task& task) : BlindTuner(task) {}

  std::vector<Config> next_batch(int n) override {
    std::vector<Config> batch;
    const uint64_t size = task_.space->size();
    while (static_cast<int>(batch.size()) < n && next_ < size) visit(next_++, batch);
    return batch;
  }

  bool has_next() const override { return next_ < task_.space->size(); }

 private:
  uint64_t next_ = 0;
};

// A fixed list, in order.
class ListTuner : public BlindTuner {
 public:
  ListTuner(const Task& task, std::vector<Config> configs)
      : BlindTuner(task), configs_(std::move(configs)) {}

  std::vector<Config> next_batch(int n) override {
    std::vector<Config> batch;
    while (static_cast<int>(batch.size()) < n && next_ < configs_.size()) {
      visit(configs_[next_++].index, batch);
    }
    return batch;
  }

  bool has_next() const override { return next_ < configs_.size(); }

 private:
  std::vector<Config> configs_;
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<Tuner> make_list_tuner(const Task& task, std::vector<Config> configs) {
  return std::make_unique<ListTuner>(task, std::move(configs));
}

std::unique_ptr<Tuner> make_random_tuner(const Task& task, uint64_t seed) {
  return std::make_unique<RandomTuner>(task, seed);
}

std::unique_ptr<Tuner> make_grid_tuner(const Task& task) {
  return std::make_unique<GridTuner>(task);
}

void check_tuner_name(const std::string& name) {
  if (name != "random" && name != "grid" && name != "ga" && name != "xgb") {
    throw Error("unknown tuner '" + name + "': accepted tuners are random, grid, ga, xgb");
  }
}

std::unique_ptr<Tuner> make_tuner(const std::string& name, const Task& task, uint64_t seed) {
  check_tuner_name(name);
  if (name == "random") return make_random_tuner(task, seed);
  if (name == "grid") return make_grid_tuner(task);
  if (name == "ga") return make_genetic_tuner(task, seed);
  return make_xgb_tuner(task, seed);
}

std::unique_ptr<Tuner> make_tuner(const std::string& name, const Task& task, uint64_t seed, const TuningLog* log,
                                  bool transfer, size_t* learned_from) {
  if (learned_from) *learned_from = 0;
  if (name != "xgb" || !transfer || !log) return make_tuner(name, task, seed);
  TransferOptions options;
  const std::vector<Record> history =
      log->device_history(task.target.device_key(), task.workload.key(), std::string(op_name(task.workload.op())),
                         static_cast<int>(4 * options.max_records));
  XgbTunerOptions xgb;
  xgb.base = TransferModel::train(history, task.target, options);
  if (xgb.base && learned_from) *learned_from = xgb.base->records();
  return make_xgb_tuner(task, seed, xgb);
}

}  // namespace ktune
