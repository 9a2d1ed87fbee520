#include "cli/workload_selection.h"

#include <set>

#include "cli/model.h"
#include "schedule_space/error.h"

namespace ktune::cli {

void WorkloadSelection::add_options(CLI::App* cmd, const std::string& op_help) {
  cmd->add_option("--op", ops, op_help);
  cmd->add_option("--model", model, "ONNX model: its tunable operators");
  cmd->add_option("--input-shape", input_shapes, "model input shape NAME=D1xD2x... (repeatable)");
}

std::vector<Workload> WorkloadSelection::workloads() const {
  if (!model.empty() && !ops.empty()) throw Error("give --model or --op, not both");
  if (model.empty() && !input_shapes.empty()) throw Error("--input-shape is for --model");
  std::vector<Workload> out;
  std::set<std::string> seen;
  auto add = [&](Workload w) {
    if (seen.insert(w.key()).second) out.push_back(std::move(w));
  };
  if (!model.empty()) {
    const ModelTasks m = load_model(model, input_shapes);
    if (m.tasks.empty()) throw Error(model + " has no operator ktune can tune");
    for (const ModelTask& t : m.tasks) add(t.workload);
  }
  for (const std::string& spec : ops) add(Workload::parse(spec));
  return out;
}

}  // namespace ktune::cli
