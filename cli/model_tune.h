// `ktune tune model.onnx`: every tunable task of a model, one budget, the
// task scheduler deciding where the trials go; live progress; a summary.
#pragma once

#include <string>
#include <vector>

#include "tuner/tuner.h"

namespace ktune::cli {

struct ModelTuneArgs {
  std::string model;
  std::vector<std::string> input_shapes;
  std::string db_path = "ktune.db";
  std::string tuner = "xgb";
  int threads = 0;
  std::string device = "cpu";  // --target: cpu or cuda:N
  uint64_t seed = 1;
  std::string format = "text";
  std::string cache_dir;
  int task_cap = 0;
  bool baseline = true;
  TuneOptions options;  // options.trials: the model's budget
};

// Returns the exit code; throws ktune::Error for bad input.
int tune_model(const ModelTuneArgs& args);

}  // namespace ktune::cli
