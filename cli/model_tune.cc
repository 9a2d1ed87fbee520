#include "cli/model_tune.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/model.h"
#include "cli/progress.h"
#include "schedule_space/error.h"
#include "tuner/tuning.h"

namespace ktune::cli {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string ms(double s) {
  if (!std::isfinite(s)) return "-";
  char buf[32];
  if (s < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
  }
  return buf;
}
std::string ratio(double x) {
  if (!std::isfinite(x) || x <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", x);
  return buf;
}

// Live display: a redrawn block on a terminal, one log line per finished
// allocation of a task otherwise.
class ModelProgress : public TuningObserver {
 public:
  ModelProgress(std::string model, std::string device_key, std::string tuner, bool text)
      : model_(std::move(model)), device_key_(std::move(device_key)), tuner_(std::move(tuner)), text_(text),
        tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {}

  void started(const TuningProgress& p) override {
    trials_at_start_ = p.trials_at_start;
    if (!text_) return;
    std::cerr << "tuning " << model_ << ": " << p.tasks.size() << " tasks, " << p.budget << " trials on "
              << device_key_ << " with " << tuner_;
    if (p.trials_at_start > 0) std::cerr << " (" << p.trials_at_start << " trials done by an earlier run of this model)";
    std::cerr << "\n";
  }

  void progress(const TuningProgress& p) override {
    if (in_flight_.size() != p.tasks.size()) in_flight_.assign(p.tasks.size(), 0);
    // The untuned defaults come first; the display starts with the search.
    bool search = false;
    for (const TuningProgress::Task& t : p.tasks) search |= t.trials > 1 || !std::isfinite(t.default_s);
    if (start_total_ == 0) start_total_ = p.untuned_s();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int fresh = p.trials - trials_at_start_;
    const double eta = fresh > 0 ? elapsed / fresh * std::max(0, p.budget - p.trials) : 0;
    std::ostringstream overall;
    overall << "model: estimated operator time " << ms(p.estimated_s()) << " (untuned " << ms(p.untuned_s())
            << "), " << p.trials << "/" << p.budget << " trials, elapsed " << format_duration(elapsed) << ", ETA "
            << format_duration(eta);
    if (!tty_) {
      // A log line when a task's allocation is measured.
      for (size_t i = 0; i < p.tasks.size(); ++i) {
        const TuningProgress::Task& t = p.tasks[i];
        if (in_flight_[i] > 0 && t.in_flight == 0 && search) {
          std::fprintf(stderr, "[%d/%d] %s: %d trials, best %s (%.1f GFLOP/s); %s\n", p.trials, p.budget,
                       t.workload->key().c_str(), t.trials, ms(t.best_s).c_str(),
                       std::isfinite(t.best_s) ? t.workload->flops() / t.best_s / 1e9 : 0.0, overall.str().c_str());
        }
        in_flight_[i] = t.in_flight;
      }
      std::fflush(stderr);
      return;
    }
    if (lines_ > 0) std::fprintf(stderr, "\033[%dA", lines_);
    lines_ = 0;
    for (size_t i = 0; i < p.tasks.size(); ++i) {
      const TuningProgress::Task& t = p.tasks[i];
      std::fprintf(stderr, "\r\033[K%s %4d trials  %-11s %7.1f GFLOP/s  x%d %s\n", t.in_flight > 0 ? ">" : " ",
                   t.trials + t.in_flight, ms(t.best_s).c_str(),
                   std::isfinite(t.best_s) ? t.workload->flops() / t.best_s / 1e9 : 0.0, t.weight,
                   t.workload->key().c_str());
      ++lines_;
    }
    std::fprintf(stderr, "\r\033[K%s\n", overall.str().c_str());
    ++lines_;
    std::fflush(stderr);
  }

 private:
  std::string model_, device_key_, tuner_;
  bool text_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  int trials_at_start_ = 0;
  double start_total_ = 0;
  int lines_ = 0;
  std::vector<int> in_flight_;
};

}  // namespace

int tune_model(const ModelTuneArgs& args) {
  check_format(args.format);
  const ModelTasks model = load_model(args.model, args.input_shapes);
  if (model.tasks.empty()) {
    std::string nt;
    for (const NotTunable& n : model.not_tunable) nt += (nt.empty() ? "" : ", ") + n.what + " x" + std::to_string(n.count);
    throw Error(args.model + " has no operator ktune can tune (it has: " + nt + ")");
  }
  const Target target = target_from_flag("--target", args.device, args.threads);
  const bool gpu = target.kind == TargetKind::kCuda;
  std::unique_ptr<Database> db = Database::open(args.db_path);
  remember_device(*db, target);
  std::unique_ptr<Measurer> measurer = make_measurer(target, args.cache_dir);
  const std::string device_key = target.device_key();

  TuningRequest request;
  for (const ModelTask& mt : model.tasks) request.tasks.push_back(TuningTask{mt.workload, mt.weight});
  request.target = target;
  request.budget = Budget::kModel;
  request.options = args.options;
  // Records of this model's runs carry this job name: a re-run of the same
  // command counts them against its budget and goes on.
  request.options.job = "model " + std::filesystem::path(args.model).filename().string();
  request.tuner = args.tuner;
  request.seed = args.seed;
  request.task_cap = args.task_cap;
  DatabaseLog log(*db);
  ModelProgress progress(args.model, device_key, args.tuner, args.format == "text");
  const TuningResult result = tune(request, *measurer, &log, &progress);

  struct Entry {
    const WorkloadResult* r;
    double baseline_s = kInf;
    std::string baseline_name;
    double side_s = kInf;  // the tuned kernel, timed in the vendor's rounds
  };
  std::vector<Entry> entries;
  for (const WorkloadResult& r : result.workloads) entries.push_back(Entry{&r, kInf, "", kInf});
  if (args.baseline && !gpu) {  // GPU vendor timings: `ktune bench --target cuda:N`
    // The runner's OpenMP workers must not spin on the cores timed below.
    measurer.reset();
    const Builder builder(args.cache_dir.empty() ? default_cache_dir() : args.cache_dir);
    for (Entry& e : entries) {
      const WorkloadResult& w = *e.r;
      std::optional<Record> best = w.best ? w.best : db->best(w.workload.key(), device_key);
      std::string artifact;
      try {
        if (best) artifact = build_tuned_kernel(w.workload, *best, target, builder);
      } catch (const Error& why) {
        std::cerr << "ktune: the tuned kernel of " << w.workload.key() << " is not timed next to the vendor: " << why.what()
                  << "\n";
      }
      if (auto b = vendor_baseline(w.workload, target.cpu.threads, artifact)) {
        e.baseline_s = b->vendor_s;
        e.baseline_name = b->vendor;
        e.side_s = b->tuned_s;
      }
    }
  }

  // Summary.
  double total_best = 0, total_default = 0, total_baseline = 0;
  bool baseline_complete = true;
  double total_side = 0;  // the tuned kernels timed in the vendor's rounds
  bool side_complete = true;
  nlohmann::json tasks_json = nlohmann::json::array();
  std::ostringstream table;
  table << "| task | count | best | GFLOP/s | vs untuned | vs vendor | count x best |\n| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const Entry& entry : entries) {
    const WorkloadResult& e = *entry.r;
    const double gflops = std::isfinite(e.best_s) ? e.workload.flops() / e.best_s / 1e9 : 0;
    if (std::isfinite(e.best_s)) total_best += e.weight * e.best_s;
    if (std::isfinite(e.default_s)) total_default += e.weight * e.default_s;
    if (std::isfinite(entry.baseline_s)) {
      total_baseline += e.weight * entry.baseline_s;
      if (std::isfinite(entry.side_s)) {
        total_side += e.weight * entry.side_s;
      } else {
        side_complete = false;
      }
    } else {
      baseline_complete = false;
    }
    // Against the vendor: the tuned kernel's time from the same rounds
    // where there is one.
    const double tuned_s = std::isfinite(entry.side_s) ? entry.side_s : e.best_s;
    char g[32];
    std::snprintf(g, sizeof g, "%.1f", gflops);
    table << "| " << e.workload.key() << " | " << e.weight << " | " << ms(e.best_s) << " | " << g << " | "
          << ratio(e.default_s / e.best_s) << " | "
          << (std::isfinite(entry.baseline_s) ? ratio(entry.baseline_s / tuned_s) + " (" + entry.baseline_name + ")" : "-")
          << " | " << ms(e.weight * e.best_s) << " |\n";
    tasks_json.push_back({{"workload", e.workload.key()}, {"weight", e.weight}, {"trials", e.trials_before + e.trials},
                          {"errors", e.errors},
                          {"best_s", std::isfinite(e.best_s) ? nlohmann::json(e.best_s) : nlohmann::json()},
                          {"gflops", gflops},
                          {"default_s", std::isfinite(e.default_s) ? nlohmann::json(e.default_s) : nlohmann::json()},
                          {"baseline_s", std::isfinite(entry.baseline_s) ? nlohmann::json(entry.baseline_s) : nlohmann::json()},
                          {"baseline", entry.baseline_name},
                          {"tuned_side_by_side_s", std::isfinite(entry.side_s) ? nlohmann::json(entry.side_s) : nlohmann::json()}});
  }
  const bool side_total = baseline_complete && side_complete && total_side > 0;
  if (args.format == "json") {
    std::cout << nlohmann::json{{"model", args.model}, {"device_key", device_key}, {"trials", result.trials_before + result.trials},
                                {"tasks", tasks_json}, {"estimated_total_s", total_best},
                                {"untuned_total_s", total_default},
                                {"vendor_total_s", baseline_complete ? nlohmann::json(total_baseline) : nlohmann::json()},
                                {"tuned_side_by_side_total_s", side_total ? nlohmann::json(total_side) : nlohmann::json()},
                                {"not_tunable", model_tasks_json(model)["not_tunable"]}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "\n" << table.str() << "\nestimated operator time: " << ms(total_best) << " tuned, " << ms(total_default)
              << " untuned (" << ratio(total_default / total_best) << ")";
    if (side_total) {
      std::cout << ", " << ms(total_baseline) << " with the vendor libraries (" << ratio(total_baseline / total_side)
                << " against the tuned kernels timed in the same rounds: " << ms(total_side) << ")";
    } else if (baseline_complete && total_baseline > 0) {
      std::cout << ", " << ms(total_baseline) << " with the vendor libraries (" << ratio(total_baseline / total_best) << ")";
    }
    std::cout << "\n" << result.trials_before + result.trials << " trials on " << device_key << "; records in " << args.db_path << "\n";
    if (!model.not_tunable.empty()) {
      std::cout << "not tuned:";
      for (const NotTunable& n : model.not_tunable) std::cout << " " << n.what << " x" << n.count << ";";
      std::cout << "\n";
    }
  }
  for (const WorkloadResult& e : result.workloads) {
    if (!std::isfinite(e.best_s)) {
      std::cerr << "ktune: error: no candidate measured valid for " << e.workload.key() << "\n";
      return kExitFailed;
    }
  }
  return kExitOk;
}

}  // namespace ktune::cli
