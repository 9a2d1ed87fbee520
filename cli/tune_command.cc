// `ktune tune`: tune operators on this machine with the embedded default
// (local measurer + SQLite file).
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/model_tune.h"
#include "cli/progress.h"
#include "schedule_space/error.h"
#include "tuner/tuning.h"

namespace ktune::cli {

namespace {

struct TuneArgs {
  std::vector<std::string> ops;
  std::string template_name;
  std::string db_path = "ktune.db";
  std::string tuner = "xgb";
  int threads = 0;
  uint64_t seed = 1;
  std::string format = "text";
  std::string cache_dir;
  std::string compiler;
  std::vector<std::string> flags;
  std::vector<std::string> configs;
  std::string device = "cpu";  // --target
  TuneOptions options;
  ModelTuneArgs model;  // the model's own flags
};

std::string errors_text(const TuneSummary& s) {
  std::ostringstream out;
  out << s.errors << " errors";
  if (!s.error_counts.empty()) {
    out << " (";
    for (size_t i = 0; i < s.error_counts.size(); ++i) {
      out << (i ? ", " : "") << s.error_counts[i].second << " "
          << error_name(s.error_counts[i].first);
    }
    out << ")";
  }
  return out.str();
}

nlohmann::json summary_json(const TuneSummary& s) {
  nlohmann::json j;
  j["workload"] = s.workload_key;
  j["device_key"] = s.device_key;
  j["template"] = s.template_name;
  j["trials"] = s.trials;
  j["errors"] = s.errors;
  nlohmann::json counts = nlohmann::json::object();
  for (auto [e, n] : s.error_counts) counts[std::string(error_name(e))] = n;
  j["error_counts"] = counts;
  j["skipped_already_measured"] = s.skipped_already_measured;
  j["elapsed_s"] = s.elapsed_s;
  j["search_s"] = s.search_s;
  j["best"] = s.best ? record_json(*s.best) : nlohmann::json();
  if (!s.best) j["failure"] = s.first_error;
  return j;
}

void print_summary_text(const TuneSummary& s, std::ostream& out) {
  out << s.workload_key << " on " << s.device_key << "\n"
      << "  template " << s.template_name << ", " << s.trials << " trials, " << errors_text(s)
      << ", " << format_duration(s.elapsed_s) << " (" << format_duration(s.search_s) << " in the search)\n";
  if (s.skipped_already_measured > 0) {
    out << "  " << s.skipped_already_measured << " configs already in the database were not measured again\n";
  }
  if (s.best) {
    out << "  best: " << speed_text(*s.best) << "  config #" << s.best->config_index << ": "
        << s.best->config_text << "\n";
  } else {
    out << "  no candidate measured valid";
    if (!s.first_error.empty()) out << "; first error: " << s.first_error;
    out << "\n";
  }
}

int run_tune(const TuneArgs& args) {
  check_format(args.format);
  if (args.model.model.empty() == args.ops.empty()) {
    throw Error(args.ops.empty() ? "give a model file or at least one --op" : "give a model file or --op, not both");
  }
  if (!args.model.model.empty()) {
    if (!args.configs.empty() || !args.template_name.empty()) {
      throw Error("--config and --template are for one --op, not a model");
    }
    ModelTuneArgs m = args.model;
    m.db_path = args.db_path;
    m.tuner = args.tuner;
    m.threads = args.threads;
    m.device = args.device;
    m.seed = args.seed;
    m.format = args.format;
    m.cache_dir = args.cache_dir;
    m.options = args.options;
    if (!args.compiler.empty() || !args.flags.empty()) throw Error("--compiler and --cflags are for --op tuning");
    return tune_model(m);
  }
  std::vector<Workload> workloads;
  for (const std::string& spec : args.ops) workloads.push_back(Workload::parse(spec));
  if (!args.configs.empty() && workloads.size() != 1) {
    throw Error("--config names configs of one operator's space; give exactly one --op with it");
  }
  Target target = target_from_flag("--target", args.device, args.threads);
  if (!args.compiler.empty()) target.cpu.compiler = args.compiler;
  if (!args.flags.empty()) target.cpu.flags = args.flags;
  std::unique_ptr<Database> db = Database::open(args.db_path);
  remember_device(*db, target);
  std::unique_ptr<Measurer> measurer = make_measurer(target, args.cache_dir);

  nlohmann::json json_out = nlohmann::json::array();
  bool all_ok = true;
  for (const Workload& w : workloads) {
    TuneSummary summary = tune_workload(w, target, args.template_name, args.tuner, args.seed,
                                        *measurer, db.get(), args.options, args.format == "text",
                                        args.configs);
    all_ok = all_ok && summary.best.has_value();
    if (args.format == "json") {
      json_out.push_back(summary_json(summary));
    } else {
      print_summary_text(summary, std::cout);
    }
  }
  if (args.format == "json") std::cout << json_out.dump(2) << "\n";
  if (!all_ok) {
    std::cerr << "ktune: error: no candidate measured valid for at least one operator (see above)\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

namespace {

// What `ktune tune --op` shows while a workload is tuned: a line naming each
// template as its search starts (and the transfer model it learned from),
// then its progress line.
class OpProgress : public TuningObserver {
 public:
  explicit OpProgress(bool announce) : announce_(announce) {}

  void transfer_learned(const Task& task, size_t records) override {
    if (announce_) {
      std::cerr << "transfer: a base model from " << records << " records of other workloads on "
                << task.target.device_key() << "\n";
    }
  }
  void template_started(const Task& task, int trials) override {
    if (announce_) {
      std::cerr << "tuning " << task.workload.key() << " on " << task.target.device_key() << " with "
                << task.tmpl->name() << ": " << task.space->size() << " configs, " << trials << " trials\n";
    }
    display_.emplace(task.workload.key());
    trials_ = trials;
    flops_ = task.workload.flops();
    base_trials_ = last_trials_;  // what came before is the earlier templates'
    base_errors_ = last_errors_;
    start_ = std::chrono::steady_clock::now();
  }
  void progress(const TuningProgress& p) override {
    const TuningProgress::Task& t = p.tasks.at(p.last_task);
    last_trials_ = t.trials;
    last_errors_ = t.errors;
    if (!display_) return;
    TuneProgress q;
    q.trials_done = t.trials - base_trials_;
    q.trials_total = trials_;
    q.errors = t.errors - base_errors_;
    q.best_gflops = std::isfinite(t.best_s) ? flops_ / t.best_s / 1e9 : 0;
    q.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    display_->update(q);
  }
  void template_finished(const TuneSummary&) override {
    if (display_) display_->finish();
    display_.reset();
  }

 private:
  bool announce_;
  std::optional<ProgressDisplay> display_;
  int trials_ = 0;
  double flops_ = 0;
  int base_trials_ = 0, base_errors_ = 0, last_trials_ = 0, last_errors_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

TuneSummary tune_workload(const Workload& w, const Target& target, const std::string& template_name,
                          const std::string& tuner_name, uint64_t seed, Measurer& measurer,
                          Database* db, const TuneOptions& options, bool announce,
                          const std::vector<std::string>& configs) {
  TuningRequest request;
  request.tasks = {TuningTask{w, 1}};
  request.target = target;
  request.options = options;
  request.tuner = tuner_name;
  request.seed = seed;
  request.template_name = template_name;
  request.configs = configs;
  std::optional<DatabaseLog> log;
  if (db) log.emplace(*db);
  OpProgress progress(announce);
  const TuningResult result = tune(request, measurer, log ? &*log : nullptr, &progress);
  // The summary of the template that won, with the trials and errors of all.
  const WorkloadResult& r = result.workloads.front();
  const TuneSummary* winner = &r.templates.front();
  for (const TuneSummary& s : r.templates) {
    if (s.best && (!winner->best || s.best->result.mean_cost() < winner->best->result.mean_cost())) winner = &s;
  }
  TuneSummary out = *winner;
  std::map<MeasureError, int> counts;
  out.trials = out.errors = out.skipped_already_measured = 0;
  for (const TuneSummary& s : r.templates) {
    out.trials += s.trials;
    out.errors += s.errors;
    out.skipped_already_measured += s.skipped_already_measured;
    for (auto [e, n] : s.error_counts) counts[e] += n;
    if (out.first_error.empty()) out.first_error = s.first_error;
  }
  out.error_counts.assign(counts.begin(), counts.end());
  return out;
}

CommandRun add_tune_command(CLI::App& app) {
  auto args = std::make_shared<TuneArgs>();
  CLI::App* cmd = app.add_subcommand("tune", "tune operators or a whole ONNX model on this machine (CPU or cuda:N) and store every measurement");
  cmd->add_option("model", args->model.model, "ONNX model: tune all its tunable operators within --trials");
  cmd->add_option("--op", args->ops, "operator spec, e.g. 'matmul(m=512,n=512,k=512)' (repeatable)");
  cmd->add_option("--input-shape", args->model.input_shapes,
                  "model: shape of an input with dynamic dimensions, NAME=D1xD2x... (repeatable)");
  cmd->add_option("--task-cap", args->model.task_cap, "model: at most this many trials per task (0: no cap)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-baseline", [args](int64_t) { args->model.baseline = false; },
                "model: do not time the vendor libraries for the summary");
  cmd->add_option("--trials", args->options.trials, "candidates to measure per operator (for a model: in all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->capture_default_str();
  cmd->add_option("--tuner", args->tuner, "search strategy: xgb (cost model + simulated annealing), ga (genetic), random or grid")->capture_default_str();
  cmd->add_option("--template", args->template_name,
                  "schedule template (default: every template that takes the operator, trials shared evenly)");
  add_threads_option(cmd, args->threads, "threads for generated kernels (default: all cores)");
  cmd->add_option("--target", args->device, "where to tune: cpu, or cuda:N (a local NVIDIA GPU)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed")->capture_default_str();
  cmd->add_option("--config", args->configs,
                  "measure exactly this config (as `ktune space` prints it, e.g. 'tile_m=[4,128] mr=6 ...') "
                  "instead of searching (repeatable; one --op)");
  cmd->add_flag("--no-seeds", [args](int64_t) { args->options.seeds = false; },
                "do not measure the template's analytical seed configs before the search");
  cmd->add_flag("--no-transfer", [args](int64_t) { args->options.transfer = false; },
                "xgb: do not learn from the database's records of other workloads on this device");
  cmd->add_option("--batch-size", args->options.batch_size, "candidates per measurement batch")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--early-stopping", args->options.early_stopping,
                  "stop after this many trials without improvement (0: off)")->capture_default_str();
  cmd->add_option("--repeat", args->options.measure.repeat, "timed repeats per candidate")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--number", args->options.measure.number,
                  "calls per repeat (0: enough for --min-repeat-ms)")->capture_default_str();
  cmd->add_option("--min-repeat-ms", args->options.measure.min_repeat_ms,
                  "minimum duration of one repeat")->capture_default_str();
  cmd->add_flag("--flush-cache", args->options.measure.flush_cache, "evict caches before each repeat");
  cmd->add_option("--timeout", args->options.measure.run_timeout_s, "run timeout per candidate (s)")
      ->capture_default_str();
  cmd->add_option("--compile-timeout", args->options.measure.compile_timeout_s,
                  "compile timeout per candidate (s)")->capture_default_str();
  cmd->add_option("--final-top", args->options.final_top,
                  "top candidates re-measured at the end")->capture_default_str();
  cmd->add_option("--final-repeat", args->options.final_repeat,
                  "repeats for the final re-measurement")->capture_default_str();
  cmd->add_option("--compiler", args->compiler, "C++ compiler for kernels (default: c++)");
  cmd->add_option("--cflags", args->flags, "compiler flags for kernels (default: -O3 -march=native -ffp-contract=fast)")
      ->delimiter(' ');
  cmd->add_option("--cache-dir", args->cache_dir, "artifact cache directory");
  cmd->add_option("--format", args->format, kFormatHelp)->capture_default_str();
  return [args] { return run_tune(*args); };
}

}  // namespace ktune::cli
