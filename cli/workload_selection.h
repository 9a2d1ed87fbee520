// The workloads a command covers, chosen with --op or --model (`ktune best`,
// `ktune export`).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "schedule_space/workload.h"

namespace ktune::cli {

struct WorkloadSelection {
  std::vector<std::string> ops;
  std::string model;
  std::vector<std::string> input_shapes;

  // Registers --op, --model and --input-shape on cmd, bound to this
  // selection (which must outlive the parse); op_help describes --op.
  void add_options(CLI::App* cmd, const std::string& op_help);
  // The workloads given, in order, each once; empty when neither flag was
  // given. Throws ktune::Error for both flags, a bad spec, a model that cannot
  // be read, or a model with nothing to tune.
  std::vector<Workload> workloads() const;
};

}  // namespace ktune::cli
