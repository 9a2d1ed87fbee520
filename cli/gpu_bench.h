// `ktune bench --target cuda:N`: the best tuned GPU kernel of each workload
// against cuBLAS / cuDNN on the same device and inputs.
#pragma once

#include <string>
#include <vector>

#include "schedule_space/target.h"

namespace ktune::cli {

struct GpuBenchArgs {
  std::vector<std::string> workloads;  // specs
  Target target;                       // a CUDA device
  std::string db_path;
  std::string format = "text";
  int trials = 0;  // tune a workload without a record first
  std::string tuner = "xgb";
  std::string cache_dir;
  int rounds = 15;
  double min_sample_s = 0.02;
};

int run_gpu_bench(const GpuBenchArgs& args);

}  // namespace ktune::cli
