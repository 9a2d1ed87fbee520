// The measurement path end to end, with hand-written kernels: Builder (compile,
// cache, diagnostics, timeouts) and RunnerProcess (check, timing, and that a
// candidate which crashes, hangs or computes garbage becomes an error result
// without disturbing the next one).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "measure/builder.h"
#include "measure/local_measurer.h"
#include "measure/measure.h"
#include "measure/runner.h"
#include "measure/runner_protocol.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;

const char* kWorkload = "matmul(m=8,n=8,k=8)";
const std::string kRunnerPath = KTUNE_BIN_DIR "/ktune-runner";

// A kernel for matmul(m=8,n=8,k=8) implementing the ABI of codegen_cpp.h.
// ktune_prepare packs B transposed into the workspace and ktune_run reads
// only the workspace, so a runner that skipped prepare, or handed out a
// misaligned workspace (the kernel traps), fails the check. `inner` is the
// reduction's extent (8 is correct) and `extra` is spliced into ktune_run.
std::string matmul_kernel(int inner = 8, const std::string& extra = "",
                          int abi_version = kKernelAbiVersion) {
  return R"(
#include <cstdint>
#include <cstdio>
extern "C" int ktune_abi_version(void) { return )" +
         std::to_string(abi_version) + R"(; }
extern "C" int64_t ktune_workspace_floats(void) { return 64; }
extern "C" void ktune_prepare(const float* const* in, float* ws) {
  if (reinterpret_cast<uintptr_t>(ws) % 64 != 0) __builtin_trap();
  for (int k = 0; k < 8; ++k)
    for (int j = 0; j < 8; ++j) ws[j * 8 + k] = in[1][k * 8 + j];
}
extern "C" void ktune_run(const float* const* in, float* out, float* ws) {
  )" + extra + R"(
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) {
      float s = 0;
      for (int k = 0; k < )" +
         std::to_string(inner) + R"(; ++k) s += in[0][i * 8 + k] * ws[j * 8 + k];
      out[i * 8 + j] = s;
    }
}
)";
}

class MeasureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "ktune-measure-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    cache_dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(cache_dir_); }

  // Builds source; fails the test if it does not compile.
  std::string build_ok(const std::string& source) {
    BuildResult b = builder().build(source, target_, 60);
    EXPECT_EQ(b.error, MeasureError::kNone) << b.message;
    return b.artifact_path;
  }

  RunRequest request(const std::string& artifact) {
    RunRequest r{kWorkload, artifact, {}, {}};
    r.options.repeat = 3;
    r.options.min_repeat_ms = 1;
    r.options.run_timeout_s = 10;
    return r;
  }

  Builder builder() { return Builder(cache_dir_, 2); }

  std::string cache_dir_;
  CpuTarget target_;
};

TEST(MeasureErrorTest, NamesRoundTripAndUnknownNamesAreRejected) {
  for (int e = 0; e <= static_cast<int>(MeasureError::kLast); ++e) {
    MeasureError error = static_cast<MeasureError>(e);
    EXPECT_EQ(parse_error_name(error_name(error)), error);
  }
  EXPECT_EQ(error_name(MeasureError::kWrongAnswer), "wrong_answer");
  EXPECT_THROW(parse_error_name("segfault"), Error);
}

// Found by fuzz/fuzz_runner_protocol (UBSan: 1e+300 is outside the range of
// representable values of type 'int'): an integer field of a protocol line
// that is a float out of range is a malformed line, not undefined behaviour.
TEST(RunnerProtocolTest, AnIntegerFieldOutOfRangeIsAMalformedLine) {
  RunRequest request;
  request.workload_key = "matmul(m=8,n=8,k=8)";
  request.artifact_path = "/cache/a.so";
  request.cuda = {true, "k", {8, 8, 1}, {16, 16, 1}, 0};
  const nlohmann::json good = detail::request_to_json(request);
  EXPECT_EQ(detail::request_from_json(good).cuda.block, (std::array<int64_t, 3>{16, 16, 1}));
  for (auto [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"number", 1e300}, {"repeat", -1e300}, {"number", 4294967296}, {"protocol", 2.5e10}, {"repeat", 2.5}}) {
    nlohmann::json j = good;
    j[field] = value;
    EXPECT_THROW(detail::request_from_json(j), Error) << field << " " << value;
  }
  nlohmann::json grid = good;
  grid["cuda"]["grid"] = {1e300, 1, 1};
  EXPECT_THROW(detail::request_from_json(grid), Error);
  MeasureResult r;
  const nlohmann::json reply = {{"protocol", 1e300}, {"error", "none"}};
  EXPECT_THROW(detail::result_from_json(reply, r), Error);
}

TEST(MeasureErrorTest, MeanCostIsInfiniteUnlessOk) {
  MeasureResult r;
  r.costs = {1.0, 3.0};
  EXPECT_DOUBLE_EQ(r.mean_cost(), 2.0);
  // An interrupted repeat (over twice the median) does not count: a final
  // measurement of a 0.19 ms kernel once read 0.61 ms from one 4.2 ms repeat.
  r.costs = {4.2e-3, 0.34e-3, 0.19e-3, 0.19e-3, 0.19e-3, 0.19e-3, 0.2e-3, 0.19e-3, 0.19e-3, 0.19e-3};
  EXPECT_NEAR(r.mean_cost(), (0.34e-3 + 7 * 0.19e-3 + 0.2e-3) / 9, 1e-12);
  r.costs = {1.0, 1.5, 1.9};  // slower repeats within twice the median all count
  EXPECT_DOUBLE_EQ(r.mean_cost(), 4.4 / 3);
  r.error = MeasureError::kWrongAnswer;
  EXPECT_TRUE(std::isinf(r.mean_cost()));
}

// What `ktune best` and the report show of a winner's repeats.
TEST(MeasureErrorTest, SpreadIsHalfTheP10ToP90RangeOverTheMedian) {
  MeasureResult r;
  r.costs = {1.0, 1.0};
  EXPECT_EQ(r.spread(), 0.0);  // too few repeats to say
  r.costs = {1.0, 1.1, 0.9, 1.0, 1.0, 1.05, 0.95, 1.0, 1.0, 1.0};
  EXPECT_NEAR(r.spread(), 0.075, 1e-9);  // p10 0.95, p90 1.1, median 1.0: (1.1 - 0.95) / 2
  r.costs = {2.0, 2.0, 2.0};
  EXPECT_EQ(r.spread(), 0.0);
}

TEST_F(MeasureTest, CorrectKernelIsTimedWithTheRequestedRepeats) {
  std::string artifact = build_ok(matmul_kernel());
  RunnerProcess runner(kRunnerPath);
  RunRequest r = request(artifact);
  r.options.repeat = 5;
  r.options.flush_cache = true;
  MeasureResult m = runner.run(r);
  ASSERT_TRUE(m.ok()) << error_name(m.error) << ": " << m.error_message;
  EXPECT_EQ(m.costs.size(), 5u);
  for (double c : m.costs) EXPECT_GT(c, 0);
  EXPECT_TRUE(m.error_message.empty());
  EXPECT_GT(m.run_seconds, 0);

  r.options.number = 3;
  r.options.repeat = 2;
  m = runner.run(r);
  ASSERT_TRUE(m.ok()) << m.error_message;
  EXPECT_EQ(m.costs.size(), 2u);
}

TEST_F(MeasureTest, HopelessCandidateIsCutShortAfterOneRepeat) {
  RunnerProcess runner(kRunnerPath);
  RunRequest r = request(build_ok(matmul_kernel()));
  r.options.best_so_far_s = 1e-15;
  MeasureResult m = runner.run(r);
  EXPECT_EQ(m.error, MeasureError::kNone);
  EXPECT_EQ(m.costs.size(), 1u);
  EXPECT_EQ(m.error_message.rfind("cut short", 0), 0u) << m.error_message;
}

TEST_F(MeasureTest, KernelThatSkipsPartOfTheReductionIsAWrongAnswer) {
  RunnerProcess runner(kRunnerPath);
  MeasureResult m = runner.run(request(build_ok(matmul_kernel(/*inner=*/7))));
  EXPECT_EQ(m.error, MeasureError::kWrongAnswer);
  EXPECT_TRUE(m.costs.empty());
  EXPECT_NE(m.error_message.find("output["), std::string::npos) << m.error_message;
  EXPECT_NE(m.error_message.find("expected"), std::string::npos) << m.error_message;
}

TEST_F(MeasureTest, OutputElementNeverWrittenIsAWrongAnswer) {
  RunnerProcess runner(kRunnerPath);
  // Writes every element, then "forgets" the last one by returning early.
  std::string source = matmul_kernel();
  source.replace(source.find("out[i * 8 + j] = s;"), 19,
                 "if (i * 8 + j == 63) return; out[i * 8 + j] = s;");
  MeasureResult m = runner.run(request(build_ok(source)));
  EXPECT_EQ(m.error, MeasureError::kWrongAnswer);
  EXPECT_NE(m.error_message.find("output[63] = nan"), std::string::npos) << m.error_message;
}

TEST_F(MeasureTest, CrashIsARuntimeErrorAndTheNextRunSucceeds) {
  RunnerProcess runner(kRunnerPath);
  std::string good = build_ok(matmul_kernel());
  std::string crashing = build_ok(matmul_kernel(8, "*(volatile int*)nullptr = 1;"));
  MeasureResult m = runner.run(request(crashing));
  EXPECT_EQ(m.error, MeasureError::kRuntimeError);
  EXPECT_NE(m.error_message.find("SIGSEGV"), std::string::npos) << m.error_message;
  MeasureResult next = runner.run(request(good));
  EXPECT_TRUE(next.ok()) << next.error_message;
}

TEST_F(MeasureTest, KernelThatWritesItsInputsCrashesInsteadOfCorruptingLaterChecks) {
  RunnerProcess runner(kRunnerPath);
  MeasureResult m = runner.run(
      request(build_ok(matmul_kernel(8, "const_cast<float*>(in[0])[0] = 0;"))));
  EXPECT_EQ(m.error, MeasureError::kRuntimeError) << m.error_message;
  MeasureResult next = runner.run(request(build_ok(matmul_kernel())));
  EXPECT_TRUE(next.ok()) << next.error_message;
}

TEST_F(MeasureTest, HangIsARunTimeoutAndTheNextRunSucceeds) {
  RunnerProcess runner(kRunnerPath);
  std::string good = build_ok(matmul_kernel());
  RunRequest hang = request(build_ok(matmul_kernel(8, "volatile int spin = 1; while (spin) {}")));
  hang.options.run_timeout_s = 1;
  MeasureResult m = runner.run(hang);
  EXPECT_EQ(m.error, MeasureError::kRunTimeout) << m.error_message;
  EXPECT_TRUE(m.costs.empty());
  MeasureResult next = runner.run(request(good));
  EXPECT_TRUE(next.ok()) << next.error_message;
}

TEST_F(MeasureTest, WhatAKernelPrintsDoesNotDisturbTheRunner) {
  RunnerProcess runner(kRunnerPath);
  MeasureResult m =
      runner.run(request(build_ok(matmul_kernel(8, R"(std::printf("{\"oops\n"); std::fflush(stdout);)"))));
  EXPECT_TRUE(m.ok()) << m.error_message;
}

TEST_F(MeasureTest, WrongAbiVersionIsARuntimeError) {
  RunnerProcess runner(kRunnerPath);
  MeasureResult m = runner.run(request(build_ok(matmul_kernel(8, "", 999))));
  EXPECT_EQ(m.error, MeasureError::kRuntimeError);
  EXPECT_NE(m.error_message.find("ABI version 999"), std::string::npos) << m.error_message;
}

TEST_F(MeasureTest, MissingArtifactAndBadWorkloadAreRuntimeErrors) {
  RunnerProcess runner(kRunnerPath);
  MeasureResult m = runner.run(request(cache_dir_ + "/missing.so"));
  EXPECT_EQ(m.error, MeasureError::kRuntimeError);
  EXPECT_NE(m.error_message.find("missing.so"), std::string::npos) << m.error_message;
  RunRequest bad = request(cache_dir_ + "/missing.so");
  bad.workload_key = "matmul(m=8";
  m = runner.run(bad);
  EXPECT_EQ(m.error, MeasureError::kRuntimeError);
  EXPECT_FALSE(m.error_message.empty());
}

TEST_F(MeasureTest, MissingRunnerExecutableIsARuntimeError) {
  RunnerProcess runner(cache_dir_ + "/no-such-runner");
  MeasureResult m = runner.run(request(cache_dir_ + "/missing.so"));
  EXPECT_EQ(m.error, MeasureError::kRuntimeError);
  EXPECT_NE(m.error_message.find("no-such-runner"), std::string::npos) << m.error_message;
}

TEST_F(MeasureTest, SyntaxErrorIsACompileErrorWithDiagnostics) {
  BuildResult b = builder().build("extern \"C\" int ktune_abi_version(void) { return 1 }", target_, 60);
  EXPECT_EQ(b.error, MeasureError::kCompileError);
  EXPECT_TRUE(b.artifact_path.empty());
  EXPECT_NE(b.message.find("error"), std::string::npos) << b.message;
}

TEST_F(MeasureTest, CompilerThatRunsTooLongIsKilled) {
  // Constant evaluation of ~4e10 steps: minutes for the compiler, which is
  // killed after one second.
  const std::string bomb = R"(
constexpr long spin() {
  long s = 0;
  for (long i = 0; i < 200000; ++i)
    for (long j = 0; j < 200000; ++j) s += i ^ j;
  return s;
}
static_assert(spin() != 1);
)";
  BuildResult b = builder().build(bomb, target_, 1);
  EXPECT_EQ(b.error, MeasureError::kCompileTimeout) << b.message;
  EXPECT_TRUE(b.artifact_path.empty());
}

TEST_F(MeasureTest, UnknownCompilerIsACompileError) {
  target_.compiler = "ktune-no-such-compiler";
  BuildResult b = builder().build(matmul_kernel(), target_, 60);
  EXPECT_EQ(b.error, MeasureError::kCompileError);
  EXPECT_NE(b.message.find("ktune-no-such-compiler"), std::string::npos) << b.message;
}

TEST_F(MeasureTest, SecondBuildOfTheSameSourceComesFromTheCache) {
  Builder b = builder();
  BuildResult first = b.build(matmul_kernel(), target_, 60);
  ASSERT_EQ(first.error, MeasureError::kNone) << first.message;
  EXPECT_FALSE(first.cached);
  EXPECT_TRUE(fs::exists(first.artifact_path));
  EXPECT_EQ(fs::path(first.artifact_path).parent_path(), fs::path(cache_dir_));

  // Another Builder on the same directory (another process, later) too.
  BuildResult second = builder().build(matmul_kernel(), target_, 60);
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(second.artifact_path, first.artifact_path);

  // Other flags are another artifact.
  target_.flags = {"-O1"};
  BuildResult other = b.build(matmul_kernel(), target_, 60);
  ASSERT_EQ(other.error, MeasureError::kNone) << other.message;
  EXPECT_FALSE(other.cached);
  EXPECT_NE(other.artifact_path, first.artifact_path);
}

// A kernel that includes <immintrin.h> (as generated masked loads do) is
// compiled with a precompiled header of it (parsing the header costs GCC
// about as much as a small kernel), built once in the artifact cache and
// used as it is by later builds; the kernel answers right.
TEST_F(MeasureTest, KernelsIncludingImmintrinShareOnePrecompiledHeader) {
  const std::string source =
      "#if defined(__x86_64__) || defined(__i386__)\n#include <immintrin.h>\n#endif\n" + matmul_kernel();
  const std::string artifact = build_ok(source);
  RunnerProcess runner(kRunnerPath);
  MeasureResult m = runner.run(request(artifact));
  ASSERT_TRUE(m.ok()) << error_name(m.error) << ": " << m.error_message;
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
  auto headers = [&] {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(fs::path(cache_dir_) / "pch", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".gch") found.push_back(it->path());
    }
    return found;
  };
  const std::vector<fs::path> pch = headers();
  ASSERT_EQ(pch.size(), 1u) << "no precompiled header in " << cache_dir_;
  const auto built_at = fs::last_write_time(pch[0]);
  // Another kernel, by another builder: the same header, not built again.
  const std::string other = build_ok(source + "// another kernel\n");
  EXPECT_NE(other, artifact);
  EXPECT_EQ(headers(), pch);
  EXPECT_EQ(fs::last_write_time(pch[0]), built_at);
  // A kernel without intrinsics neither needs nor gets one.
  build_ok(matmul_kernel(7));
  EXPECT_EQ(headers().size(), 1u);
  // A cache emptied under a running process: the next kernel builds, and
  // the header is built again.
  fs::remove_all(fs::path(cache_dir_) / "pch");
  build_ok(source + "// a third kernel\n");
  EXPECT_EQ(headers().size(), 1u);
#else
  GTEST_SKIP() << "precompiled headers are built for GCC on x86 only";
#endif
}

TEST_F(MeasureTest, BuildAllKeepsInputOrder) {
  std::vector<std::string> sources = {matmul_kernel(8), "this is not C++", matmul_kernel(7),
                                      matmul_kernel(8)};
  std::vector<BuildResult> results = builder().build_all(sources, target_, 60);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].error, MeasureError::kNone) << results[0].message;
  EXPECT_EQ(results[1].error, MeasureError::kCompileError);
  EXPECT_EQ(results[2].error, MeasureError::kNone) << results[2].message;
  EXPECT_EQ(results[3].artifact_path, results[0].artifact_path);
  EXPECT_NE(results[2].artifact_path, results[0].artifact_path);
  // Each result is the artifact of its own source.
  for (size_t i : {0u, 2u}) {
    BuildResult again = builder().build(sources[i], target_, 60);
    EXPECT_TRUE(again.cached);
    EXPECT_EQ(again.artifact_path, results[i].artifact_path);
  }
}

TEST(DefaultPathsTest, CacheDirAndRunnerPathFollowTheEnvironment) {
  setenv("KTUNE_CACHE_DIR", "/somewhere/cache", 1);
  EXPECT_EQ(default_cache_dir(), "/somewhere/cache");
  unsetenv("KTUNE_CACHE_DIR");
  EXPECT_FALSE(default_cache_dir().empty());

  setenv("KTUNE_RUNNER", "/somewhere/ktune-runner", 1);
  EXPECT_EQ(RunnerProcess::default_runner_path(), "/somewhere/ktune-runner");
  unsetenv("KTUNE_RUNNER");
  // The test binary lives next to the runner.
  EXPECT_EQ(fs::path(RunnerProcess::default_runner_path()), fs::path(kRunnerPath));
}

// A template whose configs are all invalid in one way or another.
class RejectingTemplate : public Template {
 public:
  std::string name() const override { return "rejecting"; }
  int version() const override { return 1; }
  OpKind op() const override { return OpKind::kMatmul; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }
  ConfigSpace space(const Workload&, const Target&) const override {
    ConfigSpace s;
    s.add_choice("mode", {0, 1});
    return s;
  }
  std::optional<std::string> check(const Workload&, const Target&, const ConfigSpace&,
                                   const Config& c) const override {
    if (c.choices.at(0) == 0) return "mode 0 is never valid";
    return std::nullopt;
  }
  ir::Program instantiate(const Workload&, const Target&, const ConfigSpace&,
                          const Config&) const override {
    throw Error("mode 1 cannot be instantiated either");
  }
};

TEST_F(MeasureTest, LocalMeasurerTurnsInvalidCandidatesIntoErrorResults) {
  LocalMeasurer measurer({cache_dir_, 2, kRunnerPath, "test-worker"});
  RejectingTemplate tmpl;
  Workload w = Workload::parse(kWorkload);
  ConfigSpace space = tmpl.space(w, Target{});
  std::vector<MeasureInput> inputs = {{w, Target{}, &tmpl, space.get(0)},
                                      {w, Target{}, &tmpl, space.get(1)},
                                      {w, Target{}, nullptr, {}}};
  std::vector<MeasureResult> results = measurer.measure(inputs, MeasureOptions{});
  ASSERT_EQ(results.size(), 3u);
  for (const MeasureResult& r : results) {
    EXPECT_EQ(r.error, MeasureError::kInvalidConfig);
    EXPECT_EQ(r.worker, "test-worker");
    EXPECT_GT(r.timestamp, 0);
  }
  EXPECT_EQ(results[0].error_message, "mode 0 is never valid");
  EXPECT_NE(results[1].error_message.find("cannot be instantiated"), std::string::npos);
}

TEST_F(MeasureTest, LocalMeasurerMeasuresTheDefaultMatmulTemplate) {
  std::vector<const Template*> templates = templates_for(OpKind::kMatmul, TargetKind::kCpu);
  ASSERT_FALSE(templates.empty());
  const Template& tmpl = *templates.front();
  Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  Target t;
  t.cpu.threads = 1;
  ConfigSpace space = tmpl.space(w, t);
  std::vector<MeasureInput> inputs;
  for (uint64_t i = 0; i < space.size() && inputs.size() < 2; ++i) {
    Config c = space.get(i);
    if (!tmpl.check(w, t, space, c)) inputs.push_back({w, t, &tmpl, c});
  }
  ASSERT_FALSE(inputs.empty());
  MeasureOptions options;
  options.repeat = 2;
  options.min_repeat_ms = 1;
  LocalMeasurer measurer({cache_dir_, 2, kRunnerPath, "local"});
  std::vector<MeasureResult> results = measurer.measure(inputs, options);
  ASSERT_EQ(results.size(), inputs.size());
  for (const MeasureResult& r : results) {
    EXPECT_TRUE(r.ok()) << error_name(r.error) << ": " << r.error_message;
    EXPECT_EQ(r.costs.size(), 2u);
    EXPECT_GT(r.build_seconds, 0);
  }
}

}  // namespace
}  // namespace ktune
