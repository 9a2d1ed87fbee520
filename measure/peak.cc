#include "measure/peak.h"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <vector>

#include "measure/kernel_library.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"

namespace ktune {

namespace {

constexpr int kChains = 12;

}  // namespace

std::string fma_peak_source(int vector_lanes, int threads, int64_t iterations) {
  std::ostringstream s;
  s << "// ktune FMA peak microbenchmark: " << kChains << " chains of " << vector_lanes
    << "-lane FMAs on " << threads << " threads.\n"
    << "#include <cstdint>\n#include <omp.h>\n"
    << "typedef float vec __attribute__((vector_size(" << vector_lanes * 4 << ")));\n"
    << "extern \"C\" int ktune_abi_version(void) { return " << kKernelAbiVersion << "; }\n"
    << "extern \"C\" int64_t ktune_workspace_floats(void) { return 0; }\n"
    << "extern \"C\" void ktune_prepare(const float* const*, float*) {}\n"
    << "extern \"C\" void ktune_run(const float* const*, float* output, float*) {\n"
    << "#pragma omp parallel num_threads(" << threads << ")\n"
    << "  {\n"
    << "    const int t = omp_get_thread_num();\n"
    // m slightly below 1 and a small addend keep every chain bounded and
    // normal (no denormal slow path); t makes the chains differ per thread.
    << "    vec m, b, acc[" << kChains << "];\n"
    << "    for (int l = 0; l < " << vector_lanes << "; ++l) { m[l] = 0.99999f; b[l] = 1e-3f; }\n"
    << "    for (int c = 0; c < " << kChains << "; ++c)\n"
    << "      for (int l = 0; l < " << vector_lanes << "; ++l) acc[c][l] = 0.01f * (c + l + t);\n"
    << "    vec";
  for (int c = 0; c < kChains; ++c) s << (c ? ", " : " ") << "a" << c << " = acc[" << c << "]";
  s << ";\n"
    << "    for (int64_t i = 0; i < " << iterations << "; ++i) {\n";
  for (int c = 0; c < kChains; ++c) s << "      a" << c << " = a" << c << " * m + b;\n";
  s << "    }\n    vec sum = a0";
  for (int c = 1; c < kChains; ++c) s << " + a" << c;
  s << ";\n    float total = 0;\n"
    << "    for (int l = 0; l < " << vector_lanes << "; ++l) total += sum[l];\n"
    << "    output[t] = total;\n  }\n}\n";
  return s.str();
}

double measure_fma_peak(const Target& target, const Builder& builder, double duration_s) {
  const int threads = std::max(1, target.cpu.threads);
  const int lanes = std::max(1, target.cpu.vector_lanes);
  // ~5-20 ms per call on current cores: long enough that a thread descheduled
  // for a moment on a busy machine does not make every call wait at the
  // closing barrier.
  constexpr int64_t kIterations = 1 << 21;
  BuildResult built = builder.build(fma_peak_source(lanes, threads, kIterations), target.cpu, 120);
  if (built.error != MeasureError::kNone) {
    throw Error("the FMA peak microbenchmark does not build: " + built.message);
  }
  KernelLibrary kernel(built.artifact_path);
  std::vector<float> output(static_cast<size_t>(threads));
  kernel.prepare(nullptr);
  const double flops_per_call = 2.0 * kChains * lanes * static_cast<double>(kIterations) * threads;

  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  kernel.run(nullptr, output.data());  // starts the thread pool
  const double sample_s = 0.05;
  double best = 0;
  const auto start = Clock::now();
  do {
    const auto sample_start = Clock::now();
    int calls = 0;
    do {
      kernel.run(nullptr, output.data());
      ++calls;
    } while (seconds(sample_start, Clock::now()) < sample_s);
    best = std::max(best, flops_per_call * calls / seconds(sample_start, Clock::now()) / 1e9);
  } while (seconds(start, Clock::now()) < duration_s);
  return best;
}

}  // namespace ktune
