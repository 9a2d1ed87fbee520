#include "cli/model.h"

#include <iostream>

#include "db/record_config.h"
#include "measure/baselines.h"
#include "measure/bench.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"

namespace ktune::cli {

ModelTasks load_model(const std::string& path, const std::vector<std::string>& input_shapes) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& text : input_shapes) {
    auto [name, dims] = parse_input_shape(text);
    if (!shapes.emplace(name, dims).second) throw Error("--input-shape names input '" + name + "' twice");
  }
  return load_onnx_tasks(path, shapes);
}

std::string build_tuned_kernel(const Workload& w, const Record& r, const Target& target, const Builder& builder,
                               std::string* transforms) {
  // The resolver also catches a template whose knobs changed without a
  // version bump, which would silently time another config.
  const ResolvedConfig resolved = resolve(r, target);
  if (!resolved.ok()) throw Error("the tuned record of " + w.key() + " is not usable: " + resolved.reason + ": tune it again");
  const ir::Program program = resolved.tmpl->instantiate(w, target, resolved.space, resolved.config);
  if (transforms) *transforms = describe_timed_transforms(program);
  BuildResult built = builder.build(emit_cpp(program), target.cpu, 300);
  if (built.error != MeasureError::kNone) {
    throw Error("the tuned kernel of " + w.key() + " (config #" + std::to_string(r.config_index) +
                ") does not build: " + built.message);
  }
  return built.artifact_path;
}

std::optional<VendorTiming> vendor_baseline(const Workload& w, int threads, const std::string& tuned_artifact) {
  try {
    BenchData data(w);
    Baselines b = make_baselines(data, threads);
    std::unique_ptr<Contender> tuned;
    std::vector<Contender*> contenders;
    if (!tuned_artifact.empty()) {
      tuned = make_tuned_contender(tuned_artifact, data, "");
      contenders.push_back(tuned.get());
    }
    for (auto& c : b.contenders) contenders.push_back(c.get());
    if (b.contenders.empty()) return std::nullopt;
    BenchOptions options;
    options.rounds = 5;
    // Let worker threads of the previous side go idle before each sample.
    if (threads > 1) options.pause_s = 0.2;
    BenchResult r = run_bench(data, contenders, options);
    if (!r.agree()) {
      std::string text;
      for (const Disagreement& d : r.disagreements) text += (text.empty() ? "" : "; ") + d.who + ": " + d.message;
      throw Error("a side disagrees with the reference: " + text);
    }
    const ContenderTiming* fastest = r.fastest_baseline();
    if (!fastest) return std::nullopt;
    VendorTiming v;
    v.vendor_s = fastest->median_s;
    v.vendor = fastest->display_name();
    if (tuned) v.tuned_s = r.timings.front().median_s;
    return v;
  } catch (const Error& e) {
    std::cerr << "vendor baseline for " << w.key() << " skipped: " << e.what() << "\n";
    return std::nullopt;
  }
}

namespace {

nlohmann::json fields(const Workload& w) {
  nlohmann::json j;
  switch (w.op()) {
    case OpKind::kMatmul: {
      const auto& s = w.matmul();
      j = {{"m", s.m}, {"n", s.n}, {"k", s.k}};
      break;
    }
    case OpKind::kDense: {
      const auto& s = w.dense();
      j = {{"batch", s.batch}, {"in", s.in}, {"out", s.out}, {"bias", s.bias}};
      break;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = w.batch_matmul();
      j = {{"b", s.b}, {"m", s.m}, {"n", s.n}, {"k", s.k}};
      break;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const auto& s = w.conv2d();
      j = {{"n", s.n}, {"c", s.c}, {"h", s.h}, {"w", s.w}, {"k", s.k}, {"r", s.r}, {"s", s.s},
           {"stride", {s.stride_h, s.stride_w}}, {"pad", {s.pad_top, s.pad_left, s.pad_bottom, s.pad_right}},
           {"dilation", {s.dilation_h, s.dilation_w}}};
      if (w.op() == OpKind::kDepthwiseConv2d) j["multiplier"] = s.multiplier;
      break;
    }
  }
  return j;
}

}  // namespace

nlohmann::json model_tasks_json(const ModelTasks& m) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const ModelTask& t : m.tasks) {
    tasks.push_back({{"workload", t.workload.key()},
                     {"op", std::string(op_name(t.workload.op()))},
                     {"fields", fields(t.workload)},
                     {"weight", t.weight},
                     {"flops", t.workload.flops()},
                     {"nodes", t.nodes}});
  }
  nlohmann::json not_tunable = nlohmann::json::array();
  for (const NotTunable& n : m.not_tunable) not_tunable.push_back({{"op", n.what}, {"count", n.count}});
  return {{"model", m.path}, {"producer", m.producer}, {"opset", m.opset}, {"nodes", m.total_nodes},
          {"tasks", tasks}, {"not_tunable", not_tunable}};
}

}  // namespace ktune::cli
