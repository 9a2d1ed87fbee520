// CudaMeasurer: measures GPU candidates on this machine's cuda:N.
//
// For each input: template check (invalid -> kInvalidConfig), instantiate,
// emit CUDA C (codegen_cuda.h), compile with NVRTC for the device's arch in
// a child process that the compile timeout can kill (cached by source in
// <cache>/cuda/), then run in the sandboxed
// ktune-runner process, which loads the cubin with the driver API, checks
// the output against the reference and times it with CUDA events. A kernel
// that faults costs only its runner process.
#pragma once

#include <memory>
#include <string>

#include "measure/local_measurer.h"

#include "measure/measure.h"
#include "measure/runner.h"

namespace ktune {

struct CudaMeasurerOptions {
  std::string cache_dir;    // empty: default_cache_dir()
  std::string runner_path;  // empty: RunnerProcess::default_runner_path()
  std::string worker_name = "local";
};

class CudaMeasurer : public Measurer {
 public:
  explicit CudaMeasurer(CudaMeasurerOptions options = {});
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& options) override;

 private:
  CudaMeasurerOptions options_;
  std::string runner_path_;  // also compiles: ktune-runner --nvrtc
  RunnerProcess runner_;
};

// The measurer for a target: a LocalMeasurer on the CPU, a CudaMeasurer (with
// options' cache, runner and worker name) on a GPU.
std::unique_ptr<Measurer> make_measurer(const Target& target, const LocalMeasurerOptions& options);

}  // namespace ktune
