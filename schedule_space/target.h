// Targets: where generated code runs.
//
// A device key names a class of identical devices; results are compared and
// reused per device key, e.g. "cpu/amd-epyc/avx2/2t".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ktune {

enum class TargetKind { kCpu, kCuda };

struct CpuTarget {
  std::string model = "generic";  // slug of the CPU model name, e.g. "amd-epyc"
  std::string isa = "generic";    // "avx512", "avx2", "sse4", "neon" or "generic"
  int vector_lanes = 4;           // fp32 lanes of one native vector register
  int threads = 1;                // threads generated kernels use
  int64_t l1d_bytes = 32 * 1024;
  int64_t l2_bytes = 512 * 1024;
  int64_t l3_bytes = 8 * 1024 * 1024;
  std::string compiler = "c++";   // compiler executable run by the Builder
  std::vector<std::string> flags = {"-O3", "-march=native", "-ffp-contract=fast"};
  bool operator==(const CpuTarget&) const = default;
};

// An NVIDIA GPU, as the CUDA driver describes it (discovered with
// cuda/cuda_driver.h, or given for compile-only use such as tests).
struct CudaTarget {
  std::string name = "generic";     // slug of the device name, e.g. "nvidia-h100-80gb-hbm3"
  int ordinal = 0;                  // cuda:N
  int cc_major = 8, cc_minor = 0;   // compute capability
  int sm_count = 1;
  int max_threads_per_block = 1024;
  int64_t shared_bytes_per_block = 48 * 1024;  // static __shared__ limit
  int registers_per_block = 65536;
  int max_registers_per_thread = 255;
  int warp_size = 32;
  std::string arch() const { return "sm_" + std::to_string(cc_major) + std::to_string(cc_minor); }
  bool operator==(const CudaTarget&) const = default;
};

struct Target {
  TargetKind kind = TargetKind::kCpu;
  CpuTarget cpu;
  CudaTarget cuda;  // kind == kCuda
  // A device key given by the user (`ktune worker --key`); empty: derived.
  std::string key;

  // key if set, else "cpu/<model>/<isa>/<threads>t" or "cuda/<name>/sm_XY".
  std::string device_key() const;
  // Human-readable one-line description (model, ISA, threads, caches, compiler).
  std::string describe() const;

  bool operator==(const Target&) const = default;
};

// Throws ktune::Error naming the first field of t's kind this build cannot
// use, e.g. "target: cpu.threads must be positive, got 0": a CPU's vector
// lanes, threads and cache sizes must be positive and its compiler named; a
// GPU's compute capability, limits, SM count and warp size positive and its
// name given. Targets that arrive from elsewhere (the farm, a stored device
// description) are checked before anything is built for them.
void check_target(const Target& t);

// /proc/cpuinfo's "model name" of this machine, e.g. "AMD EPYC 7B13" ("" if
// it has none).
std::string cpu_model_name();

// Reads /proc/cpuinfo, sysfs caches and the CPU's features. threads <= 0
// means all online cores.
Target detect_cpu_target(int threads = 0);

// A compile-only CUDA target for a compute capability ("sm_80", "sm_90"):
// typical limits of that generation (A100 / H100), no device needed.
// Throws ktune::Error for an arch it does not know.
Target cuda_target_for_arch(const std::string& arch);

// Number of online CPU cores.
int online_cores();

namespace detail {
// Device-key slug of a /proc/cpuinfo "model name": lowercased, trademarks,
// clock and core-count suffixes dropped, other runs of non-alphanumerics
// turned into '-'. "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" ->
// "intel-xeon-platinum-8375c"; "generic" if nothing is left.
std::string cpu_model_slug(const std::string& model_name);
}  // namespace detail

}  // namespace ktune
