#include "export/kernel_choice.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "db/record_config.h"
#include "db/stored_device.h"
#include "schedule_space/error.h"

namespace ktune::export_detail {

namespace {

// How far apart two workloads of one operator are: log ratios of their sizes.
double distance(const Workload& a, const Workload& b) {
  const std::vector<int64_t> x = shape_array(a), y = shape_array(b);
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d += std::abs(std::log1p(static_cast<double>(x[i])) - std::log1p(static_cast<double>(y[i])));
  return d;
}

// The device the kernels are for, as its workers or `ktune tune` described it.
Target device_target(const Database& db, const std::string& key, std::string* description) {
  if (std::optional<DeviceDescription> stored = stored_device(db, key)) {
    Target t = stored->target;
    t.key.clear();  // the derived key where it is the device key, else the key as given
    if (t.device_key() != key) t.key = key;
    *description = stored->description.empty() ? t.describe() : stored->description;
    return t;
  }
  // Older databases have no description: this machine, if it is that device.
  const auto slash = key.rfind('/');
  int threads = 0;
  if (slash != std::string::npos && key.size() > slash + 2 && key.back() == 't') {
    threads = std::atoi(key.substr(slash + 1, key.size() - slash - 2).c_str());
  }
  Target here = detect_cpu_target(threads > 0 ? threads : 0);
  if (here.device_key() != key) {
    throw Error("the database has no description of device " + key + " (measured before ktune stored one), and this "
                "machine is " + here.device_key() + ": export on that device, or re-tune there");
  }
  *description = here.describe();
  return here;
}

}  // namespace

int op_code(OpKind op) {
  switch (op) {
    case OpKind::kMatmul: return 0;
    case OpKind::kDense: return 1;
    case OpKind::kBatchMatmul: return 2;
    case OpKind::kConv2d: return 3;
    case OpKind::kDepthwiseConv2d: return 4;
  }
  return -1;
}

// The dispatcher's 15-value shape of a workload (dispatch.cc's layout).
std::vector<int64_t> shape_array(const Workload& w) {
  std::vector<int64_t> a(15, 0);
  switch (w.op()) {
    case OpKind::kMatmul: {
      const auto& s = w.matmul();
      a[0] = s.m, a[1] = s.n, a[2] = s.k;
      break;
    }
    case OpKind::kDense: {
      const auto& s = w.dense();
      a[0] = s.batch, a[1] = s.in, a[2] = s.out, a[3] = s.bias ? 1 : 0;
      break;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = w.batch_matmul();
      a[0] = s.b, a[1] = s.m, a[2] = s.n, a[3] = s.k;
      break;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const auto& s = w.conv2d();
      a = {s.n, s.c, s.h, s.w, w.op() == OpKind::kConv2d ? s.k : s.multiplier, s.r, s.s, s.stride_h, s.stride_w,
           s.pad_top, s.pad_left, s.pad_bottom, s.pad_right, s.dilation_h, s.dilation_w};
      break;
    }
  }
  return a;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string kernel_table(const std::vector<CppExportKernel>& kernels) {
  std::ostringstream out;
  out << "| # | workload | kernel | template | config | measured when tuned |\n| --- | --- | --- | --- | --- | --- |\n";
  for (size_t i = 0; i < kernels.size(); ++i) {
    const CppExportKernel& k = kernels[i];
    const Workload w = Workload::parse(k.workload_key);
    std::string measured = "-";
    if (k.measured_s > 0) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.4g ms (%.1f GFLOP/s)", k.measured_s * 1e3, w.flops() / k.measured_s / 1e9);
      measured = buf;
    }
    out << "| " << i << " | `" << k.workload_key << "` | " << k.source << (k.from.empty() ? "" : " (from `" + k.from + "`)")
        << " | " << k.template_name << " | `" << k.config_text << "` | " << measured << " |\n";
  }
  return out.str();
}

void prepare_tree(const std::string& root_dir) {
  namespace fs = std::filesystem;
  const fs::path root = root_dir;
  std::error_code ec;
  fs::create_directories(root / "src", ec);
  fs::create_directories(root / "include", ec);
  fs::create_directories(root / "cmake", ec);
  if (ec) throw Error("cannot create " + root.string() + ": " + ec.message());
  for (const auto& entry : fs::directory_iterator(root / "src")) {
    if (entry.path().filename().string().rfind("kernel_", 0) == 0) fs::remove(entry.path());  // a previous export's
  }
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error("cannot write " + path);
}

ExportPlan choose_export_kernels(const Database& db, const CppExportOptions& options) {
  ExportPlan summary;
  std::vector<std::string> keys = db.device_keys();
  if (!options.device_key.empty()) {
    if (std::find(keys.begin(), keys.end(), options.device_key) == keys.end()) {
      std::string known;
      for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k;
      throw Error("no records for device key " + options.device_key + " in " + db.path() +
                  (known.empty() ? " (it has none)" : " (it has: " + known + ")"));
    }
    summary.device_key = options.device_key;
  } else if (keys.size() == 1) {
    summary.device_key = keys.front();
  } else {
    std::string known;
    for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k;
    throw Error(keys.empty() ? "no records in " + db.path()
                             : "the database has several device keys (" + known + "): choose one with --device-key");
  }
  summary.target = device_target(db, summary.device_key, &summary.description);
  const Target& target = summary.target;

  // What was tuned on the device: the best record of every workload that is
  // usable here (its template still at that version).
  std::vector<std::pair<Workload, Record>> tuned;
  for (const std::string& key : db.workload_keys(summary.device_key)) {
    std::optional<Record> best = db.best(key, summary.device_key);
    if (!best || !usable(*best)) continue;
    try {
      tuned.emplace_back(Workload::parse(key), *best);
    } catch (const Error&) {
      continue;
    }
  }
  std::vector<Workload> wanted = options.workloads;
  if (wanted.empty()) {
    for (const auto& [w, r] : tuned) wanted.push_back(w);
  }
  if (wanted.empty()) throw Error("nothing tuned on " + summary.device_key + " in " + db.path());

  std::vector<ExportChoice>& chosen = summary.kernels;
  std::map<std::string, bool> seen;
  for (const Workload& w : wanted) {
    if (seen[w.key()]) continue;
    seen[w.key()] = true;
    ExportChoice c;
    c.workload = w;
    c.info.workload_key = w.key();
    auto exact = std::find_if(tuned.begin(), tuned.end(), [&](const auto& t) { return t.first == w; });
    if (exact != tuned.end()) {
      // The recorded config, in this build's space for the described device
      // (by index, checked against its text; else by its text, where the
      // index names another config of that space).
      const ResolvedConfig resolved = resolve(exact->second, target);
      std::optional<Config> config;
      if (resolved.ok()) {
        config = resolved.config;
      } else if (resolved.problem == ResolveProblem::kOutsideSpace || resolved.problem == ResolveProblem::kOtherConfig) {
        try {
          config = resolved.space.parse(exact->second.config_text);
        } catch (const Error&) {
        }
      }
      if (config && !resolved.tmpl->check(w, target, resolved.space, *config)) {
        c.tmpl = resolved.tmpl;
        c.config = *config;
        c.info.source = "tuned";
        c.info.measured_s = exact->second.result.mean_cost();
      }
    }
    if (!c.tmpl) {
      // The config of the nearest tuned workload of the same operator, resized
      // to this shape where its splits allow (ConfigSpace::parse_resized).
      const std::pair<Workload, Record>* nearest = nullptr;
      for (const auto& t : tuned) {
        if (t.first.op() != w.op()) continue;
        if (!nearest || distance(t.first, w) < distance(nearest->first, w)) nearest = &t;
      }
      if (nearest) {
        try {
          const Template& tmpl = find_template(nearest->second.template_name);
          if (!tmpl.unsupported(w)) {
            const ConfigSpace space = tmpl.space(w, target);
            std::optional<Config> config = space.parse_resized(nearest->second.config_text);
            if (config && !tmpl.check(w, target, space, *config)) {
              c.tmpl = &tmpl;
              c.config = *config;
              c.info.source = "nearest";
              c.info.from = nearest->first.key();
            }
          }
        } catch (const Error&) {
          // its knob values do not exist in this shape's space
        }
      }
      if (!c.tmpl) {
        std::vector<const Template*> ts = templates_for(w, target.kind);
        if (ts.empty()) throw Error("no template for " + w.key());
        c.tmpl = ts.front();
        const ConfigSpace space = c.tmpl->space(w, target);
        std::vector<Config> seeds = c.tmpl->seed_configs(w, target, space);
        if (seeds.empty()) throw Error("no default config for " + w.key() + " with " + c.tmpl->name());
        c.config = seeds.front();
        c.info.source = "default";
      }
    }
    c.info.template_name = c.tmpl->name();
    c.info.config_text = c.tmpl->space(w, target).describe(c.config);
    chosen.push_back(std::move(c));
  }

  return summary;
}

}  // namespace ktune::export_detail
