// LocalMeasurer: measures candidates on this machine.
//
// For each input: template check (invalid -> kInvalidConfig), instantiate,
// emit C++, build (in parallel, cached), then run one at a time in a
// sandboxed ktune-runner process (so timings do not interfere).
#pragma once

#include <memory>
#include <string>

#include "measure/builder.h"
#include "measure/measure.h"
#include "measure/runner.h"

namespace ktune {

struct LocalMeasurerOptions {
  std::string cache_dir;    // empty: default_cache_dir()
  int build_parallel = 0;   // <= 0: one job per core
  std::string runner_path;  // empty: RunnerProcess::default_runner_path()
  std::string worker_name = "local";
};

class LocalMeasurer : public Measurer {
 public:
  explicit LocalMeasurer(LocalMeasurerOptions options = {});
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs,
                                     const MeasureOptions& options) override;

 private:
  LocalMeasurerOptions options_;
  Builder builder_;
  RunnerProcess runner_;
};

}  // namespace ktune
