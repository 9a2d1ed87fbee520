#include "cli/common.h"

#include <cstdio>

#include "schedule_space/error.h"

namespace ktune::cli {

const Template& choose_template(const Workload& w, const std::string& template_name, TargetKind kind) {
  if (!template_name.empty()) {
    const Template& t = find_template(template_name);
    if (t.op() != w.op()) {
      throw Error("template " + template_name + " is for " + std::string(op_name(t.op())) +
                  " but the operator is " + std::string(op_name(w.op())));
    }
    if (auto why = t.unsupported(w)) throw Error("template " + template_name + ": " + *why);
    if (t.target_kind() != kind) {
      throw Error("template " + template_name + " is for " + (t.target_kind() == TargetKind::kCuda ? "CUDA GPUs" : "CPUs") +
                  ", not for this target");
    }
    return t;
  }
  std::vector<const Template*> candidates = templates_for(w, kind);
  if (candidates.empty()) {
    throw Error("no CPU template for " + std::string(op_name(w.op())));
  }
  return *candidates.front();
}

void check_format(const std::string& format) {
  if (format != "text" && format != "json") {
    throw Error("unknown format '" + format + "': accepted formats are text, json");
  }
}

nlohmann::json record_json(const Record& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["workload"] = r.workload_key;
  j["device_key"] = r.device_key;
  j["template"] = r.template_name;
  j["template_version"] = r.template_version;
  j["config_index"] = r.config_index;
  j["config"] = r.config_text;
  j["costs"] = r.result.costs;
  j["mean_cost_s"] = r.result.ok() ? nlohmann::json(r.result.mean_cost()) : nlohmann::json();
  j["gflops"] = r.gflops();
  j["error"] = std::string(error_name(r.result.error));
  j["error_message"] = r.result.error_message;
  j["kind"] = r.kind;
  j["timestamp"] = r.result.timestamp;
  j["tool_version"] = r.tool_version;
  j["build_flags"] = r.build_flags;
  return j;
}

std::string speed_text(const Record& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f GFLOP/s, %.4g ms", r.gflops(), r.result.mean_cost() * 1e3);
  return buf;
}

}  // namespace ktune::cli
