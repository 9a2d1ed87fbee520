// Runner: times a built kernel in a separate, sandboxed process.
//
// The `ktune-runner` executable loads an artifact, fills the inputs with
// random values, checks the output against the reference implementation
// (output pre-filled with NaN, relative tolerance suited to fp32 reductions),
// then times it (number calls per repeat, repeat repeats, min_repeat_ms floor,
// optional cache flush, cut short when hopeless). It speaks one JSON object
// per line on stdin/stdout.
//
// RunnerProcess owns one such child. A candidate that crashes the child, or
// does not answer within its timeout (the child is killed), becomes an error
// MeasureResult, and the next call starts a fresh child: nothing else is
// affected. Not thread-safe: one RunnerProcess per thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/types.h>

#include "measure/measure.h"

namespace ktune {

// A GPU candidate: the artifact is a cubin, launched with this
// configuration on device cuda:N through the driver API.
struct CudaLaunch {
  bool enabled = false;
  std::string kernel;
  std::array<int64_t, 3> grid{1, 1, 1};
  std::array<int64_t, 3> block{1, 1, 1};
  int device = 0;
};

struct RunRequest {
  std::string workload_key;
  std::string artifact_path;
  MeasureOptions options;
  CudaLaunch cuda;  // enabled: a GPU kernel, not a shared object
};

class RunnerProcess {
 public:
  explicit RunnerProcess(std::string runner_path = default_runner_path());
  ~RunnerProcess();
  RunnerProcess(const RunnerProcess&) = delete;
  RunnerProcess& operator=(const RunnerProcess&) = delete;

  // Never throws for a bad candidate; error codes kRuntimeError, kRunTimeout,
  // kWrongAnswer. Fills costs, error, error_message and run_seconds.
  MeasureResult run(const RunRequest& request);

  // Where the ktune-runner executable is: $KTUNE_RUNNER, else next to the
  // running executable, else the build tree's, else the install prefix's.
  static std::string default_runner_path();

 private:
  void start();
  void stop();
  std::string runner_path_;
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  int stderr_from_child_ = -1;  // kept for crash reports
};

}  // namespace ktune
