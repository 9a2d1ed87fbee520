// The vendor libraries on the GPU, for `ktune bench --target cuda:N`: cuBLAS
// (matmul, dense, batch_matmul) and cuDNN (conv2d, depthwise as grouped
// convolution, the algorithm chosen by cuDNN's own search), both loaded at
// run time and optional.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "schedule_space/workload.h"

namespace ktune {

struct GpuTiming {
  std::string library;        // "cublas sgemm", "cudnn <algo>"; empty when skipped
  std::string skipped;        // why there is no timing (library absent, shape it cannot do)
  std::vector<double> seconds;  // per call, one per round
  std::vector<float> output;  // of the last call, Workload::output() layout
  double median() const;
};

// Per-call seconds of `rounds` samples, each a batch of calls that lasts at
// least min_sample_s; batch_seconds(n) is the seconds n calls take.
std::vector<double> time_batches(const std::function<double(int)>& batch_seconds, int rounds, double min_sample_s);

// Throws CudaError on a CUDA failure.
GpuTiming time_vendor(const Workload& w, int device, const std::vector<std::vector<float>>& inputs, int rounds,
                      double min_sample_s);

}  // namespace ktune
