// `ktune export --format cpp` for a CUDA device: a generated, stand-alone
// CUDA kernel library (CMake with the CUDA language, nvcc, the CUDA runtime).
// One generated kernel per workload, chosen as for the CPU library; a
// dispatcher by exact shape behind a C ABI header (include/ktune_kernels.h:
// device pointers, a cudaStream_t per call) with generic kernels for any
// other shape; a README listing the kernels with their measured times and
// the device.
#pragma once

#include <string>

#include "export/cpp_export.h"
#include "export/kernel_choice.h"

namespace ktune {

// Writes the tree for plan (whose target is a CUDA device) under out_dir.
// Throws ktune::Error if a file cannot be written or a kernel not generated.
CppExportSummary export_cuda_library(const export_detail::ExportPlan& plan, const std::string& out_dir);

}  // namespace ktune
