// Measurement records and the Measurer interface.
//
// A Measurer turns a batch of MeasureInputs (workload, target, template,
// config) into MeasureResults, one per input, in the same order. It never
// throws for a bad candidate: every failure is an error MeasureResult.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "schedule_space/config_space.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune {

enum class MeasureError {
  kNone = 0,
  kInvalidConfig = 1,
  kCompileError = 2,
  kCompileTimeout = 3,
  kRuntimeError = 4,  // crash, signal, bad artifact
  kRunTimeout = 5,
  kWrongAnswer = 6,
  kDeviceLost = 7,
  kNotRecorded = 8,  // replay: no recorded measurement of this config
  // Never measured: the job was cancelled or the daemon is stopping. Not a
  // record: the tuning loop neither stores it nor learns from it.
  kCancelled = 9,
  kLast = kCancelled,
};

std::string_view error_name(MeasureError e);  // "none", "invalid_config", ...
// Throws ktune::Error on an unknown name.
MeasureError parse_error_name(std::string_view name);

struct MeasureInput {
  Workload workload;
  Target target;
  const Template* tmpl = nullptr;
  Config config;
};

struct MeasureResult {
  std::vector<double> costs;  // seconds per call, one per repeat
  MeasureError error = MeasureError::kNone;
  std::string error_message;  // empty when ok; "cut short: ..." for a cut-short candidate
  double build_seconds = 0;
  double run_seconds = 0;
  std::string worker;         // who measured it (host name, or "local")
  int64_t timestamp = 0;      // unix seconds when measured

  bool ok() const { return error == MeasureError::kNone && !costs.empty(); }
  // The mean of the costs, leaving out repeats over twice the median (with
  // three repeats or more: an interrupted repeat, not the kernel); +inf if
  // not ok.
  double mean_cost() const;
  // How much the repeats disagree: half the p10..p90 range of costs over
  // their median (0.02: +-2%); 0 with fewer than three costs.
  double spread() const;
};

struct MeasureOptions {
  int number = 0;              // calls per repeat; 0 = chosen so a repeat lasts >= min_repeat_ms
  int repeat = 3;              // timed repeats
  double min_repeat_ms = 20;   // floor on one repeat's duration when number = 0
  bool flush_cache = false;    // evict caches before each repeat
  bool check = true;           // compare against the reference before timing
  double compile_timeout_s = 60;
  double run_timeout_s = 20;   // per candidate, including the check
  // If > 0: a candidate whose first repeat is already slower than
  // best_so_far_s * cut_short_factor stops after it ("cut short"). Of 1905
  // search measurements of the kernel-quality sets (1 and 2 threads), the
  // 505 whose first repeat was over 2x the best so far all ended above
  // 1.05x it: the other two repeats never brought one near the best. A
  // quarter of the trials then times one repeat instead of three.
  double best_so_far_s = 0;
  double cut_short_factor = 2;
};

class Measurer {
 public:
  virtual ~Measurer() = default;
  // One result per input, same order. Thread-compatible: one batch at a time.
  virtual std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs,
                                             const MeasureOptions& options) = 0;
  // The same, also calling on_result(i, result) as each result is known (a
  // farm's results arrive one by one; storing each at once loses none if the
  // process dies mid-batch). This default calls it after measure().
  virtual std::vector<MeasureResult> measure_each(const std::vector<MeasureInput>& inputs,
                                                  const MeasureOptions& options,
                                                  const std::function<void(size_t, const MeasureResult&)>& on_result);

  // For the tuning engine, which keeps many batches in flight on a farm:
  // starts measuring inputs and calls on_result(i, result) exactly once per
  // input, on any thread, possibly before submit() returns. This default
  // measures inside the call (measure_each); a farm returns at once.
  // Thread-safe where parallel_slots() > 0.
  virtual void submit(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
                      std::function<void(size_t, const MeasureResult&)> on_result);
  // Withdraws every submitted input that has no result yet: each is
  // answered kCancelled (never measured). Thread-safe.
  virtual void cancel() {}
  // How the tuning engine may use this measurer. 0: one batch at a time,
  // and nothing else may run on this machine meanwhile (it times candidates
  // here: a search beside it would disturb the timings). N > 0: candidates
  // are measured elsewhere, about N at once (a farm's worker slots), so
  // many may be in flight and the search runs beside them.
  virtual int parallel_slots() const { return 0; }
};

}  // namespace ktune
