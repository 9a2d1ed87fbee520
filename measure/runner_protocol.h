// The protocol between RunnerProcess (parent) and ktune-runner (child).
//
// One JSON object per line. The parent writes a request on the child's stdin:
//   {"protocol":1, "workload":"matmul(m=8,n=8,k=8)", "artifact":"/cache/ab12.so",
//    "number":0, "repeat":3, "min_repeat_ms":20, "flush_cache":false, "check":true,
//    "best_so_far_s":0, "cut_short_factor":10, "cuda":null}
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

inline void check_protocol(const nlohmann::json& j, const char* what) {
  int version = j.value("protocol", 0);
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
  o.number = j.at("number").get<int>();
  o.repeat = j.at("repeat").get<int>();
  o.min_repeat_ms = j.at("min_repeat_ms").get<double>();
  o.flush_cache = j.at("flush_cache").get<bool>();
  o.check = j.at("check").get<bool>();
  o.best_so_far_s = j.at("best_so_far_s").get<double>();
  o.cut_short_factor = j.at("cut_short_factor").get<double>();
  if (j.contains("cuda") && !j.at("cuda").is_null()) {
    const nlohmann::json& c = j.at("cuda");
    r.cuda.enabled = true;
    r.cuda.kernel = c.at("kernel").get<std::string>();
    r.cuda.grid = c.at("grid").get<std::array<int64_t, 3>>();
    r.cuda.block = c.at("block").get<std::array<int64_t, 3>>();
    r.cuda.device = c.at("device").get<int>();
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
