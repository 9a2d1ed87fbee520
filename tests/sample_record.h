// A measurement record with made-up but plausible fields, for database,
// log and export tests that write records by hand.
#pragma once

#include <string>
#include <vector>

#include "db/database.h"

namespace ktune::testing {

inline Record sample_record(const std::string& workload_key, const std::string& device_key,
                            const std::string& template_name, int template_version, uint64_t config_index,
                            std::vector<double> costs, MeasureError error = MeasureError::kNone) {
  Record r;
  r.workload_key = workload_key;
  r.device_key = device_key;
  r.template_name = template_name;
  r.template_version = template_version;
  r.config_index = config_index;
  r.config_text = "tile_m=[4,8] order=mnk #" + std::to_string(config_index);
  r.result.costs = std::move(costs);
  r.result.error = error;
  if (error != MeasureError::kNone) r.result.error_message = "failed: " + std::string(error_name(error));
  r.result.build_seconds = 0.25;
  r.result.run_seconds = 0.5;
  r.result.worker = "local";
  r.result.timestamp = 1700000000 + static_cast<int64_t>(config_index);
  r.flops = 2.0 * 64 * 64 * 64;
  r.tool_version = tool_version();
  r.build_flags = "c++ -O3 -march=native";
  return r;
}

}  // namespace ktune::testing
