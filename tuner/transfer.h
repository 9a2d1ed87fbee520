// Transfer learning: what earlier tuning on the same device taught, as a
// base model that warm-starts the cost model of a new task.
//
// The base model is an XGBoost ranking model over the template-independent
// curve features, trained on valid records of other workloads (any
// operator, any template this build has at the recorded version), each
// workload's throughputs normalized by its best and ranked within their
// workload. The new task's model then learns the residual: the base
// model's predictions are its base margin in training and prediction, and
// before the task has measurements of its own the base model alone guides
// the search (no random warm-up).
#pragma once

#include <memory>
#include <vector>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "db/database.h"
#include "schedule_space/target.h"

namespace ktune {

struct TransferOptions {
  size_t max_records = 500;  // the newest of the history given (same operator first)
  size_t min_records = 16;   // fewer usable ones: no base model
  cost_model::XgbOptions model;
};

class TransferModel {
 public:
  // From history (e.g. Database::device_history, other workloads on this
  // device): nullptr when fewer than min_records usable records of at least
  // two distinct configs remain.
  static std::shared_ptr<const TransferModel> train(const std::vector<Record>& history, const Target& target,
                                                    const TransferOptions& options = {});
  // Base margins for rows of curve features.
  std::vector<float> predict(const cost_model::Matrix& curve_rows) const { return model_.predict(curve_rows); }
  size_t records() const { return records_; }
  // What it was trained on: curve-feature rows, their throughput over their
  // workload's best, and the rows per workload (consecutive).
  const cost_model::Matrix& rows() const { return rows_; }
  const std::vector<float>& scores() const { return scores_; }
  const std::vector<unsigned>& groups() const { return groups_; }
  size_t workloads() const { return workloads_; }

 private:
  explicit TransferModel(cost_model::XgbModel model) : model_(std::move(model)) {}
  cost_model::XgbModel model_;
  size_t records_ = 0, workloads_ = 0;
  cost_model::Matrix rows_;
  std::vector<float> scores_;
  std::vector<unsigned> groups_;
};

}  // namespace ktune
