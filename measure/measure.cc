#include "measure/measure.h"

#include <array>
#include <limits>
#include <numeric>
#include <utility>

#include "schedule_space/error.h"

namespace ktune {
namespace {

// The names are part of the record format (database rows, JSONL, the runner
// protocol): never rename one.
constexpr std::array<std::pair<MeasureError, std::string_view>, 9> kErrorNames = {{
    {MeasureError::kNone, "none"},
    {MeasureError::kInvalidConfig, "invalid_config"},
    {MeasureError::kCompileError, "compile_error"},
    {MeasureError::kCompileTimeout, "compile_timeout"},
    {MeasureError::kRuntimeError, "runtime_error"},
    {MeasureError::kRunTimeout, "run_timeout"},
    {MeasureError::kWrongAnswer, "wrong_answer"},
    {MeasureError::kDeviceLost, "device_lost"},
    {MeasureError::kNotRecorded, "not_recorded"},
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

double MeasureResult::mean_cost() const {
  if (!ok()) return std::numeric_limits<double>::infinity();
  return std::accumulate(costs.begin(), costs.end(), 0.0) / static_cast<double>(costs.size());
}

}  // namespace ktune
