// `ktune export --format cpp` for a CUDA device: the generated CUDA kernel
// library. Records for an sm_90 device are written by hand (no GPU here);
// the tree is checked, built by CMake with nvcc as a separate project where
// the CUDA toolkit is installed, and run: on a GPU every kernel and the
// generic fallback are checked against a reference; without one a call is
// a clear KTUNE_ECUDA, not a crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "db/database.h"
#include "db/stored_device.h"
#include "export/cpp_export.h"
#include "schedule_space/template.h"
#include "tests/ktune_command.h"
#include "tests/sample_record.h"
#include "tests/scratch_dir.h"
#include "tests/user_project.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUserProgram = R"USER(#include <ktune_kernels.h>
#include <cuda_runtime_api.h>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

static std::mt19937 rng(7);
static int failures = 0;
static std::vector<float> rnd(size_t n) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}
static float* device(const std::vector<float>& v) {
  float* p = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&p), v.size() * sizeof(float));
  cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice);
  return p;
}
static void check(const char* what, int rc, int kind, float* out, const std::vector<float>& want) {
  std::vector<float> got(want.size(), NAN);
  cudaDeviceSynchronize();
  cudaMemcpy(got.data(), out, got.size() * sizeof(float), cudaMemcpyDeviceToHost);
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / (1 + std::fabs(want[i])));
  const bool ok = rc == KTUNE_OK && worst < 1e-4;
  failures += !ok;
  std::printf("%s %s rc=%d kind=%d err=%.2g\n", ok ? "ok" : "FAIL", what, rc, kind, worst);
}
static void matmul(int64_t m, int64_t n, int64_t k) {
  auto a = rnd(m * k), b = rnd(k * n);
  std::vector<float> want(m * n, 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) want[i * n + j] += a[i * k + p] * b[p * n + j];
  ktune_matmul_shape s = {m, n, k};
  float *da = device(a), *db = device(b), *dc = device(std::vector<float>(m * n, NAN));
  check("matmul", ktune_matmul_f32(&s, da, db, dc, 0), ktune_matmul_kind(&s), dc, want);
  cudaFree(da), cudaFree(db), cudaFree(dc);
}
static void dense(int64_t batch, int64_t in, int64_t out) {
  auto x = rnd(batch * in), w = rnd(out * in), bias = rnd(out);
  std::vector<float> want(batch * out);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < out; ++o) {
      float acc = bias[o];
      for (int64_t i = 0; i < in; ++i) acc += x[b * in + i] * w[o * in + i];
      want[b * out + o] = acc;
    }
  ktune_dense_shape s = {batch, in, out, 1};
  float *dx = device(x), *dw = device(w), *dbias = device(bias), *dy = device(std::vector<float>(batch * out, NAN));
  check("dense", ktune_dense_f32(&s, dx, dw, dbias, dy, 0), ktune_dense_kind(&s), dy, want);
  cudaFree(dx), cudaFree(dw), cudaFree(dbias), cudaFree(dy);
}
static void conv(int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t pad) {
  const int64_t oh = h + 2 * pad - r + 1, ow = w + 2 * pad - r + 1;
  auto in = rnd(c * h * w), wt = rnd(k * c * r * r);
  std::vector<float> want(k * oh * ow, 0);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        float acc = 0;
        for (int64_t ci = 0; ci < c; ++ci)
          for (int64_t i = 0; i < r; ++i)
            for (int64_t j = 0; j < r; ++j) {
              const int64_t yy = y + i - pad, xx = x + j - pad;
              if (yy >= 0 && yy < h && xx >= 0 && xx < w) acc += in[(ci * h + yy) * w + xx] * wt[((o * c + ci) * r + i) * r + j];
            }
        want[(o * oh + y) * ow + x] = acc;
      }
  ktune_conv2d_shape s = {1, c, h, w, k, r, r, 1, 1, pad, pad, pad, pad, 1, 1};
  float *di = device(in), *dw = device(wt), *dout = device(std::vector<float>(want.size(), NAN));
  check("conv2d", ktune_conv2d_f32(&s, di, dw, dout, 0), ktune_conv2d_kind(&s), dout, want);
  cudaFree(di), cudaFree(dw), cudaFree(dout);
}

int main() {
  std::printf("device %s, sm_%d, %d kernels\n", ktune_kernels_device_key(), ktune_kernels_arch(), ktune_kernels_count());
  ktune_matmul_shape tuned = {64, 64, 32}, other = {7, 5, 3};
  if (ktune_matmul_kind(&tuned) != KTUNE_KERNEL_TUNED || ktune_matmul_kind(&other) != KTUNE_KERNEL_GENERIC) {
    std::printf("FAIL kinds\n");
    failures++;
  }
  if (ktune_matmul_f32(&tuned, nullptr, nullptr, nullptr, 0) != KTUNE_EINVAL) failures++;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    float* fake = reinterpret_cast<float*>(256);
    const int rc = ktune_matmul_f32(&tuned, fake, fake, fake, 0);
    std::printf("no GPU: rc=%d cuda error=%d\n", rc, ktune_last_cuda_error());
    return failures == 0 && rc == KTUNE_ECUDA && ktune_last_cuda_error() != 0 ? 0 : 1;
  }
  matmul(64, 64, 32);                      // tuned
  dense(1, 64, 32);                        // tuned
  conv(8, 10, 10, 16, 3, 1);               // tuned
  matmul(128, 64, 32);                     // nearest
  ktune_reset_counters();
  matmul(7, 5, 3);                         // generic
  conv(3, 9, 9, 4, 3, 0);                  // generic
  std::printf("GPU checked, generic calls %ld\n", (long)ktune_generic_calls());
  return failures == 0 && ktune_generic_calls() == 2 ? 0 : 1;
}
)USER";

// nvcc from $CUDACXX, /usr/local/cuda or PATH; empty if none.
std::string find_nvcc() {
  if (const char* env = std::getenv("CUDACXX"); env && fs::exists(env)) return env;
  if (fs::exists("/usr/local/cuda/bin/nvcc")) return "/usr/local/cuda/bin/nvcc";
  testing::ScratchDir probe("ktune-nvcc-probe");
  return testing::run_command({"nvcc", "--version"}, {}, probe / "log") == 0 ? "nvcc" : "";
}

TEST(ExportCudaTest, ACudaDeviceExportsACudaLibraryThatBuildsAloneAndRunsOrSaysWhyNot) {
  testing::ScratchDir dir("ktune-export-cuda");
  auto db = Database::open((dir / "t.db").string());
  const Target target = cuda_target_for_arch("sm_90");
  const std::string key = target.device_key();
  store_device(*db, describe_this_machine(target));
  std::vector<Record> records;
  for (const std::string spec : {"matmul(m=64,n=64,k=32)", "dense(batch=1,in=64,out=32,bias=1)",
                                 "conv2d(n=1,c=8,h=10,w=10,k=16,r=3,s=3,pad=1)"}) {
    const Workload w = Workload::parse(spec);
    const Template& t = *templates_for(w, TargetKind::kCuda).front();
    const ConfigSpace space = t.space(w, target);
    const Config c = t.seed_configs(w, target, space).front();
    Record r = testing::sample_record(w.key(), key, t.name(), t.version(), c.index, {2e-6, 2.1e-6});
    r.config_text = space.describe(c);
    r.flops = w.flops();
    records.push_back(r);
  }
  db->insert(records);
  CppExportOptions options;
  options.out_dir = (dir / "kernels").string();
  for (const std::string spec : {"matmul(m=64,n=64,k=32)", "dense(batch=1,in=64,out=32,bias=1)",
                                 "conv2d(n=1,c=8,h=10,w=10,k=16,r=3,s=3,pad=1)", "matmul(m=128,n=64,k=32)"}) {
    options.workloads.push_back(Workload::parse(spec));
  }
  const CppExportSummary s = export_cpp_library(*db, options);
  ASSERT_EQ(s.kernels.size(), 4u);
  EXPECT_EQ(s.device_key, key);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.kernels[i].source, "tuned") << s.kernels[i].workload_key;
  EXPECT_EQ(s.kernels[3].source, "nearest");
  EXPECT_EQ(s.kernels[3].template_name, "matmul_cuda_tiled");
  const fs::path tree = dir / "kernels";
  const std::string header = testing::read_file(tree / "include" / "ktune_kernels.h");
  EXPECT_NE(header.find("cudaStream_t stream"), std::string::npos);
  EXPECT_NE(header.find("KTUNE_ECUDA"), std::string::npos);
  EXPECT_NE(testing::read_file(tree / "src" / "kernel_000.cu").find("ktune_k0<<<dim3("), std::string::npos);
  EXPECT_NE(testing::read_file(tree / "CMakeLists.txt").find("LANGUAGES CXX CUDA"), std::string::npos);
  const std::string readme = testing::read_file(tree / "README.md");
  EXPECT_NE(readme.find("sm_90"), std::string::npos);
  EXPECT_NE(readme.find("GFLOP/s"), std::string::npos);

  const std::string nvcc = find_nvcc();
  if (nvcc.empty()) GTEST_SKIP() << "no nvcc (the CUDA toolkit is not installed): the tree was not built";
  std::string out;
  const int rc = testing::build_and_run_user_project(dir.path(), tree, kUserProgram, {"-DCMAKE_CUDA_COMPILER=" + nvcc}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
  EXPECT_NE(out.find("sm_90, 4 kernels"), std::string::npos) << out;
  if (out.find("no GPU") != std::string::npos) {
    std::cout << "built with " << nvcc << "; no GPU here, so the kernels were not run (a call is KTUNE_ECUDA)\n";
  } else {
    EXPECT_NE(out.find("GPU checked, generic calls 2"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace ktune
