// `ktune export --format cpp` end to end: real tuning records, the exported
// tree configured and built by CMake as a separate project (a fresh
// directory holding only the exported tree and a tiny user program), and
// every exported kernel, the nearest-config and default kernels and the
// generic fallback checked against a reference on random inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "db/database.h"
#include "db/stored_device.h"
#include "export/cpp_export.h"
#include "schedule_space/error.h"
#include "tests/ktune_command.h"
#include "tests/user_project.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;

// The user's program: every case against its own naive reference.
constexpr const char* kUserProgram = R"USER(#include <ktune_kernels.h>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

static std::mt19937 rng(7);
static std::vector<float> rnd(size_t n) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}
static int failures = 0;
static void check(const char* what, int kind, const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / (1 + std::fabs(want[i])));
  const bool ok = worst < 1e-4;
  failures += !ok;
  std::printf("%s %s kind=%d err=%.2g\n", ok ? "ok" : "FAIL", what, kind, worst);
}
static void matmul(int64_t m, int64_t n, int64_t k) {
  auto a = rnd(m * k), b = rnd(k * n);
  std::vector<float> want(m * n, 0), got(m * n, NAN), planned(m * n, NAN);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) want[i * n + j] += a[i * k + p] * b[p * n + j];
  ktune_matmul_shape s = {m, n, k};
  if (ktune_matmul_f32(&s, a.data(), b.data(), got.data()) != KTUNE_OK) failures++;
  ktune_plan* plan = ktune_plan_matmul(&s, b.data());
  ktune_plan_run(plan, a.data(), planned.data());
  char what[64];
  std::snprintf(what, sizeof what, "matmul(%ld,%ld,%ld)", (long)m, (long)n, (long)k);
  check(what, ktune_matmul_kind(&s), got, want);
  check(what, ktune_plan_kind(plan), planned, want);
  ktune_plan_free(plan);
}
static void dense(int64_t batch, int64_t in, int64_t out) {
  auto x = rnd(batch * in), w = rnd(out * in), bias = rnd(out);
  std::vector<float> want(batch * out), got(batch * out, NAN);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias[o];
      for (int64_t i = 0; i < in; ++i) acc += x[b * in + i] * w[o * in + i];
      want[b * out + o] = acc;
    }
  ktune_dense_shape s = {batch, in, out, 1};
  if (ktune_dense_f32(&s, x.data(), w.data(), bias.data(), got.data()) != KTUNE_OK) failures++;
  check("dense", ktune_dense_kind(&s), got, want);
}
static void conv(int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t pad, bool depthwise) {
  const int64_t oh = h + 2 * pad - r + 1, ow = w + 2 * pad - r + 1, kk = depthwise ? c : k;
  auto data = rnd(c * h * w), weight = rnd(kk * (depthwise ? 1 : c) * r * r);
  std::vector<float> want(kk * oh * ow, 0), got(kk * oh * ow, NAN), planned(kk * oh * ow, NAN);
  for (int64_t o = 0; o < kk; ++o)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        double acc = 0;
        for (int64_t ci = depthwise ? o : 0; ci < (depthwise ? o + 1 : c); ++ci)
          for (int64_t i = 0; i < r; ++i)
            for (int64_t j = 0; j < r; ++j) {
              int64_t iy = y - pad + i, ix = x - pad + j;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              float wv = depthwise ? weight[(o * r + i) * r + j] : weight[((o * c + ci) * r + i) * r + j];
              acc += data[(ci * h + iy) * w + ix] * wv;
            }
        want[(o * oh + y) * ow + x] = acc;
      }
  int kind;
  ktune_plan* plan;
  if (depthwise) {
    ktune_depthwise_conv2d_shape s = {1, c, h, w, 1, r, r, 1, 1, pad, pad, pad, pad, 1, 1};
    if (ktune_depthwise_conv2d_f32(&s, data.data(), weight.data(), got.data()) != KTUNE_OK) failures++;
    kind = ktune_depthwise_conv2d_kind(&s);
    plan = ktune_plan_depthwise_conv2d(&s, weight.data());
  } else {
    ktune_conv2d_shape s = {1, c, h, w, k, r, r, 1, 1, pad, pad, pad, pad, 1, 1};
    if (ktune_conv2d_f32(&s, data.data(), weight.data(), got.data()) != KTUNE_OK) failures++;
    kind = ktune_conv2d_kind(&s);
    plan = ktune_plan_conv2d(&s, weight.data());
  }
  ktune_plan_run(plan, data.data(), planned.data());
  check(depthwise ? "depthwise" : "conv2d", kind, got, want);
  check(depthwise ? "depthwise plan" : "conv2d plan", ktune_plan_kind(plan), planned, want);
  ktune_plan_free(plan);
}
int main() {
  std::printf("device %s, %d kernels\n", ktune_kernels_device_key(), ktune_kernels_count());
  ktune_kernel_desc d;
  if (ktune_kernel_describe(0, &d) != KTUNE_OK || d.op != 0 || d.shape[0] != 48 || d.kind != KTUNE_KERNEL_TUNED ||
      !(d.tuned_seconds > 0) || ktune_kernel_describe(99, &d) != KTUNE_EINVAL) {
    std::printf("FAIL describe\n");
    failures++;
  }
  matmul(48, 40, 32);       // tuned
  dense(2, 64, 24);         // tuned
  conv(8, 12, 12, 8, 3, 1, false);  // tuned
  conv(8, 12, 12, 0, 3, 1, true);   // tuned
  matmul(50, 40, 32);       // exported with the nearest config
  conv(8, 14, 14, 8, 3, 1, false);  // exported with the nearest config
  ktune_reset_counters();
  matmul(7, 5, 3);          // never exported: generic
  conv(3, 9, 9, 4, 3, 0, false);    // generic
  ktune_set_num_threads(1);
  matmul(48, 40, 32);       // tuned, one thread
  std::printf("generic calls %ld\n", (long)ktune_generic_calls());
  return failures == 0 && ktune_generic_calls() == 4 ? 0 : 1;
}
)USER";

class ExportCppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string op : {"matmul(m=48,n=40,k=32)", "dense(batch=2,in=64,out=24,bias=1)",
                                 "conv2d(n=1,c=8,h=12,w=12,k=8,r=3,s=3,pad=1)",
                                 "depthwise_conv2d(n=1,c=8,h=12,w=12,r=3,s=3,pad=1)"}) {
      testing::CommandOutput out = testing::run_ktune(
          dir_.path(), {"tune", "--op", op, "--trials", "4", "--threads", "1", "--db", db_path(), "--final-top", "1",
                        "--repeat", "1", "--tuner", "random"});
      ASSERT_EQ(out.exit_code, 0) << out.err;
    }
  }
  std::string db_path() const { return (dir_ / "t.db").string(); }
  // A fresh CMake project using the exported tree; the program's exit code.
  int build_and_run(const fs::path& kernels, std::string* log_text) {
    return testing::build_and_run_user_project(dir_.path(), kernels, kUserProgram, {}, log_text);
  }

  testing::ScratchDir dir_{"ktune-export-cpp"};
};

TEST_F(ExportCppTest, TheExportedLibraryBuildsAloneAndEveryKernelAndFallbackIsCorrect) {
  auto db = Database::open(db_path());
  CppExportOptions options;
  options.out_dir = (dir_ / "kernels").string();
  for (const std::string spec : {"matmul(m=48,n=40,k=32)", "dense(batch=2,in=64,out=24,bias=1)",
                                 "conv2d(n=1,c=8,h=12,w=12,k=8,r=3,s=3,pad=1)",
                                 "depthwise_conv2d(n=1,c=8,h=12,w=12,r=3,s=3,pad=1)", "matmul(m=50,n=40,k=32)",
                                 "conv2d(n=1,c=8,h=14,w=14,k=8,r=3,s=3,pad=1)"}) {
    options.workloads.push_back(Workload::parse(spec));
  }
  CppExportSummary s = export_cpp_library(*db, options);
  ASSERT_EQ(s.kernels.size(), 6u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s.kernels[i].source, "tuned") << s.kernels[i].workload_key;
    EXPECT_GT(s.kernels[i].measured_s, 0);
  }
  EXPECT_NE(s.kernels[4].source, "tuned");  // nearest (or the default where the config does not fit)
  EXPECT_NE(s.kernels[5].source, "tuned");
  if (s.kernels[4].source == "nearest") {
    EXPECT_EQ(s.kernels[4].from, Workload::parse("matmul(m=48,n=40,k=32)").key());
  }
  const std::string readme = testing::read_file(dir_ / "kernels" / "README.md");
  EXPECT_NE(readme.find(s.device_key), std::string::npos);
  EXPECT_NE(readme.find("GFLOP/s"), std::string::npos);
  EXPECT_NE(readme.find("-march="), std::string::npos);
  // Only the exported tree: no ktune header or library is visible to the user project.
  std::string log;
  const int rc = build_and_run(dir_ / "kernels", &log);
  EXPECT_EQ(rc, 0) << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
  EXPECT_NE(log.find("generic calls 4"), std::string::npos) << log;
  EXPECT_NE(log.find("6 kernels"), std::string::npos) << log;
}

TEST_F(ExportCppTest, AnExportForAnotherInstructionSetStopsAtConfigureWithAClearMessage) {
  // The same records, claimed by an ARM device: this x86 machine must refuse to build them.
  auto db = Database::open(db_path());
  std::vector<Record> records;
  const std::string here = db->device_keys().at(0);
  for (const std::string& w : db->workload_keys(here)) {
    std::optional<Record> r = db->best(w, here);
    ASSERT_TRUE(r.has_value());
    r->device_key = "cpu/arm-test/neon/1t";
    records.push_back(*r);
  }
  db->insert(records);
  Target arm;
  arm.cpu.model = "arm-test";
  arm.cpu.isa = "neon";
  arm.cpu.vector_lanes = 4;
  DeviceDescription arm_device;
  arm_device.target = arm;
  store_device(*db, arm_device);
  CppExportOptions options;
  options.out_dir = (dir_ / "arm").string();
  options.device_key = "cpu/arm-test/neon/1t";
  CppExportSummary s = export_cpp_library(*db, options);
  EXPECT_EQ(s.kernels.size(), 4u);  // (4-lane spaces: the 16-lane configs become nearest or default ones)
  std::string log;
  EXPECT_NE(build_and_run(dir_ / "arm", &log), 0);
  EXPECT_NE(log.find("these kernels were tuned for cpu/arm-test/neon/1t"), std::string::npos) << log;
  EXPECT_NE(log.find("AArch64"), std::string::npos) << log;
}

TEST_F(ExportCppTest, ClearErrorsForAnUnknownDeviceOrAnEmptyDatabase) {
  auto db = Database::open(db_path());
  CppExportOptions options;
  options.out_dir = (dir_ / "x").string();
  options.device_key = "cpu/none/avx2/1t";
  try {
    export_cpp_library(*db, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no records for device key cpu/none/avx2/1t"), std::string::npos) << e.what();
  }
  auto empty = Database::open((dir_ / "empty.db").string());
  options.device_key.clear();
  EXPECT_THROW(export_cpp_library(*empty, options), Error);
}

}  // namespace
}  // namespace ktune
