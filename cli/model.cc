#include "cli/model.h"

#include <iostream>

#include "measure/baselines.h"
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

std::optional<std::pair<double, std::string>> vendor_baseline(const Workload& w, int threads) {
  try {
    BenchData data(w);
    Baselines b = make_baselines(data, threads);
    std::vector<Contender*> contenders;
    for (auto& c : b.contenders) contenders.push_back(c.get());
    if (contenders.empty()) return std::nullopt;
    BenchOptions options;
    options.rounds = 5;
    BenchResult r = run_bench(data, contenders, options);
    if (!r.agree()) {
      std::string text;
      for (const Disagreement& d : r.disagreements) text += (text.empty() ? "" : "; ") + d.who + ": " + d.message;
      throw Error("a library disagrees with the reference: " + text);
    }
    const ContenderTiming* fastest = r.fastest_baseline();
    if (!fastest) return std::nullopt;
    return std::make_pair(fastest->median_s, fastest->display_name());
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
