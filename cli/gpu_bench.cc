#include "cli/gpu_bench.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cuda/cuda_baselines.h"
#include "cuda/cuda_run.h"
#include "cuda/nvrtc.h"
#include "db/record_config.h"
#include "measure/cuda_measurer.h"
#include "measure/verify.h"
#include "schedule_space/codegen_cuda.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct Row {
  std::string workload;
  double flops = 0;
  double tuned_s = 0, vendor_s = 0;
  std::string vendor, note;
};

std::string ms(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", s * 1e3);
  return buf;
}

}  // namespace

int run_gpu_bench(const GpuBenchArgs& args) {
  check_format(args.format);
  const Target& target = args.target;
  std::string no_nvrtc;
  const Nvrtc* nvrtc = Nvrtc::get(&no_nvrtc);
  if (!nvrtc) throw Error("cannot compile GPU kernels: " + no_nvrtc);
  std::unique_ptr<Database> db = Database::open(args.db_path);
  const std::string key = target.device_key();
  std::vector<Row> rows;
  for (const std::string& spec : args.workloads) {
    const Workload w = Workload::parse(spec);
    Row row;
    row.workload = w.key();
    row.flops = w.flops();
    std::optional<Record> best = db->best(w.key(), key);
    if ((!best || !usable(*best)) && args.trials > 0) {
      CudaMeasurerOptions o;
      o.cache_dir = args.cache_dir;
      CudaMeasurer measurer(o);
      TuneOptions options;
      options.trials = args.trials;
      tune_workload(w, target, "", args.tuner, 1, measurer, db.get(), options, args.format == "text");
      best = db->best(w.key(), key);
    }
    // The inputs every side computes on.
    std::vector<std::vector<float>> inputs;
    std::vector<TensorSpec> specs = w.inputs();
    for (size_t i = 0; i < specs.size(); ++i) {
      inputs.emplace_back(static_cast<size_t>(specs[i].elements()));
      fill_check_input(i, inputs.back().data(), specs[i].elements());
    }
    std::vector<const float*> pointers;
    for (const auto& v : inputs) pointers.push_back(v.data());
    std::vector<float> want(static_cast<size_t>(w.output().elements()));
    reference(w, pointers, want.data());
    std::optional<ResolvedConfig> tuned;
    if (best && best->result.ok()) tuned = resolve(*best, target);
    if (tuned && tuned->ok()) {
      const CudaKernel kernel = emit_cuda(tuned->tmpl->instantiate(w, target, tuned->space, tuned->config));
      const NvrtcResult built = nvrtc->compile(kernel.source, target.cuda.arch());
      if (!built.ok) throw Error("NVRTC: " + built.log);
      const std::string cubin = (std::filesystem::temp_directory_path() / ("ktune-bench-" + std::to_string(getpid()) + ".cubin")).string();
      std::ofstream(cubin, std::ios::binary) << built.cubin;
      CudaKernelRun run({cubin, kernel.name, kernel.grid, kernel.block, target.cuda.ordinal}, inputs, want.size());
      run.run_once();
      const std::vector<float> got = run.output();
      if (auto wrong = compare_with_reference(w, got.data(), want.data(), want.size())) {
        row.note = "ktune kernel wrong: " + *wrong;
      } else {
        GpuTiming tuned;
        tuned.seconds = time_batches([&](int n) { return run.time_calls(n); }, args.rounds, args.min_sample_s);
        row.tuned_s = tuned.median();
      }
      std::filesystem::remove(cubin);
    } else if (tuned) {
      row.note = "the tuned record is not usable: " + tuned->reason + " (tune again with --trials N)";
    } else {
      row.note = "no tuned record on " + key + " (use --trials N)";
    }
    GpuTiming vendor = time_vendor(w, target.cuda.ordinal, inputs, args.rounds, args.min_sample_s);
    if (!vendor.library.empty()) {
      if (auto wrong = compare_with_reference(w, vendor.output.data(), want.data(), want.size())) {
        row.note += (row.note.empty() ? "" : "; ") + vendor.library + " disagrees: " + *wrong;
      } else {
        row.vendor = vendor.library;
        row.vendor_s = vendor.median();
      }
    } else {
      row.note += (row.note.empty() ? "" : "; ") + vendor.skipped;
    }
    rows.push_back(row);
  }
  if (args.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const Row& r : rows) {
      out.push_back({{"workload", r.workload}, {"device_key", key}, {"ktune_s", r.tuned_s}, {"vendor", r.vendor},
                     {"vendor_s", r.vendor_s}, {"note", r.note}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "| workload | ktune ms | GFLOP/s | vendor | vendor ms | ktune / vendor speed |\n| --- | --- | --- | --- | --- | --- |\n";
  for (const Row& r : rows) {
    char g[32], ratio[32];
    std::snprintf(g, sizeof g, "%.1f", r.tuned_s > 0 ? r.flops / r.tuned_s / 1e9 : 0.0);
    std::snprintf(ratio, sizeof ratio, "%.2fx", r.tuned_s > 0 && r.vendor_s > 0 ? r.vendor_s / r.tuned_s : 0.0);
    std::cout << "| " << r.workload << " | " << (r.tuned_s > 0 ? ms(r.tuned_s) : "-") << " | " << g << " | "
              << (r.vendor.empty() ? "-" : r.vendor) << " | " << (r.vendor_s > 0 ? ms(r.vendor_s) : "-") << " | "
              << ratio << (r.note.empty() ? "" : " (" + r.note + ")") << " |\n";
  }
  std::cout << "device " << target.describe() << "\n";
  return kExitOk;
}

}  // namespace ktune::cli
