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
#include "tuner/task_scheduler.h"

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

// One task of the model and everything the run knows about it.
struct ModelEntry {
  Workload workload;
  int weight = 1;
  std::vector<Task> tasks;                     // one per template
  std::vector<std::unique_ptr<Tuner>> tuners;  // made at the first allocation (transfer sees what came before)
  uint64_t default_index = 0;                  // the untuned default: template 0's first seed
  double default_s = kInf;
  double best_s = kInf;
  double baseline_s = kInf;
  std::string baseline_name;
  int errors = 0;
};

double best_cost(Database& db, const ModelEntry& e, const std::string& device_key) {
  std::optional<Record> r = db.best(e.workload.key(), device_key);
  return r && r->result.ok() && is_current(*r) ? r->result.mean_cost() : kInf;
}

double recorded_cost(Database& db, const Task& task, uint64_t index) {
  double best = kInf;
  for (const Record& r : db.history(task.workload.key(), task.target.device_key())) {
    if (r.template_name == task.tmpl->name() && r.template_version == task.tmpl->version() &&
        r.config_index == index && r.result.ok()) {
      best = std::min(best, r.result.mean_cost());
    }
  }
  return best;
}

// Live display: a redrawn block on a terminal, one log line per allocation
// otherwise.
class ModelProgress {
 public:
  ModelProgress(const std::vector<ModelEntry>& entries, const TaskScheduler& sched, int budget)
      : entries_(entries), sched_(sched), budget_(budget), tty_(isatty(fileno(stderr)) != 0),
        start_(std::chrono::steady_clock::now()) {}

  void set_start_total(double s) { start_total_ = s; }
  void update(size_t current, int trials_in_flight) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int done = sched_.trials_done() + trials_in_flight;
    const int fresh = done - done_at_start_;
    const double eta = fresh > 0 ? elapsed / fresh * std::max(0, budget_ - done) : 0;
    std::ostringstream overall;
    overall << "model: estimated operator time " << ms(total_now()) << " (untuned " << ms(start_total_) << "), "
            << done << "/" << budget_ << " trials, elapsed " << format_duration(elapsed) << ", ETA "
            << format_duration(eta);
    if (!tty_) {
      if (trials_in_flight > 0) return;  // a log line per allocation, not per batch
      const ModelEntry& e = entries_[current];
      std::fprintf(stderr, "[%d/%d] %s: %d trials, best %s (%.1f GFLOP/s); %s\n", done, budget_,
                   e.workload.key().c_str(), sched_.trials(current) + trials_in_flight, ms(e.best_s).c_str(),
                   std::isfinite(e.best_s) ? e.workload.flops() / e.best_s / 1e9 : 0.0, overall.str().c_str());
      std::fflush(stderr);
      return;
    }
    if (lines_ > 0) std::fprintf(stderr, "\033[%dA", lines_);
    lines_ = 0;
    for (size_t i = 0; i < entries_.size(); ++i) {
      const ModelEntry& e = entries_[i];
      std::fprintf(stderr, "\r\033[K%s %4d trials  %-11s %7.1f GFLOP/s  x%d %s\n", i == current ? ">" : " ",
                   sched_.trials(i) + (i == current ? trials_in_flight : 0), ms(e.best_s).c_str(),
                   std::isfinite(e.best_s) ? e.workload.flops() / e.best_s / 1e9 : 0.0, e.weight,
                   e.workload.key().c_str());
      ++lines_;
    }
    std::fprintf(stderr, "\r\033[K%s\n", overall.str().c_str());
    ++lines_;
    std::fflush(stderr);
  }
  void mark_start() { done_at_start_ = sched_.trials_done(); }

 private:
  double total_now() const {
    double t = 0;
    for (const ModelEntry& e : entries_) {
      if (std::isfinite(e.best_s)) t += e.weight * e.best_s;
    }
    return t;
  }
  const std::vector<ModelEntry>& entries_;
  const TaskScheduler& sched_;
  int budget_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  double start_total_ = 0;
  int lines_ = 0;
  int done_at_start_ = 0;
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
  const std::unique_ptr<Measurer> measurer_owner = make_measurer(target, args.cache_dir);
  Measurer& measurer = *measurer_owner;
  const std::string device_key = target.device_key();
  // Records of this model's runs carry this job name: a re-run of the same
  // command counts them against its budget and goes on.
  const std::string job = "model " + std::filesystem::path(args.model).filename().string();

  std::vector<ModelEntry> entries;
  std::vector<double> weights;
  for (const ModelTask& mt : model.tasks) {
    ModelEntry e;
    e.workload = mt.workload;
    e.weight = mt.weight;
    for (const Template* t : templates_for(mt.workload, target.kind)) e.tasks.push_back(Task::make(mt.workload, target, *t));
    if (e.tasks.empty()) throw Error("no CPU template for " + mt.workload.key());
    e.tuners.resize(e.tasks.size());
    const Task& first = e.tasks.front();
    std::vector<Config> seeds = first.tmpl->seed_configs(first.workload, first.target, *first.space);
    e.default_index = seeds.empty() ? 0 : seeds.front().index;
    entries.push_back(std::move(e));
    weights.push_back(mt.weight);
  }
  TaskSchedulerOptions sched_options;
  sched_options.trials = args.options.trials;
  sched_options.chunk = args.options.batch_size;
  sched_options.warmup = std::min(args.options.batch_size,
                                  std::max(1, args.options.trials / static_cast<int>(entries.size())));
  sched_options.task_cap = args.task_cap;
  TaskScheduler sched(weights, sched_options);
  int resumed = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const int done = static_cast<int>(db->job_counts(job, entries[i].workload.key()).search);
    resumed += done;
    entries[i].best_s = best_cost(*db, entries[i], device_key);
    sched.set_state(i, done, entries[i].best_s);
  }
  if (args.format == "text") {
    std::cerr << "tuning " << args.model << ": " << entries.size() << " tasks, " << args.options.trials
              << " trials on " << device_key << " with " << args.tuner;
    if (resumed > 0) std::cerr << " (" << resumed << " trials done by an earlier run of this model)";
    std::cerr << "\n";
  }

  auto run = [&](size_t i, size_t template_index, int trials, bool seeds, std::unique_ptr<Tuner> one_off,
                 ModelProgress* progress) {
    ModelEntry& e = entries[i];
    const Task& task = e.tasks[template_index];
    TuneOptions options = args.options;
    options.trials = trials;
    options.final_top = 0;
    options.seeds = seeds && args.options.seeds;
    options.job = job;
    Tuner* tuner = one_off.get();
    if (!tuner) {
      if (!e.tuners[template_index]) e.tuners[template_index] = make_tuner(args.tuner, task, args.seed, db.get(), args.options.transfer);
      tuner = e.tuners[template_index].get();
    }
    TuneSummary s = tune(task, *tuner, measurer, db.get(), options, [&](const TuneProgress& p) {
      if (progress) {
        e.best_s = std::min(e.best_s, p.best_gflops > 0 ? e.workload.flops() / (p.best_gflops * 1e9) : kInf);
        progress->update(i, p.trials_done);
      }
    });
    e.errors += s.errors;
    e.best_s = std::min(e.best_s, best_cost(*db, e, device_key));
    return s.trials;
  };

  // The untuned default of every task first: what the model runs without
  // tuning, and the first trial of its warm-up.
  for (size_t i = 0; i < entries.size(); ++i) {
    ModelEntry& e = entries[i];
    e.default_s = recorded_cost(*db, e.tasks.front(), e.default_index);
    if (std::isfinite(e.default_s) || sched.trials_done() >= args.options.trials) continue;
    const int n = run(i, 0, 1, false, make_list_tuner(e.tasks.front(), {e.tasks.front().space->get(e.default_index)}), nullptr);
    if (n > 0) sched.record(i, n, e.best_s);
    e.default_s = recorded_cost(*db, e.tasks.front(), e.default_index);
  }
  double start_total = 0;
  for (const ModelEntry& e : entries) {
    if (std::isfinite(e.default_s)) start_total += e.weight * e.default_s;
  }
  ModelProgress progress(entries, sched, args.options.trials);
  progress.set_start_total(start_total);
  progress.mark_start();
  std::vector<int> next_template(entries.size(), 0);
  while (std::optional<TaskScheduler::Allocation> a = sched.next()) {
    ModelEntry& e = entries[a->task];
    // The warm-up is shared by the task's templates (a 1x1 conv has two);
    // later allocations take turns.
    const bool warmup = sched.trials(a->task) < sched_options.warmup;
    const size_t parts = warmup ? std::min(e.tasks.size(), static_cast<size_t>(a->trials)) : 1;
    int n = 0;
    for (size_t p = 0; p < parts; ++p) {
      const size_t t = static_cast<size_t>(next_template[a->task]++) % e.tasks.size();
      const int share = even_share(a->trials, parts, p);
      n += run(a->task, t, share, true, nullptr, &progress);
    }
    sched.record(a->task, n, e.best_s);
    progress.update(a->task, 0);
  }
  // Re-measure each task's top candidates; the re-measured best is marked.
  for (size_t i = 0; i < entries.size(); ++i) {
    ModelEntry& e = entries[i];
    if (args.options.final_top <= 0 || db->job_counts(job, e.workload.key()).final > 0) continue;
    for (size_t t = 0; t < e.tasks.size(); ++t) {
      TuneOptions options = args.options;
      options.trials = 0;
      options.job = job;
      auto none = make_list_tuner(e.tasks[t], {});
      tune(e.tasks[t], *none, measurer, db.get(), options);
    }
    e.best_s = best_cost(*db, e, device_key);
  }
  if (args.baseline && !gpu) {  // GPU vendor timings: `ktune bench --target cuda:N`
    for (ModelEntry& e : entries) {
      if (auto b = vendor_baseline(e.workload, target.cpu.threads)) {
        e.baseline_s = b->first;
        e.baseline_name = b->second;
      }
    }
  }

  // Summary.
  double total_best = 0, total_default = 0, total_baseline = 0;
  bool baseline_complete = true;
  nlohmann::json tasks_json = nlohmann::json::array();
  std::ostringstream table;
  table << "| task | count | best | GFLOP/s | vs untuned | vs vendor | count x best |\n| --- | --- | --- | --- | --- | --- | --- |\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const ModelEntry& e = entries[i];
    const double gflops = std::isfinite(e.best_s) ? e.workload.flops() / e.best_s / 1e9 : 0;
    if (std::isfinite(e.best_s)) total_best += e.weight * e.best_s;
    if (std::isfinite(e.default_s)) total_default += e.weight * e.default_s;
    if (std::isfinite(e.baseline_s)) {
      total_baseline += e.weight * e.baseline_s;
    } else {
      baseline_complete = false;
    }
    char g[32];
    std::snprintf(g, sizeof g, "%.1f", gflops);
    table << "| " << e.workload.key() << " | " << e.weight << " | " << ms(e.best_s) << " | " << g << " | "
          << ratio(e.default_s / e.best_s) << " | "
          << (std::isfinite(e.baseline_s) ? ratio(e.baseline_s / e.best_s) + " (" + e.baseline_name + ")" : "-")
          << " | " << ms(e.weight * e.best_s) << " |\n";
    tasks_json.push_back({{"workload", e.workload.key()}, {"weight", e.weight}, {"trials", sched.trials(i)},
                          {"errors", e.errors},
                          {"best_s", std::isfinite(e.best_s) ? nlohmann::json(e.best_s) : nlohmann::json()},
                          {"gflops", gflops},
                          {"default_s", std::isfinite(e.default_s) ? nlohmann::json(e.default_s) : nlohmann::json()},
                          {"baseline_s", std::isfinite(e.baseline_s) ? nlohmann::json(e.baseline_s) : nlohmann::json()},
                          {"baseline", e.baseline_name}});
  }
  if (args.format == "json") {
    std::cout << nlohmann::json{{"model", args.model}, {"device_key", device_key}, {"trials", sched.trials_done()},
                                {"tasks", tasks_json}, {"estimated_total_s", total_best},
                                {"untuned_total_s", total_default},
                                {"vendor_total_s", baseline_complete ? nlohmann::json(total_baseline) : nlohmann::json()},
                                {"not_tunable", model_tasks_json(model)["not_tunable"]}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "\n" << table.str() << "\nestimated operator time: " << ms(total_best) << " tuned, " << ms(total_default)
              << " untuned (" << ratio(total_default / total_best) << ")";
    if (baseline_complete && total_baseline > 0) {
      std::cout << ", " << ms(total_baseline) << " with the vendor libraries (" << ratio(total_baseline / total_best) << ")";
    }
    std::cout << "\n" << sched.trials_done() << " trials on " << device_key << "; records in " << args.db_path << "\n";
    if (!model.not_tunable.empty()) {
      std::cout << "not tuned:";
      for (const NotTunable& n : model.not_tunable) std::cout << " " << n.what << " x" << n.count << ";";
      std::cout << "\n";
    }
  }
  for (const ModelEntry& e : entries) {
    if (!std::isfinite(e.best_s)) {
      std::cerr << "ktune: error: no candidate measured valid for " << e.workload.key() << "\n";
      return kExitFailed;
    }
  }
  return kExitOk;
}

}  // namespace ktune::cli
