// Test support: generated CUDA C compiled as C++ and run on the CPU, one
// std::thread per CUDA thread and std::barrier for __syncthreads(), one
// block at a time (so a __shared__ array, made a function-local static, is
// the block's). Checks the code generator's text, where the GPU emulator
// (gpu_emulator.h) checks the IR it came from.
#pragma once

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedule_space/codegen_cuda.h"
#include "tests/run_command.h"

namespace ktune::testing {

constexpr const char* kCudaShim = R"SHIM(
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
struct kt_dim3 { unsigned x = 0, y = 0, z = 0; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
static thread_local kt_dim3 threadIdx, blockIdx;
static std::barrier<>* kt_block_barrier = nullptr;
static inline void __syncthreads() { kt_block_barrier->arrive_and_wait(); }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
using std::min; using std::max;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(n)
)SHIM";

// Compiles kernel (plus a launcher) and runs it on params (inputs, then the
// output). Throws std::runtime_error with the compiler's output on failure.
inline void run_cuda_on_cpu(const CudaKernel& kernel, size_t num_params, std::vector<std::vector<float>>& params,
                            const std::filesystem::path& dir) {
  std::string call = kernel.name + "(";
  for (size_t i = 0; i < num_params; ++i) call += (i ? ", " : "") + std::string("p[") + std::to_string(i) + "]";
  call += ")";
  std::string src = std::string(kCudaShim) + kernel.source + R"(
extern "C" void kt_launch(float** p) {
  const long g[3] = {)" + std::to_string(kernel.grid[0]) + ", " + std::to_string(kernel.grid[1]) + ", " +
                    std::to_string(kernel.grid[2]) + R"(};
  const long b[3] = {)" + std::to_string(kernel.block[0]) + ", " + std::to_string(kernel.block[1]) + ", " +
                    std::to_string(kernel.block[2]) + R"(};
  for (long bz = 0; bz < g[2]; ++bz) for (long by = 0; by < g[1]; ++by) for (long bx = 0; bx < g[0]; ++bx) {
    std::barrier<> bar(b[0] * b[1] * b[2]);
    kt_block_barrier = &bar;
    std::vector<std::thread> threads;
    for (long tz = 0; tz < b[2]; ++tz) for (long ty = 0; ty < b[1]; ++ty) for (long tx = 0; tx < b[0]; ++tx) {
      threads.emplace_back([=] {
        blockIdx = {unsigned(bx), unsigned(by), unsigned(bz)};
        threadIdx = {unsigned(tx), unsigned(ty), unsigned(tz)};
        )" + call + R"(;
      });
    }
    for (auto& t : threads) t.join();
  }
}
)";
  static int counter = 0;
  const std::string stem = (dir / ("cuda_on_cpu_" + std::to_string(counter++))).string();
  std::ofstream(stem + ".cc") << src;
  std::vector<std::string> args = {"c++", "-std=c++20", "-O1", "-shared", "-fPIC", "-w", stem + ".cc", "-o", stem + ".so",
                                   "-pthread"};
  const std::string log = stem + ".log";
  const int rc = run_command(args, {}, log);
  if (rc == 127) throw std::runtime_error("cannot run c++");
  if (rc != 0) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    throw std::runtime_error("the CUDA source does not compile as C++ on the CPU:\n" + text);
  }
  void* h = dlopen((stem + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) throw std::runtime_error(dlerror());
  auto launch = reinterpret_cast<void (*)(float**)>(dlsym(h, "kt_launch"));
  std::vector<float*> p;
  for (auto& v : params) p.push_back(v.data());
  launch(p.data());
  dlclose(h);
}

}  // namespace ktune::testing
