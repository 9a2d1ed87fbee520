// Search strategies and the tuning loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "db/database.h"
#include "measure/measure.h"

namespace ktune {

// What is being tuned: a workload on a target with one template.
struct Task {
  Workload workload;
  Target target;
  const Template* tmpl = nullptr;
  std::shared_ptr<const ConfigSpace> space;

  static Task make(const Workload& w, const Target& t, const Template& tmpl);
};

// A search strategy. It proposes configs it has not proposed before and
// learns from their results.
class Tuner {
 public:
  virtual ~Tuner() = default;
  // Up to n configs never proposed before (fewer when the space runs out).
  virtual std::vector<Config> next_batch(int n) = 0;
  virtual void update(const std::vector<Config>& configs,
                      const std::vector<MeasureResult>& results) = 0;
  // Marks configs as already measured (e.g. found in the database) so they
  // are never proposed.
  virtual void exclude(const std::vector<uint64_t>& indices) = 0;
  virtual bool has_next() const = 0;
};

// Random sampling without repeats. Configs the template's check() rejects are
// skipped cheaply (they still count as visited).
std::unique_ptr<Tuner> make_random_tuner(const Task& task, uint64_t seed);
// Walks indices 0, 1, 2, ... in order.
std::unique_ptr<Tuner> make_grid_tuner(const Task& task);
// Proposes exactly these configs, in order, then nothing (a kernel engineer's
// "measure this config", `ktune tune --config`). Configs the template's
// check() rejects are skipped.
std::unique_ptr<Tuner> make_list_tuner(const Task& task, std::vector<Config> configs);
// Genetic search (population, uniform crossover over knobs, mutation,
// elitism), a baseline for the model-based tuner. Throws ktune::Error on bad
// options.
struct GeneticOptions {
  int population = 32;    // the best configs measured so far breed
  double mutation = 0.1;  // per knob, probability of a random re-draw
};
std::unique_ptr<Tuner> make_genetic_tuner(const Task& task, uint64_t seed, GeneticOptions options = {});
class TransferModel;  // tuner/transfer.h

// Model-based search (tuner/model_tuner.cc): an XGBoost cost model over
// program features guides parallel simulated annealing; random until
// `warmup` configs are measured, unless a transfer base model is given (it
// guides the search from the first batch and is the task model's base
// margin). Throws ktune::Error on bad options.
struct XgbTunerOptions {
  // curve: on the recorded landscapes (bench/results/landscape_replay-
  // 2026-12-05.md, 14 landscapes x 20 seeds, no noise) xgb reached the top
  // 1% / the best in 0.48x / 0.27x random's trials with curve features and
  // 0.50x / 0.36x with itervar ones, and curve features recall more of the
  // held-out top 10 (0.35 vs 0.31, mean over the 14). The earlier live
  // benchmark (search_efficiency-2026-12-01) had itervar ahead within its
  // noise.
  cost_model::FeatureKind features = cost_model::FeatureKind::kCurve;
  cost_model::XgbOptions model;
  std::shared_ptr<const TransferModel> base;  // null: no transfer
  // How a base model is used, once the task has `warmup` measurements of
  // its own (before that, its predictions alone guide the search):
  // kMargin, its predictions are the task model's base margin (the task
  // model learns the residual); kFirst, the task's own model alone guides;
  // kJoint, the task model is trained on the base model's rows (curve
  // features, ranked within their workloads) and the task's own, in the
  // curve features (AutoTVM's transfer when its history is trained with it).
  enum class Transfer { kMargin, kFirst, kJoint };
  Transfer transfer = Transfer::kMargin;
  // While the base model alone guides (before the warm-up's measurements),
  // the share of each batch it picks; the rest is random.
  double base_share = 1.0;
  int warmup = 16;        // measured configs before the task's own model is used
  int chains = 64;        // annealing walks per batch
  int steps = 60;         // steps per walk
  double epsilon = 0.05;  // share of each batch proposed at random
  // When set, the search space is these configs alone (a recorded
  // landscape, tuner/landscape.h): the model ranks all of them in place of
  // annealing, and random proposals draw from them.
  std::shared_ptr<const std::vector<Config>> pool;
};
std::unique_ptr<Tuner> make_xgb_tuner(const Task& task, uint64_t seed, XgbTunerOptions options = {});
// "random" | "grid" | "ga" | "xgb"; throws ktune::Error naming the accepted names.
std::unique_ptr<Tuner> make_tuner(const std::string& name, const Task& task, uint64_t seed);
class TuningLog;  // tuner/tuning_log.h
// The same, with transfer learning for "xgb" when `transfer` is set and log
// holds valid records of other workloads on the task's device: a
// TransferModel trained on TuningLog::device_history (the task's operator
// first, newest first). *learned_from, if given, is set to the records the
// base model was trained on (0: no transfer).
std::unique_ptr<Tuner> make_tuner(const std::string& name, const Task& task, uint64_t seed, const TuningLog* log,
                                  bool transfer, size_t* learned_from = nullptr);
// Throws ktune::Error unless name is one of make_tuner's.
void check_tuner_name(const std::string& name);

struct TuneOptions {
  int trials = 200;           // candidates measured in the search
  int batch_size = 16;
  int early_stopping = 0;     // stop after this many trials without improvement; 0 = off
  int final_top = 3;          // re-measure this many top candidates at the end
  int final_repeat = 10;      // repeats for the re-measurement
  // Measure the template's seed configs (Template::seed_configs) first, before
  // the tuner's own proposals; they count as trials. Off to compare blind
  // search strategies on their own.
  bool seeds = true;
  // With the xgb tuner, learn from the database's records of other workloads
  // on this device (transfer learning); see make_tuner.
  bool transfer = true;
  MeasureOptions measure;
  std::string job;            // recorded with every row; a job's records resume it
  // Asked between batches (often, on a farm): true stops the search (a
  // cancelled job, a daemon shutting down); candidates in flight are
  // withdrawn, and there is no re-measurement.
  std::function<bool()> stop;
};

struct TuneProgress {
  int trials_done = 0;
  int trials_total = 0;
  int errors = 0;
  double best_gflops = 0;
  double elapsed_s = 0;
};

struct TuneSummary {
  std::string workload_key;
  std::string device_key;
  std::string template_name;
  int trials = 0;
  int errors = 0;
  int skipped_already_measured = 0;
  std::optional<Record> best;  // re-measured best; nullopt if nothing measured valid
  double elapsed_s = 0;
  double search_s = 0;         // of elapsed_s, inside the tuner (model training, proposals)
  std::vector<std::pair<MeasureError, int>> error_counts;
  std::string first_error;     // message of the first failed candidate, to explain failures
  bool stopped = false;        // options.stop ended it before its trials
};

// Part i (0-based) of total trials split into `parts` shares as even as
// they can be, the first ones one larger (e.g. between a workload's templates).
int even_share(int total, size_t parts, size_t i);

// Whether a record is usable here (a successful measurement of a template
// this build has at that version): db/record_config.h, the one resolver.

// The tuning engine, tune() for workloads, models and one template with a
// tuner of the caller's: tuner/tuning.h.

}  // namespace ktune
