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
// The vendor library's time for a workload (the faster of oneDNN and
// OpenBLAS where both apply) with `threads` threads, and its name; nullopt
// when this build has no baseline for it. Prints why on stderr if one fails.
std::optional<std::pair<double, std::string>> vendor_baseline(const Workload& w, int threads);

// {"model", "opset", "tasks": [{workload, op, fields..., weight, flops, nodes}], "not_tunable": [...]}
nlohmann::json model_tasks_json(const ModelTasks& m);

}  // namespace ktune::cli
