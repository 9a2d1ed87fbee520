// `ktune bench`: the best tuned kernel of a workload against the vendor
// libraries, side by side in this process (measure/bench.h), with the same
// inputs and thread count, checked against the reference first.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/gpu_bench.h"
#include "cli/model.h"
#include "db/record_config.h"
#include "measure/baselines.h"
#include "measure/bench.h"
#include "measure/builder.h"
#include "measure/local_measurer.h"
#include "measure/peak.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct BenchArgs {
  std::vector<std::string> ops;
  std::string set;
  std::string db_path = "ktune.db";
  int threads = 0;
  std::string format = "text";
  int trials = 0;
  std::string tuner = "xgb";
  bool transfer = true;
  std::string template_name;
  std::string cache_dir;
  bool remeasure_peak = false;
  std::string target = "cpu";  // or cuda:N
  BenchOptions bench;
  double min_sample_ms = 20;
};

std::string conv(int64_t hw, int64_t c, int64_t k, int64_t kernel, int64_t stride) {
  const int64_t pad = kernel == 7 ? 3 : kernel == 3 ? 1 : 0;
  std::ostringstream s;
  s << "conv2d(n=1,c=" << c << ",h=" << hw << ",w=" << hw << ",k=" << k << ",r=" << kernel
    << ",s=" << kernel << ",stride=" << stride << ",pad=" << pad << ")";
  return s.str();
}

std::string depthwise(int64_t hw, int64_t c, int64_t stride) {
  std::ostringstream s;
  s << "depthwise_conv2d(n=1,c=" << c << ",h=" << hw << ",w=" << hw << ",r=3,s=3,stride=" << stride
    << ",pad=1)";
  return s.str();
}

std::string matmul(int64_t m, int64_t k, int64_t n) {
  std::ostringstream s;
  s << "matmul(m=" << m << ",n=" << n << ",k=" << k << ")";
  return s.str();
}

// The benchmark sets of issue 3.
std::vector<std::string> bench_set(const std::string& name) {
  if (name == "resnet18") {
    // ResNet-18's conv layers at batch 1: C1 .. C12 (H=W, in, out, kernel, stride).
    return {conv(224, 3, 64, 7, 2),    conv(56, 64, 64, 3, 1),    conv(56, 64, 64, 1, 1),
            conv(56, 64, 128, 3, 2),   conv(56, 64, 128, 1, 2),   conv(28, 128, 128, 3, 1),
            conv(28, 128, 256, 3, 2),  conv(28, 128, 256, 1, 2),  conv(14, 256, 256, 3, 1),
            conv(14, 256, 512, 3, 2),  conv(14, 256, 512, 1, 2),  conv(7, 512, 512, 3, 1)};
  }
  if (name == "matmul") {
    return {matmul(128, 128, 128),   matmul(256, 256, 256),   matmul(512, 512, 512),
            matmul(1024, 1024, 1024), matmul(2048, 2048, 2048), matmul(64, 768, 768),
            matmul(128, 3072, 768),  "dense(batch=1,in=512,out=1000,bias=1)"};
  }
  if (name == "depthwise") {
    // One MobileNetV2 3x3 depthwise layer per resolution: the stride-1 layer
    // that occurs most often there (112: c=32; 56: c=144; 28: c=192;
    // 14: c=384; 7: c=960). The stride-2 layers are the same operator on
    // fewer outputs.
    return {depthwise(112, 32, 1), depthwise(56, 144, 1), depthwise(28, 192, 1),
            depthwise(14, 384, 1), depthwise(7, 960, 1)};
  }
  throw Error("unknown bench set '" + name + "': accepted sets are resnet18, matmul, depthwise");
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string time_text(double seconds) {
  char buf[64];
  if (seconds >= 1e-3) {
    std::snprintf(buf, sizeof buf, "%.3f ms", seconds * 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f us", seconds * 1e6);
  }
  return buf;
}

std::string pad_right(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}
std::string pad_left(const std::string& s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

// What one workload's bench found.
struct WorkloadOutcome {
  std::string workload;
  std::optional<std::string> error;  // no record, disagreement, build failure
  std::optional<Record> record;
  BenchResult result;
  std::vector<std::string> missing;
  // The headline: tuned GFLOP/s over the fastest primary baseline's, across
  // all libraries; nullptr / 0 when no library has a baseline here.
  const ContenderTiming* fastest = nullptr;
  double ratio_vs_fastest = 0;
  // Tuned GFLOP/s over the fastest primary variant's, per library (for
  // information: the user has whichever library is fastest).
  std::map<std::string, double> ratios;
};

// Geometric means of ratios, accumulated one workload at a time.
class GeometricMean {
 public:
  void add(double ratio) {
    log_sum_ += std::log(ratio);
    ++count_;
  }
  bool empty() const { return count_ == 0; }
  double value() const { return count_ ? std::exp(log_sum_ / count_) : 0; }

 private:
  double log_sum_ = 0;
  int count_ = 0;
};

class BenchCommand {
 public:
  explicit BenchCommand(const BenchArgs& args)
      : args_(args),
        target_(detect_cpu_target(args.threads)),
        db_(Database::open(args.db_path)),
        builder_(args.cache_dir.empty() ? default_cache_dir() : args.cache_dir) {}

  int run() {
    std::vector<std::string> specs = args_.ops;
    if (!args_.set.empty()) {
      for (const std::string& s : bench_set(args_.set)) specs.push_back(s);
    }
    if (specs.empty()) throw Error("nothing to bench: pass --op SPEC (repeatable) or --set NAME");
    std::vector<Workload> workloads;
    for (const std::string& s : specs) workloads.push_back(Workload::parse(s));

    const double peak = peak_gflops();
    std::vector<WorkloadOutcome> outcomes;
    for (const Workload& w : workloads) {
      try {
        outcomes.push_back(bench(w));
      } catch (const Error& e) {
        // A stale record or a library refusing the shape spoils this
        // workload, not the rest of a set.
        WorkloadOutcome o;
        o.workload = w.key();
        o.error = e.what();
        outcomes.push_back(o);
      }
      if (args_.format == "text") print_text(outcomes.back(), peak);
    }
    bool ok = true;
    for (const WorkloadOutcome& o : outcomes) {
      if (o.error) {
        std::cerr << "ktune: error: " << *o.error << "\n";
        ok = false;
      }
    }
    if (args_.format == "json") {
      std::cout << json_report(outcomes, peak).dump(2) << "\n";
    } else if (outcomes.size() > 1) {
      print_summary(outcomes, peak);
    }
    return ok ? kExitOk : kExitFailed;
  }

 private:
  int threads() const { return target_.cpu.threads; }

  // Measured once per device class and thread count, then read from the db.
  double peak_gflops() {
    const std::string key = target_.device_key();
    if (!args_.remeasure_peak) {
      if (auto cached = db_->peak_gflops(key, threads())) return *cached;
    }
    if (args_.format == "text") {
      std::cerr << "measuring the FMA peak of " << key << " (once; kept in " << args_.db_path
                << ")\n";
    }
    const double peak = measure_fma_peak(target_, builder_);
    db_->set_peak_gflops(key, threads(), peak);
    return peak;
  }

  std::optional<Record> find_or_tune(const Workload& w) {
    std::optional<Record> record = db_->best(w.key(), target_.device_key());
    // A record of an older template version cannot be built by this one:
    // with --trials, tune again (build_tuned_kernel explains it otherwise).
    if ((record && usable(*record)) || args_.trials <= 0) return record;
    if (!measurer_) {
      LocalMeasurerOptions o;
      o.cache_dir = args_.cache_dir;
      measurer_ = std::make_unique<LocalMeasurer>(o);
    }
    TuneOptions options;
    options.trials = args_.trials;
    options.transfer = args_.transfer;
    tune_workload(w, target_, args_.template_name, args_.tuner, 1, *measurer_, db_.get(), options,
                  args_.format == "text");
    // The measurer's runner process would stay alive, its OpenMP workers
    // spinning on the cores the timing below needs (a 4x slower batch-1
    // dense was seen): end it before timing anything.
    measurer_.reset();
    return db_->best(w.key(), target_.device_key());
  }

  WorkloadOutcome bench(const Workload& w) {
    WorkloadOutcome o;
    o.workload = w.key();
    o.record = find_or_tune(w);
    if (!o.record) {
      o.error = "no tuned record for " + w.key() + " on " + target_.device_key() + " in " +
                args_.db_path + ": run `ktune tune --op '" + w.key() + "' --threads " +
                std::to_string(threads()) + " --db " + args_.db_path +
                "` first or pass --trials N";
      return o;
    }
    std::string transforms;
    const std::string artifact = build_tuned_kernel(w, *o.record, target_, builder_, &transforms);
    BenchData data(w);
    std::unique_ptr<Contender> tuned = make_tuned_contender(artifact, data, transforms);
    Baselines baselines = make_baselines(data, threads());
    o.missing = baselines.missing;
    std::vector<Contender*> contenders = {tuned.get()};
    for (auto& b : baselines.contenders) contenders.push_back(b.get());
    BenchOptions options = args_.bench;
    options.min_sample_s = args_.min_sample_ms / 1000;
    // Let worker threads of the previous side go idle before each sample.
    if (threads() > 1) options.pause_s = 0.2;
    o.result = run_bench(data, contenders, options);
    if (!o.result.agree()) {
      std::string text = w.key() + ": the outputs disagree with the reference:";
      for (const Disagreement& d : o.result.disagreements) text += " " + d.who + ": " + d.message + ";";
      text.pop_back();
      o.error = text;
      return o;
    }
    const ContenderTiming& mine = o.result.timings.front();
    for (const ContenderTiming& t : o.result.timings) {
      if (t.library == "ktune") continue;
      const ContenderTiming* best = o.result.best_primary(t.library);
      if (best) o.ratios[t.library] = mine.gflops / best->gflops;
    }
    o.fastest = o.result.fastest_baseline();
    if (o.fastest) o.ratio_vs_fastest = mine.gflops / o.fastest->gflops;
    return o;
  }

  void print_text(const WorkloadOutcome& o, double peak) const {
    std::cout << o.workload << " on " << target_.device_key() << ", " << threads()
              << (threads() == 1 ? " thread" : " threads") << ", FMA peak " << fixed(peak, 1)
              << " GFLOP/s\n";
    if (o.record) {
      std::cout << "  tuned: " << o.record->template_name << " config #" << o.record->config_index
                << "\n";
    }
    for (const std::string& m : o.missing) std::cout << "  " << m << "\n";
    if (o.error || o.result.timings.empty()) {
      std::cout << "  not timed (the error is on stderr)\n\n";
      return;
    }
    const ContenderTiming& mine = o.result.timings.front();
    std::cout << "  " << pad_right("side", 20) << pad_left("median", 12) << pad_left("p10..p90", 10)
              << pad_left("GFLOP/s", 10) << pad_left("% peak", 8) << pad_left("tuned/side", 12)
              << "  timed layout transforms\n";
    for (const ContenderTiming& t : o.result.timings) {
      std::string ratio = &t == &mine ? "" : fixed(mine.gflops / t.gflops, 2) + "x";
      std::cout << "  " << pad_right(t.display_name() + (t.primary ? "" : "*"), 20)
                << pad_left(time_text(t.median_s), 12)
                << pad_left("±" + fixed(50 * t.spread(), 1) + "%", 11)
                << pad_left(fixed(t.gflops, 2), 10) << pad_left(fixed(100 * t.gflops / peak, 1), 8)
                << pad_left(ratio, 12) << "  " << t.timed_transforms << "\n";
    }
    bool any_info = false, above_peak = false;
    for (const ContenderTiming& t : o.result.timings) {
      any_info = any_info || !t.primary;
      above_peak = above_peak || t.gflops > peak;
    }
    if (any_info) std::cout << "  * for information, not a baseline\n";
    if (o.fastest) {
      std::cout << "  tuned/fastest baseline (" << o.fastest->display_name()
                << "): " << fixed(o.ratio_vs_fastest, 2) << "x\n";
    } else {
      std::cout << "  no library baseline in this build to compare with\n";
    }
    if (above_peak) {
      std::cout << "  note: a side beats the stored FMA peak, which was probably measured on a busy "
                   "machine; --remeasure-peak on a quiet one\n";
    }
    std::cout << "\n";
  }

  // One row per workload: ktune, the fastest baseline and the ratio to it
  // (the headline), then the ratio to each library's own fastest variant;
  // and the geometric means of the ratios.
  void print_summary(const std::vector<WorkloadOutcome>& outcomes, double peak) const {
    std::vector<std::string> libraries;
    for (const WorkloadOutcome& o : outcomes) {
      for (const auto& [lib, ratio] : o.ratios) {
        if (std::find(libraries.begin(), libraries.end(), lib) == libraries.end()) libraries.push_back(lib);
      }
    }
    size_t width = 8;
    for (const WorkloadOutcome& o : outcomes) width = std::max(width, o.workload.size() + 2);
    std::cout << pad_right("workload", width) << pad_left("ktune GFLOP/s", 14) << pad_left("% peak", 8)
              << "  " << pad_right("fastest baseline", 22) << pad_left("GFLOP/s", 9)
              << pad_left("tuned/fastest", 15);
    for (const std::string& lib : libraries) std::cout << pad_left("tuned/" + lib, 16);
    std::cout << "\n";
    GeometricMean vs_fastest;
    std::map<std::string, GeometricMean> vs_library;
    for (const WorkloadOutcome& o : outcomes) {
      std::cout << pad_right(o.workload, width);
      if (o.error || o.result.timings.empty()) {
        std::cout << "  (error, see above)\n";
        continue;
      }
      const ContenderTiming& mine = o.result.timings.front();
      std::cout << pad_left(fixed(mine.gflops, 2), 14) << pad_left(fixed(100 * mine.gflops / peak, 1), 8);
      if (o.fastest) {
        vs_fastest.add(o.ratio_vs_fastest);
        std::cout << "  " << pad_right(o.fastest->display_name(), 22) << pad_left(fixed(o.fastest->gflops, 2), 9)
                  << pad_left(fixed(o.ratio_vs_fastest, 2) + "x", 15);
      } else {
        std::cout << "  " << pad_right("-", 22) << pad_left("-", 9) << pad_left("-", 15);
      }
      for (const std::string& lib : libraries) {
        auto it = o.ratios.find(lib);
        if (it == o.ratios.end()) {
          std::cout << pad_left("-", 16);
          continue;
        }
        vs_library[lib].add(it->second);
        std::cout << pad_left(fixed(it->second, 2) + "x", 16);
      }
      std::cout << "\n";
    }
    auto mean_text = [](const GeometricMean& g) { return g.empty() ? "-" : fixed(g.value(), 2) + "x"; };
    std::cout << pad_right("geometric mean", width) << pad_left("", 22) << "  " << pad_right("", 22)
              << pad_left("", 9) << pad_left(mean_text(vs_fastest), 15);
    for (const std::string& lib : libraries) std::cout << pad_left(mean_text(vs_library[lib]), 16);
    std::cout << "\n(tuned/fastest: ktune's GFLOP/s over the fastest baseline of any library for that "
                 "workload, the headline; tuned/X: over library X's fastest baseline variant; > 1 means "
                 "ktune is faster)\n";
  }

  nlohmann::json timing_json(const ContenderTiming& t, double peak) const {
    return {{"name", t.display_name()},
            {"library", t.library},
            {"variant", t.variant},
            {"primary", t.primary},
            {"gflops", t.gflops},
            {"median_s", t.median_s},
            {"p10_s", t.p10_s},
            {"p90_s", t.p90_s},
            {"min_s", t.min_s},
            {"max_s", t.max_s},
            {"spread", t.spread()},
            {"calls_per_sample", t.calls_per_sample},
            {"percent_of_peak", 100 * t.gflops / peak},
            {"timed_layout_transforms", t.timed_transforms}};
  }

  nlohmann::json json_report(const std::vector<WorkloadOutcome>& outcomes, double peak) const {
    nlohmann::json workloads = nlohmann::json::array();
    GeometricMean vs_fastest;
    std::map<std::string, GeometricMean> vs_library;
    for (const WorkloadOutcome& o : outcomes) {
      nlohmann::json j;
      j["workload"] = o.workload;
      j["key"] = o.workload;
      j["device_key"] = target_.device_key();
      j["threads"] = threads();
      j["peak_gflops"] = peak;
      j["error"] = o.error ? nlohmann::json(*o.error) : nlohmann::json();
      j["missing_baselines"] = o.missing;
      j["record"] = o.record ? record_json(*o.record) : nlohmann::json();
      nlohmann::json disagreements = nlohmann::json::array();
      for (const Disagreement& d : o.result.disagreements) {
        disagreements.push_back({{"who", d.who}, {"message", d.message}});
      }
      j["disagreements"] = disagreements;
      j["tuned"] = nlohmann::json();
      j["baselines"] = nlohmann::json::array();
      for (const ContenderTiming& t : o.result.timings) {
        nlohmann::json tj = timing_json(t, peak);
        if (t.library == "ktune") {
          j["tuned"] = tj;
        } else {
          tj["ratio"] = o.result.timings.front().gflops / t.gflops;
          j["baselines"].push_back(tj);
        }
      }
      j["fastest_baseline"] = o.fastest ? timing_json(*o.fastest, peak) : nlohmann::json();
      j["ratio_vs_fastest"] = o.fastest ? nlohmann::json(o.ratio_vs_fastest) : nlohmann::json();
      if (o.fastest) vs_fastest.add(o.ratio_vs_fastest);
      j["ratios"] = o.ratios;
      for (const auto& [lib, ratio] : o.ratios) vs_library[lib].add(ratio);
      workloads.push_back(j);
    }
    nlohmann::json geomeans = nlohmann::json::object();
    for (const auto& [lib, mean] : vs_library) geomeans[lib] = mean.value();
    return {{"device_key", target_.device_key()},
            {"threads", threads()},
            {"peak_gflops", peak},
            {"set", args_.set},
            {"ratio_definition",
             "ratio_vs_fastest: tuned GFLOP/s / the GFLOP/s of the fastest primary baseline of any "
             "library (fastest_baseline); ratios[library]: tuned GFLOP/s / that library's fastest "
             "primary variant's"},
            {"workloads", workloads},
            {"geomean_ratio_vs_fastest", vs_fastest.empty() ? nlohmann::json() : nlohmann::json(vs_fastest.value())},
            {"geomean_ratios", geomeans}};
  }

  const BenchArgs& args_;
  Target target_;
  std::unique_ptr<Database> db_;
  Builder builder_;
  std::unique_ptr<LocalMeasurer> measurer_;
};

int run_bench_command(const BenchArgs& args) {
  check_format(args.format);
  if (!args.set.empty()) bench_set(args.set);  // a bad name fails before any work
  if (args.target != "cpu") {
    GpuBenchArgs g;
    g.workloads = args.ops;
    if (!args.set.empty()) {
      for (const std::string& w : bench_set(args.set)) g.workloads.push_back(w);
    }
    if (g.workloads.empty()) throw Error("give --op or --set");
    g.target = target_from_flag("--target", args.target, args.threads);
    g.db_path = args.db_path;
    g.format = args.format;
    g.trials = args.trials;
    g.tuner = args.tuner;
    g.cache_dir = args.cache_dir;
    g.rounds = args.bench.rounds;
    g.min_sample_s = args.min_sample_ms / 1000;
    return run_gpu_bench(g);
  }
  return BenchCommand(args).run();
}

}  // namespace

CommandRun add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "time the best tuned kernel against OpenBLAS / oneDNN (cuBLAS / cuDNN with --target cuda:N), side by side");
  cmd->add_option("--op", args->ops, "operator spec (repeatable)");
  cmd->add_option("--set", args->set, "a benchmark set: resnet18, matmul or depthwise");
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->capture_default_str();
  add_threads_option(cmd, args->threads, "threads for every side (default: all cores)");
  cmd->add_option("--target", args->target, "cpu (vs OpenBLAS/oneDNN) or cuda:N (vs cuBLAS/cuDNN)")->capture_default_str();
  cmd->add_option("--trials", args->trials,
                  "tune a workload without a tuned record first, with this many trials (0: don't)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--tuner", args->tuner, "search strategy when tuning: xgb (cost model + simulated annealing), ga (genetic), random or grid")
      ->capture_default_str();
  cmd->add_option("--template", args->template_name, "schedule template when tuning");
  cmd->add_flag("--no-transfer", [args](int64_t) { args->transfer = false; },
                "xgb: do not learn from the database's records of other workloads when tuning");
  cmd->add_option("--repeat", args->bench.rounds, "timed samples per side, alternating")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--min-sample-ms", args->min_sample_ms, "calls per sample last at least this long")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--cache-dir", args->cache_dir, "artifact cache directory");
  cmd->add_flag("--remeasure-peak", args->remeasure_peak,
                "measure the FMA peak again and replace the stored one (e.g. it was measured on a busy machine)");
  cmd->add_option("--format", args->format, kFormatHelp)->capture_default_str();
  return [args] { return run_bench_command(*args); };
}

}  // namespace ktune::cli
