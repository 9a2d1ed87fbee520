// Model tuning pieces shared by `ktune tasks`, `ktune tune model.onnx` and
// `ktune report --model`.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/onnx_frontend.h"

namespace ktune::cli {

// load_onnx_tasks with --input-shape texts; throws ktune::Error.
ModelTasks load_model(const std::string& path, const std::vector<std::string>& input_shapes);
// The vendor libraries' time for a workload with `threads` threads: the
// fastest primary baseline of every library in this build (measure/
// baselines.h: OpenBLAS and oneDNN's matmul for matmul, dense and
// batch_matmul; oneDNN for convolutions), as `ktune bench` takes it, and its
// name, e.g. "onednn matmul"; nullopt when this build has no baseline for
// the operator. Prints why on stderr if a library fails or disagrees with
// the reference.
std::optional<std::pair<double, std::string>> vendor_baseline(const Workload& w, int threads);

// {"model", "opset", "tasks": [{workload, op, fields..., weight, flops, nodes}], "not_tunable": [...]}
nlohmann::json model_tasks_json(const ModelTasks& m);

}  // namespace ktune::cli
