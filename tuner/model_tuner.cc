// The model-based tuner ("xgb"): an XGBoost cost model over program
// features guides parallel simulated annealing over the config space.
//
// Until `warmup` configs are measured it proposes random ones, unless a
// transfer base model is given (tuner/transfer.h): then the base model's
// predictions guide the search from the first batch, and are the task
// model's base margin once it has one. Then, for every batch: the model is retrained on everything measured for the task
// (scores = throughput / the best throughput, failures 0); `chains`
// annealing walks start from the best measured configs and random ones and
// take `steps` steps each (a step changes one knob, half the time to a local
// neighbour of its choice, else to any other; invalid configs are redrawn a
// few times; the temperature falls linearly to zero), predicting every
// step's candidates in one batch; the best-predicted configs never measured
// or proposed are kept; the batch is the best of those, configs at least two
// knobs apart from each other, one of them a tile split, first (diversity),
// plus an epsilon share of random configs (rounded up: at least one per
// batch). Nothing is proposed twice. With a pool (a recorded landscape) the
// model ranks every pool config not yet visited in place of the annealing,
// and random configs are drawn from the pool.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "schedule_space/error.h"
#include "tuner/transfer.h"
#include "tuner/tuner.h"

namespace ktune {
namespace {

class ModelTuner : public Tuner {
 public:
  ModelTuner(const Task& task, uint64_t seed, XgbTunerOptions options)
      : task_(task),
        options_(options),
        rng_(seed),
        features_(task_.workload, task_.target, *task_.tmpl, *task_.space, options.features),
        model_([&] {
          cost_model::XgbOptions o = options.model;
          o.seed = seed;
          return o;
        }()) {
    if (options_.chains < 1 || options_.steps < 0 || !(options_.epsilon >= 0 && options_.epsilon <= 1)) {
      throw Error("xgb tuner: chains must be >= 1, steps >= 0 and epsilon in [0, 1]");
    }
    if (options_.features != cost_model::FeatureKind::kCurve) {
      own_curve_.emplace(task_.workload, task_.target, *task_.tmpl, *task_.space, cost_model::FeatureKind::kCurve);
    }
  }

  std::vector<Config> next_batch(int n) override {
    std::vector<Config> batch;
    if (n <= 0) return batch;
    const bool own_model = static_cast<int>(scores_.size()) >= options_.warmup && fit_if_new();
    if (!own_model && !options_.base) {
      fill_random(batch, n);
      return batch;
    }
    const std::vector<std::pair<float, Config>> plan = anneal(static_cast<size_t>(4 * n));
    // While only the base model guides, it picks base_share of the batch
    // (a hedge against a base that misleads on this task), the rest random.
    const double explore = own_model ? options_.epsilon : std::max(options_.epsilon, 1.0 - options_.base_share);
    const int random_share = static_cast<int>(std::ceil(explore * n));
    const int from_model = std::max(0, n - random_share);
    // Diverse first: at least two knobs away from every config already taken.
    std::vector<bool> taken(plan.size(), false);
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < plan.size() && static_cast<int>(batch.size()) < from_model; ++i) {
        if (taken[i]) continue;
        if (pass == 0 && !far_from(plan[i].second, batch)) continue;
        taken[i] = true;
        if (visited_.insert(plan[i].second.index).second) batch.push_back(plan[i].second);
      }
    }
    fill_random(batch, n);
    return batch;
  }

  void update(const std::vector<Config>& configs, const std::vector<MeasureResult>& results) override {
    for (size_t i = 0; i < configs.size() && i < results.size(); ++i) {
      visited_.insert(configs[i].index);
      if (!measured_.insert(configs[i].index).second) continue;
      measured_configs_.push_back(configs[i]);
      scores_.push_back(results[i].ok() ? 1.0 / results[i].mean_cost() : 0.0);
      if (results[i].ok()) best_.emplace_back(scores_.back(), configs[i]);
    }
    std::sort(best_.begin(), best_.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (best_.size() > static_cast<size_t>(options_.chains)) best_.resize(static_cast<size_t>(options_.chains));
  }

  void exclude(const std::vector<uint64_t>& indices) override {
    for (uint64_t i : indices) {
      if (i < task_.space->size()) visited_.insert(i);
    }
  }

  bool has_next() const override {
    if (!options_.pool) return visited_.size() < task_.space->size();
    return std::any_of(options_.pool->begin(), options_.pool->end(),
                       [&](const Config& c) { return !visited_.count(c.index); });
  }

 private:
  // The template's check, remembered: annealing meets the same configs often.
  bool valid(const Config& c) {
    auto it = valid_.find(c.index);
    if (it != valid_.end()) return it->second;
    const bool ok = !task_.tmpl->check(task_.workload, task_.target, *task_.space, c);
    if (valid_.size() > (1u << 20)) valid_.clear();
    return valid_.emplace(c.index, ok).first->second;
  }

  // Both feature kinds of configs not seen yet from one instantiation each
  // (with transfer the base model reads curve features of every candidate).
  void featurize(const std::vector<Config>& configs) {
    if (!options_.base) return;
    for (const Config& c : configs) {
      if (features_.contains(c.index) && curve().contains(c.index)) continue;
      try {
        const ir::Program p = task_.tmpl->instantiate(task_.workload, task_.target, *task_.space, c);
        features_.get(c, p);
        if (own_curve_) own_curve_->get(c, p);
      } catch (const Error&) {
        // get() below records zeros for a config that does not instantiate.
      }
    }
  }

  // Retrains when there are results the model has not seen; false if it
  // cannot train (e.g. nothing measured valid yet).
  bool fit_if_new() {
    if (fitted_rows_ == measured_configs_.size()) return model_.trained();
    const double top = *std::max_element(scores_.begin(), scores_.end());
    if (!(top > 0)) return false;
    std::vector<float> y;
    for (double s : scores_) y.push_back(static_cast<float>(s / top));
    cost_model::Matrix x;
    if (joint()) {
      // The base model's rows and groups, then the task's as one more group.
      featurize(measured_configs_);
      x = options_.base->rows();
      std::vector<float> all = options_.base->scores();
      std::vector<unsigned> groups = options_.base->groups();
      for (const Config& c : measured_configs_) x.push_back(curve().get(c));
      all.insert(all.end(), y.begin(), y.end());
      groups.push_back(static_cast<unsigned>(y.size()));
      const bool ranking = model_.options().objective == "rank:pairwise";
      model_.fit(x, all, {}, ranking ? groups : std::vector<unsigned>{});
      fitted_rows_ = measured_configs_.size();
      return true;
    }
    x.reserve(measured_configs_.size());
    for (const Config& c : measured_configs_) x.push_back(features_.get(c));  // cached
    model_.fit(x, y, margin_in_model() ? base_margin(measured_configs_) : std::vector<float>{});
    fitted_rows_ = measured_configs_.size();
    return true;
  }

  void fill_random(std::vector<Config>& batch, int n) {
    if (options_.pool) {
      std::vector<const Config*> left;
      for (const Config& c : *options_.pool) {
        if (!visited_.count(c.index)) left.push_back(&c);
      }
      std::shuffle(left.begin(), left.end(), rng_);
      for (const Config* c : left) {
        if (static_cast<int>(batch.size()) >= n) break;
        visited_.insert(c->index);
        if (valid(*c)) batch.push_back(*c);
      }
      return;
    }
    int attempts = 200 * std::max(n, 1);
    while (static_cast<int>(batch.size()) < n && attempts-- > 0 && has_next()) {
      Config c = task_.space->random(rng_);
      if (visited_.count(c.index)) continue;
      visited_.insert(c.index);
      if (valid(c)) batch.push_back(std::move(c));
    }
  }

  // At least two knobs apart from every config of others, one of them a
  // tile split: configs that differ only in their unroll or vector knobs
  // are often alike in cost, and a batch of them wastes the trials.
  bool far_from(const Config& c, const std::vector<Config>& others) const {
    for (const Config& o : others) {
      int differ = 0;
      bool split = false;
      for (size_t k = 0; k < c.choices.size(); ++k) {
        if (c.choices[k] == o.choices[k]) continue;
        ++differ;
        split |= task_.space->knob(k).kind() == KnobKind::kSplit;
      }
      if (differ < 2 || !split) return false;
    }
    return true;
  }

  bool margin_in_model() const { return options_.base && options_.transfer == XgbTunerOptions::Transfer::kMargin; }
  bool joint() const { return options_.base && options_.transfer == XgbTunerOptions::Transfer::kJoint; }

  // The base model's predictions for configs (their curve features).
  std::vector<float> base_margin(const std::vector<Config>& configs) {
    featurize(configs);
    cost_model::Matrix x;
    x.reserve(configs.size());
    for (const Config& c : configs) x.push_back(curve().get(c));
    return options_.base->predict(x);
  }

  // The task model's scores (on the base margin with transfer), or the base
  // model's alone while the task has no model of its own.
  std::vector<float> predict(const std::vector<Config>& configs) {
    if (!model_.trained()) return options_.base ? base_margin(configs) : std::vector<float>{};
    std::vector<float> margin = margin_in_model() ? base_margin(configs) : std::vector<float>{};
    cost_model::Matrix x;
    x.reserve(configs.size());
    if (joint()) featurize(configs);
    for (const Config& c : configs) x.push_back(joint() ? curve().get(c) : features_.get(c));
    return model_.predict(x, margin);
  }

  // One annealing step from c: one knob changed, half the time to one of
  // its local neighbours (a split moves one prime factor between levels),
  // else to any other of its choices; the first valid one of a few tries
  // (GPU spaces are mostly over the device limits: a chain that only drew
  // invalid steps would stand still). c itself if none was valid.
  Config neighbour(const Config& c) {
    std::uniform_int_distribution<size_t> knob(0, c.choices.size() - 1);
    std::bernoulli_distribution local(0.5);
    for (int tries = 0; tries < 16; ++tries) {
      std::vector<int64_t> choices = c.choices;
      const size_t k = knob(rng_);
      const Knob& kn = task_.space->knob(k);
      if (kn.size() < 2) continue;
      const std::vector<int64_t> near = local(rng_) ? kn.neighbours(choices[k]) : std::vector<int64_t>{};
      if (!near.empty()) {
        choices[k] = near[std::uniform_int_distribution<size_t>(0, near.size() - 1)(rng_)];
      } else {
        int64_t v = std::uniform_int_distribution<int64_t>(0, kn.size() - 2)(rng_);
        if (v >= choices[k]) ++v;
        choices[k] = v;
      }
      Config next = task_.space->get(task_.space->index_of(choices));
      if (valid(next)) return next;
    }
    return c;
  }

  // The best-predicted valid configs never visited, best first, at most `keep`.
  std::vector<std::pair<float, Config>> anneal(size_t keep) {
    if (options_.pool) return rank_pool(keep);
    std::vector<Config> points;
    for (const auto& [score, c] : best_) {
      if (points.size() >= static_cast<size_t>(options_.chains) / 2) break;
      points.push_back(c);
    }
    int attempts = 100 * options_.chains;
    while (points.size() < static_cast<size_t>(options_.chains) && attempts-- > 0) {
      Config c = task_.space->random(rng_);
      if (valid(c)) points.push_back(std::move(c));
    }
    if (points.empty()) return {};
    std::vector<float> scores = predict(points);
    std::map<uint64_t, std::pair<float, Config>> plan;  // by index: no duplicates
    float worst_kept = -INFINITY;
    auto consider = [&](const Config& c, float score) {
      if (visited_.count(c.index) || plan.count(c.index)) return;
      if (plan.size() >= keep && score <= worst_kept) return;
      plan.emplace(c.index, std::make_pair(score, c));
      if (plan.size() > keep) {
        auto lowest = std::min_element(plan.begin(), plan.end(), [](const auto& a, const auto& b) {
          return a.second.first < b.second.first;
        });
        plan.erase(lowest);
      }
      worst_kept = std::min_element(plan.begin(), plan.end(), [](const auto& a, const auto& b) {
                     return a.second.first < b.second.first;
                   })->second.first;
    };
    for (size_t i = 0; i < points.size(); ++i) consider(points[i], scores[i]);
    // Temperature in units of the predictions' spread.
    const auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
    const double scale = std::max(1e-6, static_cast<double>(*hi - *lo));
    std::uniform_real_distribution<double> u(0, 1);
    for (int step = 0; step < options_.steps; ++step) {
      const double t = 1.0 - static_cast<double>(step) / std::max(1, options_.steps);
      std::vector<Config> next;
      next.reserve(points.size());
      for (const Config& p : points) next.push_back(neighbour(p));
      std::vector<size_t> ok;
      std::vector<Config> candidates;
      for (size_t i = 0; i < next.size(); ++i) {
        if (valid(next[i])) {
          ok.push_back(i);
          candidates.push_back(next[i]);
        }
      }
      if (candidates.empty()) continue;
      const std::vector<float> predicted = predict(candidates);
      for (size_t j = 0; j < ok.size(); ++j) {
        const size_t i = ok[j];
        consider(candidates[j], predicted[j]);
        const double gain = static_cast<double>(predicted[j] - scores[i]);
        if (gain >= 0 || (t > 0 && u(rng_) < std::exp(gain / (scale * t * 0.5)))) {
          points[i] = candidates[j];
          scores[i] = predicted[j];
        }
      }
    }
    std::vector<std::pair<float, Config>> out;
    for (auto& [index, entry] : plan) out.push_back(std::move(entry));
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    return out;
  }

  // The pool's valid configs never visited, by the model's prediction, best
  // first, at most `keep`.
  std::vector<std::pair<float, Config>> rank_pool(size_t keep) {
    std::vector<Config> left;
    for (const Config& c : *options_.pool) {
      if (!visited_.count(c.index) && valid(c)) left.push_back(c);
    }
    if (left.empty()) return {};
    const std::vector<float> predicted = predict(left);
    std::vector<std::pair<float, Config>> out;
    out.reserve(left.size());
    for (size_t i = 0; i < left.size(); ++i) out.emplace_back(predicted[i], std::move(left[i]));
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (out.size() > keep) out.resize(keep);
    return out;
  }

  Task task_;
  XgbTunerOptions options_;
  std::mt19937_64 rng_;
  cost_model::FeatureExtractor features_;
  // Curve features for the transfer base model: features_ itself when the
  // task model reads curve features too, else these.
  std::optional<cost_model::FeatureExtractor> own_curve_;
  cost_model::FeatureExtractor& curve() { return own_curve_ ? *own_curve_ : features_; }
  cost_model::XgbModel model_;
  std::unordered_map<uint64_t, bool> valid_;  // check() results
  std::unordered_set<uint64_t> visited_;   // proposed, measured or excluded
  std::unordered_set<uint64_t> measured_;  // with a result in scores_
  std::vector<Config> measured_configs_;    // one per score, in order
  std::vector<double> scores_;              // throughput, 0 for failures
  std::vector<std::pair<double, Config>> best_;  // best measured, best first
  size_t fitted_rows_ = 0;
};

}  // namespace

std::unique_ptr<Tuner> make_xgb_tuner(const Task& task, uint64_t seed, XgbTunerOptions options) {
  return std::make_unique<ModelTuner>(task, seed, std::move(options));
}

}  // namespace ktune
