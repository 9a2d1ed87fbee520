#include "cuda/cuda_driver.h"

#include <dlfcn.h>

#include <cctype>

#include "schedule_space/error.h"

namespace ktune {

namespace {

// cuda.h's values (the header is not needed to build).
enum Attribute {
  kMaxThreadsPerBlock = 1,
  kMaxSharedMemoryPerBlock = 8,
  kMaxRegistersPerBlock = 12,
  kWarpSize = 10,
  kMultiprocessorCount = 16,
  kComputeCapabilityMajor = 75,
  kComputeCapabilityMinor = 76,
};

}  // namespace

namespace detail {
std::string gpu_name_slug(const std::string& name) {
  std::string s;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!s.empty() && s.back() != '-') {
      s += '-';
    }
  }
  while (!s.empty() && s.back() == '-') s.pop_back();
  return s.empty() ? "gpu" : s;
}
}  // namespace detail

std::vector<Target> discover_cuda_devices(std::string* why) {
  std::vector<Target> out;
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    if (why) *why = "no CUDA driver (libcuda.so.1 not found)";
    return out;
  }
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using AttrFn = int (*)(int*, int, int);
  auto init = reinterpret_cast<InitFn>(dlsym(h, "cuInit"));
  auto count = reinterpret_cast<CountFn>(dlsym(h, "cuDeviceGetCount"));
  auto get = reinterpret_cast<GetFn>(dlsym(h, "cuDeviceGet"));
  auto name = reinterpret_cast<NameFn>(dlsym(h, "cuDeviceGetName"));
  auto attr = reinterpret_cast<AttrFn>(dlsym(h, "cuDeviceGetAttribute"));
  int n = 0;
  if (!init || !count || !get || !name || !attr) {
    if (why) *why = "libcuda.so.1 lacks the driver API functions";
  } else if (int rc = init(0); rc != 0) {
    if (why) *why = "cuInit failed with CUDA error " + std::to_string(rc) + " (no usable GPU?)";
  } else if (count(&n) != 0 || n == 0) {
    if (why) *why = "the CUDA driver reports no device";
  }
  for (int i = 0; i < n; ++i) {
    int dev = 0;
    if (get(&dev, i) != 0) continue;
    char buf[256] = {0};
    name(buf, sizeof buf - 1, dev);
    auto a = [&](int what) {
      int v = 0;
      attr(&v, what, dev);
      return v;
    };
    Target t;
    t.kind = TargetKind::kCuda;
    t.cuda.name = detail::gpu_name_slug(buf);
    t.cuda.ordinal = i;
    t.cuda.cc_major = a(kComputeCapabilityMajor);
    t.cuda.cc_minor = a(kComputeCapabilityMinor);
    t.cuda.sm_count = a(kMultiprocessorCount);
    t.cuda.max_threads_per_block = a(kMaxThreadsPerBlock);
    t.cuda.shared_bytes_per_block = a(kMaxSharedMemoryPerBlock);
    t.cuda.registers_per_block = a(kMaxRegistersPerBlock);
    t.cuda.warp_size = a(kWarpSize);
    out.push_back(t);
  }
  // The driver stays loaded: unloading it under a live context is unsafe.
  return out;
}

Target cuda_target(const std::string& device) {
  if (device.rfind("cuda:", 0) != 0) throw Error("'" + device + "' is not a CUDA device (cuda:N)");
  int ordinal = -1;
  try {
    ordinal = std::stoi(device.substr(5));
  } catch (const std::exception&) {
  }
  std::string why;
  std::vector<Target> all = discover_cuda_devices(&why);
  if (all.empty()) throw Error("no CUDA device: " + why);
  if (ordinal < 0 || ordinal >= static_cast<int>(all.size())) {
    throw Error("no device " + device + ": this machine has cuda:0.." + std::to_string(all.size() - 1));
  }
  return all[static_cast<size_t>(ordinal)];
}

}  // namespace ktune
