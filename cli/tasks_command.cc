// `ktune tasks model.onnx`: the tunable tasks of a model, and what is not
// tunable, without tuning anything.
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/model.h"
#include "frontend/onnx_frontend.h"

namespace ktune::cli {

namespace {

struct TasksArgs {
  std::string model;
  std::vector<std::string> input_shapes;
  std::string format = "text";
};

int run_tasks(const TasksArgs& a) {
  check_format(a.format);
  const ModelTasks m = load_model(a.model, a.input_shapes);
  if (a.format == "json") {
    std::cout << model_tasks_json(m).dump(2) << "\n";
    return kExitOk;
  }
  double flops = 0;
  int tunable = 0;
  for (const ModelTask& t : m.tasks) {
    flops += t.weight * t.workload.flops();
    tunable += t.weight;
  }
  std::cout << m.path << ": " << m.total_nodes << " nodes, opset " << m.opset
            << (m.producer.empty() ? "" : ", from " + m.producer) << "\n"
            << m.tasks.size() << " tasks (" << tunable << " tunable nodes, " << flops / 1e9 << " GFLOP in all):\n";
  for (const ModelTask& t : m.tasks) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%8.3f GFLOP", t.workload.flops() / 1e9);
    std::cout << "  x" << t.weight << "  " << buf << "  " << t.workload.key() << "\n";
  }
  if (!m.not_tunable.empty()) {
    std::cout << "not tunable:";
    for (const NotTunable& n : m.not_tunable) std::cout << " " << n.what << " x" << n.count << ";";
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

CommandRun add_tasks_command(CLI::App& app) {
  auto a = std::make_shared<TasksArgs>();
  CLI::App* cmd = app.add_subcommand("tasks", "list a model's tunable tasks (ONNX) without tuning");
  cmd->add_option("model", a->model, "ONNX model file")->required();
  cmd->add_option("--input-shape", a->input_shapes,
                  "shape of a model input with dynamic dimensions, NAME=D1xD2x... (repeatable)");
  cmd->add_option("--format", a->format, kFormatHelp)->capture_default_str();
  return [a] { return run_tasks(*a); };
}

}  // namespace ktune::cli
