// `ktune export --format cpp`: a generated, stand-alone C++ kernel library.
//
// Writes a source tree that needs only a C++17 compiler, CMake and OpenMP:
// one generated kernel per workload (its best config on the device; for a
// requested workload never tuned there, the config tuned for the nearest
// workload of the same operator, else the template's default), a dispatcher
// by exact shape behind a C ABI header (include/ktune_kernels.h), generic
// kernels for any other shape, counters of what was missed, a README
// listing the kernels with their measured times and the device, and a
// CMakeLists.txt usable with add_subdirectory and as an installed package.
#pragma once

#include <string>
#include <vector>

#include "db/database.h"
#include "schedule_space/workload.h"

namespace ktune {

struct CppExportOptions {
  std::string out_dir;
  // The device the kernels are for; empty: the database's only device key
  // (an error naming them if there are several).
  std::string device_key;
  // The workloads to export; empty: every workload with a valid best record
  // on the device.
  std::vector<Workload> workloads;
};

struct CppExportKernel {
  std::string workload_key;
  std::string source;       // "tuned" | "nearest" | "default"
  std::string from;         // nearest: the tuned workload whose config it took
  std::string template_name;
  std::string config_text;
  double measured_s = 0;    // tuned: the best record's mean cost; else 0
};

struct CppExportSummary {
  std::string device_key;
  std::vector<CppExportKernel> kernels;
};

// Throws ktune::Error naming the problem (no records for the device, an
// unknown device key, a directory that cannot be written).
CppExportSummary export_cpp_library(const Database& db, const CppExportOptions& options);

}  // namespace ktune
