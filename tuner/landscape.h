// Recorded search landscapes, and search strategies compared on them by
// replay: the landscape benchmark (bench/landscape_replay.sh).
//
// A landscape is a large sample of one (workload, template) space, each
// config measured once with enough repeats to be steady, on one device. A
// strategy replayed on it searches that sample alone: random draws from it,
// the model-based tuner ranks all of it by its cost model in place of
// annealing (XgbTunerOptions::pool). Every trial's cost is the recorded
// one, so a comparison is exact, run to run, and takes seconds: noise
// cannot decide it.
//
// The file (bench/landscape_export.py writes it; gzip or plain text):
// line 1 {"format": "ktune-landscapes", "version": 1, "device": <device
// description JSON>}, then one line per landscape {"workload": KEY,
// "template": NAME, "version": V, "configs": [[index, median seconds or
// null, error code], ...]}.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cost_model/features.h"
#include "measure/measure.h"
#include "schedule_space/device_description.h"
#include "tuner/transfer.h"
#include "tuner/tuner.h"

namespace ktune {

struct LandscapeConfig {
  uint64_t index = 0;
  double seconds = 0;  // median of the recorded repeats; meaningful only when ok
  MeasureError error = MeasureError::kNone;
  bool ok() const { return error == MeasureError::kNone; }
};

struct Landscape {
  std::string workload_key;
  std::string template_name;
  int template_version = 0;
  std::vector<LandscapeConfig> configs;

  // Seconds of the config at the top `share` of the valid ones (0.01: the
  // 1st percentile, at least the best one): a run reaches the top share when
  // it measures a config this fast.
  double top_seconds(double share) const;
  size_t valid() const;
  // The median number of trials random sampling of this landscape (without
  // repeats) needs to measure a config at most `seconds` fast: exact, where
  // replayed random runs over a few seeds are noisy.
  double random_median_trials(double seconds) const;
};

struct LandscapeSet {
  DeviceDescription device;
  std::vector<Landscape> landscapes;

  // Throws ktune::Error naming the line and what is wrong.
  static LandscapeSet parse(const std::string& text);
  // A file, gzip-compressed or not.
  static LandscapeSet load(const std::string& path);
};

// A strategy replayed on a landscape.
struct ReplayOptions {
  std::string strategy = "xgb";  // "random", "xgb", or "xgb+transfer"
  int trials = 100;
  int batch_size = 16;
  uint64_t seed = 1;
  // xgb's options (features, model, warm-up, exploration); its pool is the
  // landscape, and its base model is `base` below for xgb+transfer.
  XgbTunerOptions xgb;
  double stop_at = 0;  // seconds: stop once a config this fast is measured (0: run every trial)
  // xgb+transfer: this base model (landscape_transfer_model, trained once
  // for many runs); null: trained for the run.
  std::shared_ptr<const TransferModel> base;
};

struct ReplayRun {
  // Best seconds after each trial (+inf until a valid config is measured).
  std::vector<double> best_so_far;
  // The first trial (1-based) whose best reaches `seconds`, or -1.
  int trials_to(double seconds) const;
};

// Replays options.strategy on set.landscapes[which]. "xgb+transfer" warm-
// starts from a transfer model trained on every other landscape of the set
// (as tuning would from the database's records of other workloads on this
// device). Deterministic: the same arguments give the same run. Throws
// ktune::Error for an unknown strategy or a landscape this build cannot
// take (its template, or a version it no longer has).
ReplayRun replay(const LandscapeSet& set, size_t which, const ReplayOptions& options);

// The transfer model "xgb+transfer" starts from on set.landscapes[which]:
// trained on every other landscape's valid configs. Null when they are too
// few.
// With same_template, only the landscapes of the same template (then of
// the same operator, then any) when they hold enough records.
std::shared_ptr<const TransferModel> landscape_transfer_model(const LandscapeSet& set, size_t which,
                                                              bool same_template = false);

// The cost model's ranking on held-out records of a landscape: trained on
// a random half of its valid configs (seed), the share of the other half's
// true top k that are among its predicted top k.
double top_k_recall(const LandscapeSet& set, size_t which, cost_model::FeatureKind features, size_t k,
                    uint64_t seed);

}  // namespace ktune
