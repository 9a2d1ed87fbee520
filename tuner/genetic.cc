// Genetic search: a baseline for the model-based tuner.
//
// The population is the best `population` configs measured so far (elitism:
// a good config is never lost). Each new candidate is a child of two parents
// picked by tournament from it: every knob comes from one parent or the
// other (uniform crossover), then each knob is re-drawn at random with the
// mutation probability. Children already visited or rejected by the
// template's check are drawn again, a bounded number of times; when breeding
// runs dry (a converged population) the rest of the batch is random. Until a
// first population is measured, proposals are random.
#include <algorithm>
#include <random>
#include <unordered_set>

#include "schedule_space/error.h"
#include "tuner/tuner.h"

namespace ktune {
namespace {

class GeneticTuner : public Tuner {
 public:
  GeneticTuner(const Task& task, uint64_t seed, GeneticOptions options)
      : task_(task), options_(options), rng_(seed) {
    if (options_.population < 2) {
      throw Error("genetic tuner: population must be >= 2, got " + std::to_string(options_.population));
    }
    if (!(options_.mutation >= 0 && options_.mutation <= 1)) {
      throw Error("genetic tuner: mutation probability must be in [0, 1]");
    }
  }

  std::vector<Config> next_batch(int n) override {
    std::vector<Config> batch;
    const bool breed = static_cast<int>(scored_.size()) >= options_.population;
    int attempts = 64 * std::max(n, 1);
    while (static_cast<int>(batch.size()) < n && attempts-- > 0 && !exhausted()) {
      Config c = breed ? child() : task_.space->random(rng_);
      offer(std::move(c), batch);
    }
    // A converged population breeds only known configs: fill up at random.
    attempts = 64 * std::max(n, 1);
    while (static_cast<int>(batch.size()) < n && attempts-- > 0 && !exhausted()) {
      offer(task_.space->random(rng_), batch);
    }
    return batch;
  }

  void update(const std::vector<Config>& configs, const std::vector<MeasureResult>& results) override {
    for (size_t i = 0; i < configs.size() && i < results.size(); ++i) {
      // Throughput (1/s): failed candidates score 0 and are never parents
      // unless nothing better exists.
      const double score = results[i].ok() ? 1.0 / results[i].mean_cost() : 0.0;
      scored_.push_back({configs[i], score});
    }
    std::stable_sort(scored_.begin(), scored_.end(),
                     [](const Scored& a, const Scored& b) { return a.score > b.score; });
    if (scored_.size() > static_cast<size_t>(options_.population)) {
      scored_.resize(static_cast<size_t>(options_.population));
    }
  }

  void exclude(const std::vector<uint64_t>& indices) override {
    for (uint64_t i : indices) {
      if (i < task_.space->size()) visited_.insert(i);
    }
  }

  bool has_next() const override { return !exhausted(); }

 private:
  struct Scored {
    Config config;
    double score;
  };

  bool exhausted() const { return visited_.size() >= task_.space->size(); }

  void offer(Config c, std::vector<Config>& batch) {
    if (!visited_.insert(c.index).second) return;
    if (task_.tmpl->check(task_.workload, task_.target, *task_.space, c)) return;
    batch.push_back(std::move(c));
  }

  const Config& tournament() {
    std::uniform_int_distribution<size_t> pick(0, scored_.size() - 1);
    const size_t a = pick(rng_), b = pick(rng_);
    return scored_[std::min(a, b)].config;  // sorted best first: the lower index wins
  }

  Config child() {
    const Config& a = tournament();
    const Config& b = tournament();
    std::vector<int64_t> choices(a.choices.size());
    std::bernoulli_distribution from_a(0.5), mutate(options_.mutation);
    for (size_t k = 0; k < choices.size(); ++k) {
      choices[k] = from_a(rng_) ? a.choices[k] : b.choices[k];
      if (mutate(rng_)) {
        std::uniform_int_distribution<int64_t> any(0, static_cast<int64_t>(task_.space->knob(k).size()) - 1);
        choices[k] = any(rng_);
      }
    }
    return task_.space->get(task_.space->index_of(choices));
  }

  Task task_;
  GeneticOptions options_;
  std::mt19937_64 rng_;
  std::unordered_set<uint64_t> visited_;
  std::vector<Scored> scored_;  // best first, at most `population`
};

}  // namespace

std::unique_ptr<Tuner> make_genetic_tuner(const Task& task, uint64_t seed, GeneticOptions options) {
  return std::make_unique<GeneticTuner>(task, seed, options);
}

}  // namespace ktune
