#include "measure/cuda_measurer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda/nvrtc.h"
#include "measure/builder.h"
#include "measure/subprocess.h"
#include "schedule_space/codegen_cuda.h"
#include "schedule_space/error.h"

namespace ktune {

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

MeasureResult failure(MeasureError e, const std::string& message, const std::string& worker) {
  MeasureResult r;
  r.error = e;
  r.error_message = message;
  r.worker = worker;
  r.timestamp = static_cast<int64_t>(std::time(nullptr));
  return r;
}

}  // namespace

CudaMeasurer::CudaMeasurer(CudaMeasurerOptions options)
    : options_(std::move(options)),
      runner_path_(options_.runner_path.empty() ? RunnerProcess::default_runner_path() : options_.runner_path),
      runner_(runner_path_) {
  if (options_.cache_dir.empty()) options_.cache_dir = default_cache_dir();
}

std::vector<MeasureResult> CudaMeasurer::measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& options) {
  std::vector<MeasureResult> results;
  std::string no_nvrtc;
  const Nvrtc* nvrtc = Nvrtc::get(&no_nvrtc);
  const std::filesystem::path dir = std::filesystem::path(options_.cache_dir) / "cuda";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (const MeasureInput& in : inputs) {
    const std::string& worker = options_.worker_name;
    if (in.target.kind != TargetKind::kCuda) {
      results.push_back(failure(MeasureError::kInvalidConfig, "CudaMeasurer needs a CUDA target", worker));
      continue;
    }
    const ConfigSpace space = in.tmpl->space(in.workload, in.target);
    if (auto why = in.tmpl->check(in.workload, in.target, space, in.config)) {
      results.push_back(failure(MeasureError::kInvalidConfig, *why, worker));
      continue;
    }
    const auto build_start = std::chrono::steady_clock::now();
    CudaKernel kernel;
    try {
      kernel = emit_cuda(in.tmpl->instantiate(in.workload, in.target, space, in.config));
    } catch (const Error& e) {
      results.push_back(failure(MeasureError::kCompileError, std::string("code generation: ") + e.what(), worker));
      continue;
    }
    const std::string arch = in.target.cuda.arch();
    char name[64];
    std::snprintf(name, sizeof name, "%016llx-%s.cubin", static_cast<unsigned long long>(fnv1a(kernel.source + arch)),
                  arch.c_str());
    const std::filesystem::path cubin = dir / name;
    if (!std::filesystem::exists(cubin)) {
      if (!nvrtc) {
        results.push_back(failure(MeasureError::kCompileError, no_nvrtc, worker));
        continue;
      }
      // NVRTC runs in a child process (ktune-runner --nvrtc), which the
      // compile timeout can kill.
      const std::filesystem::path source = cubin.string() + ".cu";
      std::ofstream(source, std::ios::binary) << kernel.source;
      detail::CommandResult built;
      try {
        built = detail::run_command({runner_path_, "--nvrtc", source.string(), arch, cubin.string()},
                                    options.compile_timeout_s);
      } catch (const Error& e) {
        results.push_back(failure(MeasureError::kCompileError, e.what(), worker));
        continue;
      }
      std::filesystem::remove(source, ec);
      if (built.timed_out) {
        results.push_back(failure(MeasureError::kCompileTimeout,
                                  "NVRTC took longer than " + std::to_string(options.compile_timeout_s) + " s", worker));
        continue;
      }
      if (!built.succeeded()) {
        results.push_back(failure(MeasureError::kCompileError, built.output, worker));
        continue;
      }
    }
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
    RunRequest request{in.workload.key(), cubin.string(), options, {}};
    request.cuda.enabled = true;
    request.cuda.kernel = kernel.name;
    request.cuda.grid = kernel.grid;
    request.cuda.block = kernel.block;
    request.cuda.device = in.target.cuda.ordinal;
    MeasureResult r = runner_.run(request);
    r.build_seconds = build_s;
    r.worker = worker;
    r.timestamp = static_cast<int64_t>(std::time(nullptr));
    results.push_back(std::move(r));
  }
  return results;
}

std::unique_ptr<Measurer> make_measurer(const Target& target, const LocalMeasurerOptions& options) {
  if (target.kind != TargetKind::kCuda) return std::make_unique<LocalMeasurer>(options);
  CudaMeasurerOptions o;
  o.cache_dir = options.cache_dir;
  o.runner_path = options.runner_path;
  o.worker_name = options.worker_name;
  return std::make_unique<CudaMeasurer>(o);
}

}  // namespace ktune
