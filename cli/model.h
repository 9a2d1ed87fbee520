// Model tuning pieces shared by `ktune tasks`, `ktune tune model.onnx` and
// `ktune report --model`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/onnx_frontend.h"

namespace ktune::cli {

// load_onnx_tasks with --input-shape texts; throws ktune::Error.
ModelTasks load_model(const std::string& path, const std::vector<std::string>& input_shapes);
// {"model", "opset", "tasks": [{workload, op, fields..., weight, flops, nodes}], "not_tunable": [...]}
nlohmann::json model_tasks_json(const ModelTasks& m);

}  // namespace ktune::cli
