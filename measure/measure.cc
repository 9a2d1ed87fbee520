#include "measure/measure.h"

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <utility>

#include "schedule_space/error.h"

namespace ktune {
namespace {

// The names are part of the record format (database rows, JSONL, the runner
// protocol): never rename one.
constexpr std::array<std::pair<MeasureError, std::string_view>, 10> kErrorNames = {{
    {MeasureError::kNone, "none"},
    {MeasureError::kInvalidConfig, "invalid_config"},
    {MeasureError::kCompileError, "compile_error"},
    {MeasureError::kCompileTimeout, "compile_timeout"},
    {MeasureError::kRuntimeError, "runtime_error"},
    {MeasureError::kRunTimeout, "run_timeout"},
    {MeasureError::kWrongAnswer, "wrong_answer"},
    {MeasureError::kDeviceLost, "device_lost"},
    {MeasureError::kNotRecorded, "not_recorded"},
    {MeasureError::kCancelled, "cancelled"},
}};

}  // namespace

std::string_view error_name(MeasureError e) {
  for (const auto& [error, name] : kErrorNames) {
    if (error == e) return name;
  }
  return "unknown";
}

MeasureError parse_error_name(std::string_view name) {
  std::string accepted;
  for (const auto& [error, known] : kErrorNames) {
    if (known == name) return error;
    accepted += accepted.empty() ? "" : ", ";
    accepted += known;
  }
  throw Error("unknown measure error '" + std::string(name) + "'; accepted: " + accepted);
}

std::vector<MeasureResult> Measurer::measure_each(const std::vector<MeasureInput>& inputs,
                                                  const MeasureOptions& options,
                                                  const std::function<void(size_t, const MeasureResult&)>& on_result) {
  std::vector<MeasureResult> results = measure(inputs, options);
  if (on_result) {
    for (size_t i = 0; i < results.size() && i < inputs.size(); ++i) on_result(i, results[i]);
  }
  return results;
}

namespace {
// The median of sorted, non-empty values.
double median_of_sorted(const std::vector<double>& c) {
  return c.size() % 2 ? c[c.size() / 2] : (c[c.size() / 2 - 1] + c[c.size() / 2]) / 2;
}
}  // namespace

double MeasureResult::spread() const {
  if (costs.size() < 3) return 0;
  std::vector<double> c = costs;
  std::sort(c.begin(), c.end());
  // Nearest-rank percentiles.
  auto at = [&](double q) { return c[std::min(c.size() - 1, static_cast<size_t>(q * static_cast<double>(c.size())))]; };
  const double median = median_of_sorted(c);
  return median > 0 ? (at(0.9) - at(0.1)) / 2 / median : 0;
}

double MeasureResult::mean_cost() const {
  if (!ok()) return std::numeric_limits<double>::infinity();
  if (costs.size() < 3) return std::accumulate(costs.begin(), costs.end(), 0.0) / static_cast<double>(costs.size());
  // A repeat over twice the median was interrupted (another process on the
  // core, a burst of page faults), not the kernel running slower: one such
  // repeat of ten once made a winner read 3x its speed. It is left out.
  std::vector<double> c = costs;
  std::sort(c.begin(), c.end());
  const double median = median_of_sorted(c);
  double sum = 0;
  size_t n = 0;
  for (double x : c) {
    if (x > 2 * median) break;
    sum += x;
    ++n;
  }
  return sum / static_cast<double>(n);
}

void Measurer::submit(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
                      std::function<void(size_t, const MeasureResult&)> on_result) {
  std::vector<bool> told(inputs.size(), false);
  std::vector<MeasureResult> results = measure_each(inputs, options, [&](size_t i, const MeasureResult& r) {
    if (i < told.size() && !told[i]) {
      told[i] = true;
      on_result(i, r);
    }
  });
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (told[i]) continue;
    MeasureResult r;
    if (i < results.size()) {
      r = std::move(results[i]);
    } else {
      r.error = MeasureError::kRuntimeError;
      r.error_message = "the measurer returned no result for this input";
    }
    on_result(i, r);
  }
}

}  // namespace ktune
