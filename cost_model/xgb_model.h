// The XGBoost cost model: gradient-boosted trees (XGBoost's C API) that
// score configs from their features; higher means predicted faster.
//
// The tuner trains it on the task's measured records with scores normalized
// per task (throughput / the best throughput measured, failed candidates 0)
// and retrains after every batch. The default objective is pairwise ranking
// ("rank:pairwise", as AutoTVM's): only the order of the predictions
// matters to the search. "reg:squarederror" regresses the scores instead.
// An optional base margin per row (another model's predictions) lets a
// model learn the residual of a base model: the transfer-learning warm
// start.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ktune::cost_model {

struct XgbOptions {
  std::string objective = "rank:pairwise";  // or "reg:squarederror"
  int rounds = 80;                          // boosting rounds per training
  int max_depth = 6;
  double eta = 0.2;
  double min_child_weight = 1;
  double subsample = 1.0;
  double colsample_bytree = 1.0;
  double lambda = 1.0;
  uint64_t seed = 0;
  int threads = 1;  // 1: deterministic and never competes with measurements
};

// Rows of equal length.
using Matrix = std::vector<std::vector<float>>;

class XgbModel {
 public:
  explicit XgbModel(XgbOptions options = {});
  ~XgbModel();
  XgbModel(XgbModel&&) noexcept;
  XgbModel& operator=(XgbModel&&) noexcept;

  // Trains a new model on x (rows) with scores y, replacing any earlier one.
  // base_margin (one per row, or empty) is added to the model's output.
  // groups (ranking only): sizes of consecutive row groups ranked among
  // themselves (e.g. one per workload), summing to the rows; empty: one.
  // Throws ktune::Error on empty or ragged input or an XGBoost failure.
  void fit(const Matrix& x, const std::vector<float>& y, const std::vector<float>& base_margin = {},
           const std::vector<unsigned>& groups = {});
  // One score per row (plus base_margin, one per row or empty). Throws
  // ktune::Error before the first fit(). Thread-safe (calls on one model
  // take turns); fit() is not.
  std::vector<float> predict(const Matrix& x, const std::vector<float>& base_margin = {}) const;
  bool trained() const;
  const XgbOptions& options() const { return options_; }

 private:
  struct Impl;
  XgbOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Spearman rank correlation of a and b (same length >= 2; ties get their
// mean rank). For judging a model's ranking.
double spearman(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ktune::cost_model
