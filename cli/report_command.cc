// `ktune report`: the tuning results of a database as one self-contained
// HTML page (report/html_report.h).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/model.h"
#include "report/html_report.h"
#include "schedule_space/target.h"
#include "schedule_space/error.h"
#include "schedule_space/workload.h"

namespace ktune::cli {

namespace {

struct ReportArgs {
  std::string db_path;
  std::string device_key;
  std::vector<std::string> ops;
  std::string out_path;
  std::string title = ReportInput{}.title;
  std::string model;
  std::vector<std::string> input_shapes;
  bool baseline = false;
  int threads = 0;
};

// What the report covers, from the flags: a model's tasks with their
// weights, or the operators given (one given n times has weight n).
ReportInput report_input(const ReportArgs& args) {
  ReportInput input;
  input.title = args.title;
  input.device_key = args.device_key;
  if (!args.model.empty()) {
    if (!args.ops.empty()) throw Error("give --model or --op, not both");
    const ModelTasks m = load_model(args.model, args.input_shapes);
    if (m.tasks.empty()) throw Error(args.model + " has no operator ktune can tune");
    input.model_name = std::filesystem::path(args.model).filename().string();
    for (const ModelTask& t : m.tasks) input.tasks.push_back({.workload_key = t.workload.key(), .weight = t.weight});
  }
  for (const std::string& spec : args.ops) {
    std::string key = Workload::parse(spec).key();
    auto same = [&](const ReportTask& t) { return t.workload_key == key; };
    if (auto it = std::find_if(input.tasks.begin(), input.tasks.end(), same); it != input.tasks.end()) {
      ++it->weight;
    } else {
      input.tasks.push_back({.workload_key = key});
    }
  }
  return input;
}

// The workloads the report lists: as render_html_report chooses them.
size_t task_count(const Database& db, const ReportInput& input) {
  if (!input.tasks.empty()) return input.tasks.size();
  std::set<std::string> keys;
  std::vector<std::string> device_keys =
      input.device_key.empty() ? db.device_keys() : std::vector<std::string>{input.device_key};
  for (const std::string& device_key : device_keys) {
    for (std::string& key : db.workload_keys(device_key)) keys.insert(std::move(key));
  }
  return keys.size();
}

int run_report(const ReportArgs& args) {
  // Database::open would create a missing file: a typo must not become an
  // empty database and a confusing "nothing to report".
  if (!std::filesystem::exists(args.db_path)) throw Error("no database " + args.db_path);
  ReportInput input = report_input(args);
  if (args.baseline) {
    if (input.tasks.empty()) throw Error("--baseline needs --model or --op (the workloads to time)");
    const int threads = detect_cpu_target(args.threads).cpu.threads;
    for (ReportTask& t : input.tasks) {
      if (auto b = vendor_baseline(Workload::parse(t.workload_key), threads)) {
        t.baseline_s = b->vendor_s;
        t.baseline_name = b->vendor;
      }
    }
  }
  std::unique_ptr<Database> db = Database::open(args.db_path, Database::Access::kReadOnly);
  const std::string html = render_html_report(*db, input);
  write_text_file(args.out_path, html, "the report");
  std::cout << "wrote " << args.out_path << " (" << task_count(*db, input) << " tasks)\n";
  return kExitOk;
}

}  // namespace

CommandRun add_report_command(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand("report", "write an HTML report of tuning results (one self-contained file)");
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->required();
  cmd->add_option("--device-key", args->device_key, "device key (default: every device key in the database)");
  cmd->add_option("--op", args->ops,
                  "operator spec (repeatable; repeated: its weight; default: every workload in the database)");
  cmd->add_option("--out", args->out_path, "HTML file to write")->required();
  cmd->add_option("--title", args->title, "the page's title")->capture_default_str();
  cmd->add_option("--model", args->model, "ONNX model: report its tasks with their weights");
  cmd->add_option("--input-shape", args->input_shapes, "model input shape NAME=D1xD2x... (repeatable)");
  cmd->add_flag("--baseline", args->baseline, "time the vendor libraries (oneDNN, OpenBLAS) on this machine for the speedup column");
  add_threads_option(cmd, args->threads, "threads for --baseline (default: all cores; match the tuned device key)");
  return [args] { return run_report(*args); };
}

}  // namespace ktune::cli
