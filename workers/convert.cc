#include "workers/convert.h"

#include <google/protobuf/util/json_util.h>

#include "schedule_space/error.h"

namespace ktune::wire {

v1::Target to_proto(const Target& t) {
  v1::Target p;
  p.set_kind(t.kind == TargetKind::kCpu ? "cpu" : "cuda");
  p.set_device_key(t.device_key());
  v1::CpuTarget* c = p.mutable_cpu();
  c->set_model(t.cpu.model);
  c->set_isa(t.cpu.isa);
  c->set_vector_lanes(t.cpu.vector_lanes);
  c->set_threads(t.cpu.threads);
  c->set_l1d_bytes(t.cpu.l1d_bytes);
  c->set_l2_bytes(t.cpu.l2_bytes);
  c->set_l3_bytes(t.cpu.l3_bytes);
  c->set_compiler(t.cpu.compiler);
  for (const std::string& f : t.cpu.flags) c->add_flags(f);
  if (t.kind == TargetKind::kCuda) {
    v1::CudaTarget* g = p.mutable_cuda();
    g->set_name(t.cuda.name);
    g->set_ordinal(t.cuda.ordinal);
    g->set_cc_major(t.cuda.cc_major);
    g->set_cc_minor(t.cuda.cc_minor);
    g->set_sm_count(t.cuda.sm_count);
    g->set_max_threads_per_block(t.cuda.max_threads_per_block);
    g->set_shared_bytes_per_block(t.cuda.shared_bytes_per_block);
    g->set_registers_per_block(t.cuda.registers_per_block);
    g->set_max_registers_per_thread(t.cuda.max_registers_per_thread);
    g->set_warp_size(t.cuda.warp_size);
  }
  return p;
}

Target from_proto(const v1::Target& p) {
  Target t;
  if (p.kind() == "cuda") {
    t.kind = TargetKind::kCuda;
  } else if (p.kind() != "cpu") {
    throw Error("target kind '" + p.kind() + "' is not supported (accepted: cpu, cuda)");
  }
  // to_proto writes the CPU of every kind (a GPU's host CPU too).
  const v1::CpuTarget& c = p.cpu();
  t.cpu.model = c.model();
  t.cpu.isa = c.isa();
  t.cpu.vector_lanes = c.vector_lanes();
  t.cpu.threads = c.threads();
  t.cpu.l1d_bytes = c.l1d_bytes();
  t.cpu.l2_bytes = c.l2_bytes();
  t.cpu.l3_bytes = c.l3_bytes();
  t.cpu.compiler = c.compiler();
  t.cpu.flags.assign(c.flags().begin(), c.flags().end());
  if (t.kind == TargetKind::kCuda) {
    const v1::CudaTarget& g = p.cuda();
    t.cuda.name = g.name();
    t.cuda.ordinal = g.ordinal();
    t.cuda.cc_major = g.cc_major();
    t.cuda.cc_minor = g.cc_minor();
    t.cuda.sm_count = g.sm_count();
    t.cuda.max_threads_per_block = g.max_threads_per_block();
    t.cuda.shared_bytes_per_block = g.shared_bytes_per_block();
    t.cuda.registers_per_block = g.registers_per_block();
    t.cuda.max_registers_per_thread = g.max_registers_per_thread();
    t.cuda.warp_size = g.warp_size();
  }
  check_target(t);
  if (!p.device_key().empty() && p.device_key() != t.device_key()) t.key = p.device_key();
  return t;
}

v1::DeviceInfo to_proto(const DeviceDescription& d) {
  v1::DeviceInfo p;
  *p.mutable_target() = to_proto(d.target);
  p.set_host(d.host);
  p.set_description(d.description);
  p.set_cpu_model_name(d.cpu_model_name);
  p.set_tool_version(d.tool_version);
  return p;
}

DeviceDescription from_proto(const v1::DeviceInfo& p) {
  DeviceDescription d;
  d.target = from_proto(p.target());
  d.host = p.host();
  d.description = p.description();
  d.cpu_model_name = p.cpu_model_name();
  d.tool_version = p.tool_version();
  return d;
}

v1::MeasureOptions to_proto(const MeasureOptions& o) {
  v1::MeasureOptions p;
  p.set_number(o.number);
  p.set_repeat(o.repeat);
  p.set_min_repeat_ms(o.min_repeat_ms);
  p.set_flush_cache(o.flush_cache);
  p.set_check(o.check);
  p.set_compile_timeout_s(o.compile_timeout_s);
  p.set_run_timeout_s(o.run_timeout_s);
  p.set_best_so_far_s(o.best_so_far_s);
  p.set_cut_short_factor(o.cut_short_factor);
  return p;
}

MeasureOptions from_proto(const v1::MeasureOptions& p) {
  MeasureOptions o;
  o.number = p.number();
  o.repeat = p.repeat();
  o.min_repeat_ms = p.min_repeat_ms();
  o.flush_cache = p.flush_cache();
  o.check = p.check();
  o.compile_timeout_s = p.compile_timeout_s();
  o.run_timeout_s = p.run_timeout_s();
  o.best_so_far_s = p.best_so_far_s();
  o.cut_short_factor = p.cut_short_factor();
  return o;
}

v1::MeasureResult to_proto(const MeasureResult& r) {
  v1::MeasureResult p;
  for (double c : r.costs) p.add_costs(c);
  p.set_error(static_cast<int32_t>(r.error));
  p.set_error_message(r.error_message);
  p.set_build_seconds(r.build_seconds);
  p.set_run_seconds(r.run_seconds);
  p.set_worker(r.worker);
  p.set_timestamp(r.timestamp);
  return p;
}

MeasureResult from_proto(const v1::MeasureResult& p) {
  MeasureResult r;
  r.costs.assign(p.costs().begin(), p.costs().end());
  if (p.error() < 0 || p.error() > static_cast<int>(MeasureError::kLast)) {
    r.error = MeasureError::kRuntimeError;
    r.error_message = "worker reported unknown error code " + std::to_string(p.error()) + ": " + p.error_message();
    r.costs.clear();
  } else {
    r.error = static_cast<MeasureError>(p.error());
    r.error_message = p.error_message();
  }
  r.build_seconds = p.build_seconds();
  r.run_seconds = p.run_seconds();
  r.worker = p.worker();
  r.timestamp = p.timestamp();
  return r;
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

void from_json(const std::string& json, google::protobuf::Message* m, const std::string& what) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, m, options);
  if (!status.ok()) throw Error(what + ": " + std::string(status.message()));
}

std::string host_name() { return ktune::host_name(); }

std::string cpu_model_name() { return ktune::cpu_model_name(); }

v1::DeviceInfo device_info(const Target& t) { return to_proto(describe_this_machine(t)); }

std::string device_description_json(const Target& t) { return describe_this_machine(t).to_json_text(); }

}  // namespace ktune::wire
