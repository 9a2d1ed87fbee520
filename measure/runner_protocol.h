// The protocol between RunnerProcess (parent) and ktune-runner (child).
//
// One JSON object per line. The parent writes a request on the child's stdin:
//   {"protocol":1, "workload":"matmul(m=8,n=8,k=8)", "artifact":"/cache/ab12.so",
//    "number":0, "repeat":3, "min_repeat_ms":20, "flush_cache":false, "check":true,
//    "best_so_far_s":0, "cut_short_factor":2, "cuda":null}
// For a GPU candidate "artifact" is a cubin and "cuda" is
//   {"kernel":"ktune_matmul_cuda_tiled", "grid":[8,8,1], "block":[16,16,1], "device":0}.
// The child answers on its stdout with two lines. First, once the workload's
// inputs and reference output are ready (computing the reference can take
// long for a big workload, and it is not the candidate's time):
//   {"protocol":1, "event":"started"}
// then, when the candidate has been loaded, checked and timed:
//   {"protocol":1, "event":"done", "error":"none", "message":"", "costs":[1.2e-6, ...],
//    "number":1000}
// "error" is an error_name(); "costs" are seconds per call, one per repeat.
// The child then waits for the next request; it exits at end of input.
//
// Bump kRunnerProtocolVersion on any incompatible change: the child refuses a
// request of another version (runtime_error naming both), so a stale runner
// binary is reported instead of misread.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "measure/measure.h"
#include "measure/runner.h"
#include "schedule_space/error.h"

namespace ktune::detail {

inline constexpr int kRunnerProtocolVersion = 2;  // 2: "cuda" (GPU candidates)

inline nlohmann::json request_to_json(const RunRequest& r) {
  const MeasureOptions& o = r.options;
  return {{"protocol", kRunnerProtocolVersion},
          {"workload", r.workload_key},
          {"artifact", r.artifact_path},
          {"number", o.number},
          {"repeat", o.repeat},
          {"min_repeat_ms", o.min_repeat_ms},
          {"flush_cache", o.flush_cache},
          {"check", o.check},
          {"best_so_far_s", o.best_so_far_s},
          {"cut_short_factor", o.cut_short_factor},
          {"cuda", r.cuda.enabled ? nlohmann::json{{"kernel", r.cuda.kernel},
                                                   {"grid", r.cuda.grid},
                                                   {"block", r.cuda.block},
                                                   {"device", r.cuda.device}}
                                  : nlohmann::json()}};
}

// An integer field of type T. nlohmann's get<int>() converts a float such
// as 1e300 with a cast that is undefined behaviour out of range; a line from
// the other process is not trusted that far. Throws ktune::Error.
template <typename T>
T integer_field(const nlohmann::json& v, const std::string& name) {
  bool fits = false;
  if (v.is_number_unsigned()) {
    fits = v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    fits = i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
  }
  if (!fits) throw Error("runner protocol: field '" + name + "' is not an integer in range: " + v.dump());
  return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
}

inline std::array<int64_t, 3> dim3_field(const nlohmann::json& v, const std::string& name) {
  if (!v.is_array() || v.size() != 3) throw Error("runner protocol: field '" + name + "' is not 3 integers");
  return {integer_field<int64_t>(v[0], name), integer_field<int64_t>(v[1], name), integer_field<int64_t>(v[2], name)};
}

inline void check_protocol(const nlohmann::json& j, const char* what) {
  const int version = j.is_object() && j.contains("protocol") ? integer_field<int>(j.at("protocol"), "protocol") : 0;
  if (version != kRunnerProtocolVersion) {
    throw Error(std::string("runner ") + what + " speaks protocol version " +
                std::to_string(version) + ", expected version " +
                std::to_string(kRunnerProtocolVersion) + " (is ktune-runner from another build?)");
  }
}

// Throws ktune::Error (or nlohmann::json::exception) on a malformed request.
inline RunRequest request_from_json(const nlohmann::json& j) {
  check_protocol(j, "request");
  RunRequest r;
  r.workload_key = j.at("workload").get<std::string>();
  r.artifact_path = j.at("artifact").get<std::string>();
  MeasureOptions& o = r.options;
  o.number = integer_field<int>(j.at("number"), "number");
  o.repeat = integer_field<int>(j.at("repeat"), "repeat");
  o.min_repeat_ms = j.at("min_repeat_ms").get<double>();
  o.flush_cache = j.at("flush_cache").get<bool>();
  o.check = j.at("check").get<bool>();
  o.best_so_far_s = j.at("best_so_far_s").get<double>();
  o.cut_short_factor = j.at("cut_short_factor").get<double>();
  if (j.contains("cuda") && !j.at("cuda").is_null()) {
    const nlohmann::json& c = j.at("cuda");
    r.cuda.enabled = true;
    r.cuda.kernel = c.at("kernel").get<std::string>();
    r.cuda.grid = dim3_field(c.at("grid"), "grid");
    r.cuda.block = dim3_field(c.at("block"), "block");
    r.cuda.device = integer_field<int>(c.at("device"), "device");
  }
  return r;
}

inline nlohmann::json started_event() {
  return {{"protocol", kRunnerProtocolVersion}, {"event", "started"}};
}

inline nlohmann::json result_to_json(const MeasureResult& r, int number) {
  return {{"protocol", kRunnerProtocolVersion},
          {"event", "done"},
          {"error", std::string(error_name(r.error))},
          {"message", r.error_message},
          {"costs", r.costs},
          {"number", number}};
}

// Fills costs, error and error_message. Throws on a malformed reply.
inline void result_from_json(const nlohmann::json& j, MeasureResult& r) {
  check_protocol(j, "reply");
  r.error = parse_error_name(j.at("error").get<std::string>());
  r.error_message = j.at("message").get<std::string>();
  r.costs = j.at("costs").get<std::vector<double>>();
}

}  // namespace ktune::detail
