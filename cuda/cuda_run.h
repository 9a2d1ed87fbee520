// Running one generated kernel on a GPU through the CUDA driver API (loaded
// at run time). Used inside the sandboxed ktune-runner process: a kernel
// that faults leaves the CUDA context unusable ("sticky" errors), so the
// runner process is replaced after any CUDA error, and the worker lives on.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "schedule_space/error.h"

namespace ktune {

class CudaError : public Error {
 public:
  explicit CudaError(const std::string& what) : Error(what) {}
};

struct CudaLaunchSpec {
  std::string cubin_path;
  std::string kernel;
  std::array<int64_t, 3> grid{1, 1, 1};
  std::array<int64_t, 3> block{1, 1, 1};
  int device = 0;  // cuda:N
};

// The kernel loaded on its device with device copies of the inputs and an
// output buffer (filled with NaN). Throws CudaError naming the failing call.
class CudaKernelRun {
 public:
  CudaKernelRun(const CudaLaunchSpec& spec, const std::vector<std::vector<float>>& inputs, size_t output_elements);
  ~CudaKernelRun();
  CudaKernelRun(const CudaKernelRun&) = delete;
  CudaKernelRun& operator=(const CudaKernelRun&) = delete;

  // One call, waited for: a fault becomes a CudaError here.
  void run_once();
  // Seconds `calls` back-to-back launches take (CUDA events).
  double time_calls(int calls);
  std::vector<float> output() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ktune
