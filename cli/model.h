// Model tuning pieces shared by `ktune tasks`, `ktune tune model.onnx` and
// `ktune report --model`.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/database.h"
#include "frontend/onnx_frontend.h"
#include "measure/builder.h"
#include "schedule_space/target.h"

namespace ktune::cli {

// load_onnx_tasks with --input-shape texts; throws ktune::Error.
ModelTasks load_model(const std::string& path, const std::vector<std::string>& input_shapes);
// The artifact of a tuned record's config, built for `target` (free when
// tuning built it: the artifact cache); `transforms`, when given, gets what a
// call of it transforms (describe_timed_transforms). Throws ktune::Error
// naming the workload when the record no longer resolves (its template
// changed: tune again) or does not build.
std::string build_tuned_kernel(const Workload& w, const Record& r, const Target& target, const Builder& builder,
                               std::string* transforms = nullptr);

// The vendor libraries' time for a workload with `threads` threads: the
// fastest primary baseline of every library in this build (measure/
// baselines.h: OpenBLAS and oneDNN's matmul for matmul, dense and
// batch_matmul; oneDNN for convolutions), as `ktune bench` takes it, and its
// name, e.g. "onednn matmul". With a tuned kernel's artifact, that kernel is
// timed in the same rounds (tuned_s): on a machine whose speed drifts, a
// ratio of timings minutes apart says more about the drift than the kernels.
// nullopt when this build has no baseline for the operator. Prints why on
// stderr if a library fails or disagrees with the reference.
struct VendorTiming {
  double vendor_s = 0;
  std::string vendor;
  double tuned_s = std::numeric_limits<double>::infinity();  // +inf: no tuned kernel given
};
std::optional<VendorTiming> vendor_baseline(const Workload& w, int threads, const std::string& tuned_artifact = "");

// {"model", "opset", "tasks": [{workload, op, fields..., weight, flops, nodes}], "not_tunable": [...]}
nlohmann::json model_tasks_json(const ModelTasks& m);

}  // namespace ktune::cli
