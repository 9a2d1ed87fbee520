// The CUDA backend without a GPU: device discovery reports none cleanly;
// every GPU template's configs are checked against device limits; CUDA C is
// generated for a sample of random valid configs and compiled with NVRTC
// for sm_80 and sm_90 (skipped, saying why, where NVRTC is absent).
#include <gtest/gtest.h>

#include <random>

#include "cuda/cuda_driver.h"
#include "cuda/nvrtc.h"
#include "schedule_space/codegen_cuda.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "tests/kernel_check.h"

namespace ktune {
namespace {

const std::vector<std::string> kWorkloads = {
    "matmul(m=256,n=256,k=256)", "matmul(m=1000,n=64,k=96)", "dense(batch=1,in=512,out=1000,bias=1)",
    "dense(batch=32,in=256,out=128,bias=0)", "batch_matmul(b=8,m=64,n=64,k=32)",
    "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)", "conv2d(n=1,c=3,h=224,w=224,k=64,r=7,s=7,stride=2,pad=3)",
    "conv2d(n=1,c=256,h=14,w=14,k=512,r=1,s=1,stride=2,pad=0)",
    "depthwise_conv2d(n=1,c=144,h=56,w=56,r=3,s=3,stride=1,pad=1)",
    "depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,stride=2,pad=1)"};

std::vector<Config> random_valid(const Template& t, const Workload& w, const Target& target, const ConfigSpace& space,
                                 int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Config> out;
  for (int attempts = 0; attempts < 20000 && static_cast<int>(out.size()) < n; ++attempts) {
    Config c = space.random(rng);
    if (!t.check(w, target, space, c)) out.push_back(c);
  }
  return out;
}

// Runs run(params) on random inputs of w (then a NaN-filled output) and
// expects the output to match the reference; label names the case.
void expect_reference(const Workload& w, uint64_t seed, const std::string& label,
                      const std::function<void(std::vector<std::vector<float>>&)>& run) {
  const std::vector<std::vector<float>> inputs = testing::random_inputs(w, seed);
  const std::vector<float> want = testing::reference_output(w, inputs);
  std::vector<std::vector<float>> params = inputs;
  params.emplace_back(want.size(), NAN);
  try {
    run(params);
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": " << e.what();
    return;
  }
  EXPECT_LT(testing::max_relative_error(params.back(), want), 1e-4) << label;
}

TEST(CudaTest, DiscoveryWithoutAGpuReportsNoDeviceAndWhy) {
  std::string why;
  std::vector<Target> devices = discover_cuda_devices(&why);
  if (devices.empty()) {
    EXPECT_FALSE(why.empty());
    try {
      cuda_target("cuda:0");
      FAIL() << "cuda:0 found with no device";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
  } else {
    for (const Target& t : devices) EXPECT_EQ(t.device_key().rfind("cuda/", 0), 0u) << t.device_key();
  }
  EXPECT_EQ(detail::gpu_name_slug("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
  EXPECT_EQ(cuda_target_for_arch("sm_90").device_key(), "cuda/nvidia-h100/sm_90");
  EXPECT_THROW(cuda_target_for_arch("sm_12"), Error);
}

TEST(CudaTest, EveryWorkloadHasAGpuTemplateWithValidSeeds) {
  const Target h100 = cuda_target_for_arch("sm_90");
  for (const std::string& spec : kWorkloads) {
    const Workload w = Workload::parse(spec);
    std::vector<const Template*> ts = templates_for(w, TargetKind::kCuda);
    ASSERT_FALSE(ts.empty()) << spec;
    const ConfigSpace space = ts[0]->space(w, h100);
    EXPECT_GT(space.size(), 10u) << spec;
    std::vector<Config> seeds = ts[0]->seed_configs(w, h100, space);
    ASSERT_FALSE(seeds.empty()) << spec << " " << space.size();
    for (const Config& c : seeds) EXPECT_FALSE(ts[0]->check(w, h100, space, c)) << spec;
  }
}

TEST(CudaTest, ConfigsOverTheDeviceLimitsAreRejectedBeforeCompiling) {
  const Workload w = Workload::parse("matmul(m=1024,n=1024,k=1024)");
  const Template& t = *templates_for(w, TargetKind::kCuda).front();
  Target small = cuda_target_for_arch("sm_80");
  small.cuda.max_threads_per_block = 128;
  small.cuda.shared_bytes_per_block = 4096;
  const ConfigSpace space = t.space(w, small);
  std::mt19937_64 rng(3);
  int too_many_threads = 0, too_much_shared = 0, too_many_registers = 0, valid = 0;
  for (int i = 0; i < 3000; ++i) {
    Config c = space.random(rng);
    std::optional<std::string> why = t.check(w, small, space, c);
    if (!why) {
      ++valid;
      const CudaKernel k = emit_cuda(t.instantiate(w, small, space, c));
      EXPECT_LE(k.threads_per_block(), 128);
      EXPECT_LE(k.shared_bytes, 4096);
      continue;
    }
    too_many_threads += why->find("threads per block, the device allows 128") != std::string::npos;
    too_much_shared += why->find("bytes of shared memory, the device allows 4096") != std::string::npos;
    too_many_registers += why->find("registers per") != std::string::npos;
    EXPECT_THROW(t.instantiate(w, small, space, c), Error);
  }
  EXPECT_GT(valid, 0);
  EXPECT_GT(too_many_threads, 0);
  EXPECT_GT(too_much_shared, 0);
  EXPECT_GT(too_many_registers, 0);
}

TEST(CudaTest, TheLaunchConfigurationFollowsTheConfig) {
  const Workload w = Workload::parse("batch_matmul(b=8,m=64,n=64,k=32)");
  const Template& t = *templates_for(w, TargetKind::kCuda).front();
  const Target h100 = cuda_target_for_arch("sm_90");
  const ConfigSpace space = t.space(w, h100);
  const Config c = t.seed_configs(w, h100, space).front();
  const CudaKernel k = emit_cuda(t.instantiate(w, h100, space, c));
  const std::string text = space.describe(c);
  EXPECT_EQ(k.grid[2], 8);  // the batch
  EXPECT_EQ(64 % (k.grid[0] * k.block[0]), 0) << text;  // n = grid x threads x per-thread columns
  EXPECT_EQ(64 % (k.grid[1] * k.block[1]), 0) << text;
  EXPECT_NE(k.source.find("__syncthreads();"), std::string::npos);
  EXPECT_NE(k.source.find("__shared__"), std::string::npos);
  EXPECT_NE(k.source.find("extern \"C\" __global__"), std::string::npos);
  EXPECT_GT(k.shared_bytes, 0);
}

TEST(CudaTest, RandomValidConfigsOfEveryGpuTemplateCompileWithNvrtcForSm80AndSm90) {
  std::string why;
  const Nvrtc* nvrtc = Nvrtc::get(&why);
  if (!nvrtc) GTEST_SKIP() << why;
  int compiled = 0;
  for (const std::string arch : {"sm_80", "sm_90"}) {
    const Target target = cuda_target_for_arch(arch);
    for (const std::string& spec : kWorkloads) {
      const Workload w = Workload::parse(spec);
      for (const Template* t : templates_for(w, TargetKind::kCuda)) {
        const ConfigSpace space = t->space(w, target);
        std::vector<Config> configs = random_valid(*t, w, target, space, 3, 11);
        std::vector<Config> seeds = t->seed_configs(w, target, space);
        configs.insert(configs.end(), seeds.begin(), seeds.end());
        ASSERT_FALSE(configs.empty()) << spec;
        for (const Config& c : configs) {
          const CudaKernel k = emit_cuda(t->instantiate(w, target, space, c));
          const NvrtcResult r = nvrtc->compile(k.source, arch);
          EXPECT_TRUE(r.ok) << spec << " " << space.describe(c) << " on " << arch << ":\n" << r.log << "\n" << k.source;
          EXPECT_FALSE(r.cubin.empty());
          compiled += r.ok;
        }
      }
    }
  }
  std::cout << "compiled " << compiled << " kernels with NVRTC " << nvrtc->version() << " (" << nvrtc->path() << ")\n";
}

TEST(CudaTest, NvrtcReportsACompileErrorWithItsLog) {
  std::string why;
  const Nvrtc* nvrtc = Nvrtc::get(&why);
  if (!nvrtc) GTEST_SKIP() << why;
  const NvrtcResult r = nvrtc->compile("extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }", "sm_90");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.log.find("undefined_name"), std::string::npos) << r.log;
}

}  // namespace
}  // namespace ktune

#include "tests/gpu_emulator.h"

namespace ktune {
namespace {

// The GPU templates' programs, run on the emulator, against the reference.
TEST(CudaTest, RandomValidConfigsComputeTheRightAnswerOnTheGpuEmulator) {
  const Target target = cuda_target_for_arch("sm_90");
  for (const std::string spec :
       {"matmul(m=32,n=48,k=24)", "dense(batch=3,in=40,out=24,bias=1)", "batch_matmul(b=2,m=16,n=32,k=8)",
        "dense(batch=1,in=64,out=20,bias=0)", "conv2d(n=2,c=6,h=9,w=10,k=8,r=3,s=3,stride=1,pad=1)",
        "conv2d(n=1,c=4,h=11,w=11,k=16,r=3,s=3,stride=2,pad=0x1x1x0,dilation=1)",
        "conv2d(n=1,c=8,h=8,w=8,k=16,r=1,s=1,stride=1,pad=0)", "depthwise_conv2d(n=1,c=16,h=10,w=12,r=3,s=3,stride=1,pad=1)",
        "depthwise_conv2d(n=2,c=8,h=9,w=9,r=3,s=3,stride=2,pad=1,multiplier=2)"}) {
    const Workload w = Workload::parse(spec);
    for (const Template* t : templates_for(w, TargetKind::kCuda)) {
      const ConfigSpace space = t->space(w, target);
      std::vector<Config> configs = random_valid(*t, w, target, space, 6, 21);
      for (const Config& c : t->seed_configs(w, target, space)) configs.push_back(c);
      ASSERT_FALSE(configs.empty()) << spec;
      for (const Config& c : configs) {
        expect_reference(w, 5, spec + " " + space.describe(c), [&](std::vector<std::vector<float>>& params) {
          testing::GpuEmulator::run(t->instantiate(w, target, space, c), params);
        });
      }
    }
  }
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// The emulator itself catches what lockstep execution would hide.
TEST(CudaTest, TheEmulatorCatchesAMissingBarrier) {
  using namespace ir;
  auto swap = [](bool with_barrier) {
    Buffer in = make_buffer("in", {2}), out = make_buffer("out", {2}), s = make_buffer("S", {2}, Scope::kShared);
    const Expr t = var("t");
    Stmt body = seq({store(s, {t}, load(in, {t})), with_barrier ? barrier() : nullptr,
                     store(out, {t}, load(s, {int_imm(1) - t}))});
    Program p;
    p.name = "swap";
    p.params = {in, out};
    p.body = for_loop("t", 2, LoopKind::kThreadX, allocate(s, body));
    return p;
  };
  std::vector<std::vector<float>> params = {{1, 2}, {0, 0}};
  testing::GpuEmulator::run(swap(true), params);
  EXPECT_EQ(params[1], (std::vector<float>{2, 1}));
  EXPECT_THROW(testing::GpuEmulator::run(swap(false), params), std::runtime_error);
  EXPECT_EQ(emit_cuda(swap(true)).block[0], 2);
}

}  // namespace
}  // namespace ktune

#include "measure/cuda_measurer.h"
#include "measure/runner_protocol.h"
#include "tests/ktune_command.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

TEST(CudaTest, GpuRunRequestsRoundTripTheRunnerProtocol) {
  RunRequest r{"matmul(m=8,n=8,k=8)", "/cache/k.cubin", {}, {}};
  r.cuda.enabled = true;
  r.cuda.kernel = "ktune_matmul_cuda_tiled";
  r.cuda.grid = {4, 2, 1};
  r.cuda.block = {16, 8, 1};
  r.cuda.device = 1;
  const RunRequest back = detail::request_from_json(detail::request_to_json(r));
  EXPECT_TRUE(back.cuda.enabled);
  EXPECT_EQ(back.cuda.kernel, r.cuda.kernel);
  EXPECT_EQ(back.cuda.grid, r.cuda.grid);
  EXPECT_EQ(back.cuda.block, r.cuda.block);
  EXPECT_EQ(back.cuda.device, 1);
  RunRequest cpu{"matmul(m=8,n=8,k=8)", "/cache/k.so", {}, {}};
  EXPECT_FALSE(detail::request_from_json(detail::request_to_json(cpu)).cuda.enabled);
}

// On a GPU machine: real measurements, checked against the reference. On
// any other: every candidate is a clear runtime error and the measurer
// (and its runner) keep working.
TEST(CudaTest, TheCudaMeasurerMeasuresOnAGpuOrSaysWhyNot) {
  testing::ScratchDir dir("ktune-cuda-measurer");
  std::string why;
  std::vector<Target> gpus = discover_cuda_devices(&why);
  const Target target = gpus.empty() ? cuda_target_for_arch("sm_90") : gpus.front();
  const Workload w = Workload::parse("matmul(m=128,n=128,k=64)");
  const Template& t = *templates_for(w, TargetKind::kCuda).front();
  const ConfigSpace space = t.space(w, target);
  std::vector<MeasureInput> inputs;
  for (const Config& c : t.seed_configs(w, target, space)) inputs.push_back({w, target, &t, c});
  ASSERT_FALSE(inputs.empty());
  CudaMeasurerOptions o;
  o.cache_dir = (dir / "cache").string();
  o.runner_path = std::string(KTUNE_BIN_DIR) + "/ktune-runner";
  CudaMeasurer m(o);
  MeasureOptions mo;
  mo.repeat = 2;
  for (int round = 0; round < 2; ++round) {
    std::vector<MeasureResult> results = m.measure(inputs, mo);
    ASSERT_EQ(results.size(), inputs.size());
    for (const MeasureResult& r : results) {
      if (gpus.empty()) {
        if (r.error == MeasureError::kCompileError) {
          EXPECT_NE(r.error_message.find("NVRTC"), std::string::npos) << r.error_message;  // no toolkit either
          continue;
        }
        EXPECT_EQ(r.error, MeasureError::kRuntimeError) << r.error_message;
        EXPECT_NE(r.error_message.find("no CUDA driver"), std::string::npos) << r.error_message;
      } else {
        EXPECT_TRUE(r.ok()) << error_name(r.error) << ": " << r.error_message;
        EXPECT_GT(r.mean_cost(), 0);
      }
    }
  }
}

TEST(CudaTest, TuneOnACudaTargetWithoutAGpuIsAClearError) {
  std::string why;
  if (!discover_cuda_devices(&why).empty()) GTEST_SKIP() << "this machine has a CUDA device";
  testing::ScratchDir dir("ktune-cuda-cli");
  testing::CommandOutput out = testing::run_ktune(dir.path(), {"tune", "--op", "matmul(m=64,n=64,k=64)", "--target",
                                                               "cuda:0", "--db", (dir / "t.db").string()});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.err.find("no CUDA device"), std::string::npos) << out.err;
  testing::CommandOutput bad = testing::run_ktune(dir.path(), {"tune", "--op", "matmul(m=64,n=64,k=64)", "--target",
                                                               "tpu", "--db", (dir / "t.db").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("accepted targets are cpu and cuda:N"), std::string::npos) << bad.err;
  testing::CommandOutput bench = testing::run_ktune(dir.path(), {"bench", "--op", "matmul(m=64,n=64,k=64)", "--target",
                                                                 "cuda:0", "--db", (dir / "t.db").string()});
  EXPECT_EQ(bench.exit_code, 2);
  EXPECT_NE(bench.err.find("no CUDA device"), std::string::npos) << bench.err;
  testing::CommandOutput space = testing::run_ktune(
      dir.path(), {"space", "--op", "matmul(m=64,n=64,k=64)", "--target", "sm_90", "--config", "7", "--code"});
  EXPECT_EQ(space.exit_code, 0) << space.err;
  EXPECT_NE(space.out.find("cuda/nvidia-h100/sm_90"), std::string::npos) << space.out;
  EXPECT_NE(space.out.find("// launch: grid"), std::string::npos) << space.out;
  testing::CommandOutput worker = testing::run_ktune(dir.path(), {"worker", "--daemon", "127.0.0.1:1", "--device", "cuda:0"});
  EXPECT_EQ(worker.exit_code, 2);
  EXPECT_NE(worker.err.find("no CUDA device"), std::string::npos) << worker.err;
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// A test-only GPU template whose kernel writes far out of bounds when its
// one knob says so: a CUDA fault, which must cost only its runner process.
class FaultingCudaTemplate : public Template {
 public:
  std::string name() const override { return "test_faulting_cuda"; }
  int version() const override { return 1; }
  OpKind op() const override { return OpKind::kMatmul; }
  TargetKind target_kind() const override { return TargetKind::kCuda; }
  ConfigSpace space(const Workload&, const Target&) const override {
    ConfigSpace s;
    s.add_choice("fault", {0, 1});
    return s;
  }
  std::optional<std::string> check(const Workload&, const Target&, const ConfigSpace&, const Config&) const override {
    return std::nullopt;
  }
  ir::Program instantiate(const Workload& w, const Target&, const ConfigSpace& space, const Config& c) const override {
    using namespace ir;
    const MatmulShape& s = w.matmul();
    Buffer a = make_buffer("A", {s.m, s.k}), b = make_buffer("B", {s.k, s.n}), out = make_buffer("C", {s.m, s.n});
    const Expr i = var("i"), j = var("j"), k = var("k");
    Stmt body = seq({store(out, {i, j}, float_imm(0.0f)),
                     for_loop("k", s.k, LoopKind::kSerial, accumulate(out, {i, j}, load(a, {i, k}) * load(b, {k, j})))});
    if (space.value(c, "fault") == 1) body = store(out, {i * int_imm(int64_t{1} << 30), j}, float_imm(1.0f));
    Program p;
    p.name = "faulting";
    p.params = {a, b, out};
    p.body = for_loop("i", s.m, LoopKind::kBlockX, for_loop("j", s.n, LoopKind::kThreadX, body));
    return p;
  }
};

TEST(CudaTest, AFaultingGpuKernelCostsOnlyItsRunnerAndTheNextCandidateIsMeasured) {
  std::string why;
  std::vector<Target> gpus = discover_cuda_devices(&why);
  if (gpus.empty()) GTEST_SKIP() << "needs a CUDA device: " << why;
  testing::ScratchDir dir("ktune-cuda-fault");
  const FaultingCudaTemplate t;
  const Workload w = Workload::parse("matmul(m=64,n=64,k=32)");
  const ConfigSpace space = t.space(w, gpus[0]);
  CudaMeasurerOptions o;
  o.cache_dir = (dir / "cache").string();
  o.runner_path = std::string(KTUNE_BIN_DIR) + "/ktune-runner";
  CudaMeasurer m(o);
  std::vector<MeasureInput> inputs = {{w, gpus[0], &t, space.get(1)}, {w, gpus[0], &t, space.get(0)}};
  std::vector<MeasureResult> r = m.measure(inputs, MeasureOptions{});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].error, MeasureError::kRuntimeError) << r[0].error_message;
  EXPECT_NE(r[0].error_message.find("CUDA"), std::string::npos) << r[0].error_message;
  EXPECT_TRUE(r[1].ok()) << error_name(r[1].error) << ": " << r[1].error_message;
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// NVRTC runs in a child process, so a compile can be timed out.
TEST(CudaTest, GpuKernelsCompileInAChildProcessThatTheCompileTimeoutKills) {
  std::string why;
  if (!Nvrtc::get(&why)) GTEST_SKIP() << why;
  testing::ScratchDir dir("ktune-cuda-compile");
  const Target target = cuda_target_for_arch("sm_90");
  const Workload w = Workload::parse("matmul(m=128,n=128,k=64)");
  const Template& t = *templates_for(w, TargetKind::kCuda).front();
  const ConfigSpace space = t.space(w, target);
  CudaMeasurerOptions o;
  o.cache_dir = (dir / "cache").string();
  o.runner_path = std::string(KTUNE_BIN_DIR) + "/ktune-runner";
  CudaMeasurer m(o);
  MeasureOptions hurried;
  hurried.compile_timeout_s = 0.001;
  std::vector<MeasureResult> r = m.measure({{w, target, &t, t.seed_configs(w, target, space).front()}}, hurried);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].error, MeasureError::kCompileTimeout) << r[0].error_message;
  // With time to compile, the cubin lands in the cache (the run then needs a GPU).
  r = m.measure({{w, target, &t, t.seed_configs(w, target, space).front()}}, MeasureOptions{});
  EXPECT_NE(r[0].error, MeasureError::kCompileTimeout);
  EXPECT_NE(r[0].error, MeasureError::kCompileError) << r[0].error_message;
  int cubins = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "cache" / "cuda")) {
    cubins += e.path().extension() == ".cubin";
  }
  EXPECT_EQ(cubins, 1);
}

}  // namespace
}  // namespace ktune

#include "tests/cuda_on_cpu.h"

namespace ktune {
namespace {

// The generated CUDA C itself, compiled as C++ against a small shim and run
// with a real thread per CUDA thread and real barriers: the text the code
// generator writes computes what the IR says.
TEST(CudaTest, TheGeneratedCudaSourceComputesTheRightAnswerRunAsThreadsOnTheCpu) {
  testing::ScratchDir dir("ktune-cuda-on-cpu");
  const Target target = cuda_target_for_arch("sm_90");
  for (const std::string spec : {"matmul(m=32,n=32,k=16)", "dense(batch=2,in=24,out=16,bias=1)",
                                 "batch_matmul(b=2,m=8,n=16,k=8)",
                                 "conv2d(n=1,c=4,h=9,w=9,k=8,r=3,s=3,stride=2,pad=1x0x1x1,dilation=1)",
                                 "depthwise_conv2d(n=1,c=8,h=8,w=8,r=3,s=3,stride=1,pad=1,multiplier=2)"}) {
    const Workload w = Workload::parse(spec);
    const Template& t = *templates_for(w, TargetKind::kCuda).front();
    const ConfigSpace space = t.space(w, target);
    std::vector<Config> configs = random_valid(t, w, target, space, 2, 4);
    for (const Config& c : t.seed_configs(w, target, space)) configs.push_back(c);
    for (const Config& c : configs) {
      const ir::Program program = t.instantiate(w, target, space, c);
      if (emit_cuda(program).threads_per_block() > 256) continue;  // keep the thread count civil
      expect_reference(w, 9, spec + " " + space.describe(c), [&](std::vector<std::vector<float>>& params) {
        testing::run_cuda_on_cpu(emit_cuda(program), program.params.size(), params, dir.path());
      });
    }
  }
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// The GPU templates' knobs, each set on purpose: float4/float2 loads (into
// a shared tile that is contiguous, and into a transposed one lane by lane;
// a convolution's filter rows), the GEMM reduction split across threads and
// summed through shared memory, virtual threads, and both kinds of unrolling. The source shows each, and
// it computes the right answer on the emulator, as threads on the CPU and
// (where NVRTC is) compiles for sm_90.
TEST(CudaTest, EachGpuTemplateKnobShowsInTheSourceAndComputesTheRightAnswer) {
  testing::ScratchDir dir("ktune-cuda-knobs");
  const Target target = cuda_target_for_arch("sm_90");
  struct Case {
    std::string spec, config;
    std::vector<std::string> in_source, not_in_source;
  };
  const std::vector<Case> cases = {
      {"matmul(m=32,n=32,k=32)",
       "tile_m=[2,2,4,2] tile_n=[1,2,8,2] tile_k=[2,2,8] vec=4 unroll_k=1 auto_unroll_max_step=1500 unroll_explicit=1",
       {"*reinterpret_cast<float4*>(&As[", "Rs[", "(int)threadIdx.z"}, {"for (int ki"}},
      {"dense(batch=1,in=64,out=32,bias=1)",
       "tile_m=[1,1,1,1] tile_n=[1,1,32,1] tile_k=[2,8,4] vec=4 unroll_k=0 auto_unroll_max_step=0 unroll_explicit=0",
       {"const float4 kt_v = *reinterpret_cast<const float4*>(&W[", "Bs[", "kt_v.w", "Rs["}, {}},
      {"batch_matmul(b=2,m=8,n=16,k=8)",
       "tile_m=[1,2,4,1] tile_n=[1,2,4,2] tile_k=[1,1,8] vec=2 unroll_k=0 auto_unroll_max_step=512 unroll_explicit=0",
       {"float2", "#pragma unroll"}, {"Rs[", "threadIdx.z"}},
      {"conv2d(n=1,c=8,h=10,w=10,k=16,r=3,s=3,stride=1,pad=1)",
       "tile_k=[1,2,4,2] tile_p=[1,5,2] tile_q=[1,1,5,2] tile_c=[2,4] vec=4 unroll=1 auto_unroll_max_step=0 "
       "unroll_explicit=0",
       {"*reinterpret_cast<float4*>(&Ws[", "(int)threadIdx.z"}, {}},
  };
  std::string why;
  const Nvrtc* nvrtc = Nvrtc::get(&why);
  for (const Case& k : cases) {
    const Workload w = Workload::parse(k.spec);
    const Template& t = *templates_for(w, TargetKind::kCuda).front();
    const ConfigSpace space = t.space(w, target);
    const Config c = space.parse(k.config);
    ASSERT_EQ(t.check(w, target, space, c), std::nullopt) << k.config;
    const ir::Program program = t.instantiate(w, target, space, c);
    const CudaKernel kernel = emit_cuda(program);
    for (const std::string& text : k.in_source) EXPECT_NE(kernel.source.find(text), std::string::npos) << text << "\n" << kernel.source;
    for (const std::string& text : k.not_in_source) EXPECT_EQ(kernel.source.find(text), std::string::npos) << text << "\n" << kernel.source;
    const std::string label = k.spec + " " + k.config;
    expect_reference(w, 3, label, [&](std::vector<std::vector<float>>& params) {
      testing::GpuEmulator::run(program, params);
    });
    expect_reference(w, 4, label, [&](std::vector<std::vector<float>>& params) {
      testing::run_cuda_on_cpu(kernel, program.params.size(), params, dir.path());
    });
    if (nvrtc) {
      const NvrtcResult r = nvrtc->compile(kernel.source, "sm_90");
      EXPECT_TRUE(r.ok) << label << ":\n" << r.log;
    }
  }
}

// The code generator proves a vector access contiguous and aligned before
// it writes one, and says which access it could not.
TEST(CudaTest, AVectorLoadThatIsNotAlignedIsRefused) {
  using namespace ir;
  auto copy = [](int64_t offset) {
    Buffer in = make_buffer("in", {12}), out = make_buffer("out", {12});
    const Expr t = var("t"), v = var("v");
    Program p;
    p.name = "copy";
    p.params = {in, out};
    const Expr at = t * int_imm(4) + v + int_imm(offset);
    p.body = for_loop("t", 2, LoopKind::kThreadX, for_loop("v", 4, LoopKind::kVectorized, store(out, {at}, load(in, {at}))));
    return p;
  };
  EXPECT_NE(emit_cuda(copy(4)).source.find("float4"), std::string::npos);
  try {
    emit_cuda(copy(1));
    ADD_FAILURE() << "a misaligned vector load was emitted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("read of in is not contiguous and aligned to 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// The IR's integer division and modulo floor; below zero C's do not. The
// generated CUDA floors too (a helper where it cannot prove both sides
// non-negative), on the emulator, as threads on the CPU and under NVRTC.
TEST(CudaTest, IntegerDivisionBelowZeroFloorsAsInTheIr) {
  using namespace ir;
  Buffer in = make_buffer("in", {4}), out = make_buffer("out", {6});
  const Expr t = var("t");
  Program p;
  p.name = "floors";
  p.params = {in, out};
  p.body = for_loop("t", 6, LoopKind::kThreadX,
                    store(out, {t}, load(in, {floormod(t - int_imm(2), int_imm(3))}) +
                                        load(in, {floordiv(t - int_imm(5), int_imm(2)) + int_imm(3)})));
  // t - 2 mod 3 for t = 0..5: 1 2 0 1 2 0; (t - 5) div 2 + 3: 0 1 1 2 2 3
  // (truncating division would give 1 1 2 2 3 3).
  const std::vector<float> want = {10 + 0, 20 + 10, 0 + 10, 10 + 20, 20 + 20, 0 + 30};
  std::vector<std::vector<float>> params = {{0, 10, 20, 30}, std::vector<float>(6, NAN)};
  testing::GpuEmulator::run(p, params);
  EXPECT_EQ(params[1], want);
  const CudaKernel k = emit_cuda(p);
  EXPECT_NE(k.source.find("kt_floordiv("), std::string::npos) << k.source;
  testing::ScratchDir dir("ktune-cuda-floor");
  params[1].assign(6, NAN);
  testing::run_cuda_on_cpu(k, p.params.size(), params, dir.path());
  EXPECT_EQ(params[1], want);
  std::string why;
  if (const Nvrtc* nvrtc = Nvrtc::get(&why)) {
    const NvrtcResult r = nvrtc->compile(k.source, "sm_90");
    EXPECT_TRUE(r.ok) << r.log;
  }
  // Non-negative indices keep C's operators.
  Program q = p;
  q.body = for_loop("t", 6, LoopKind::kThreadX,
                    store(out, {t}, load(in, {floormod(t, int_imm(4))}) + load(in, {floordiv(t, int_imm(2))})));
  EXPECT_EQ(emit_cuda(q).source.find("kt_floor"), std::string::npos);
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// An offset into a tensor past 2^31 elements is computed in 64 bits from
// its first product on (a cast of the finished 32-bit sum would come too
// late); smaller tensors keep 32-bit offsets.
TEST(CudaTest, OffsetsIntoTensorsPast2To31ElementsAre64BitThroughout) {
  using namespace ir;
  Buffer big = make_buffer("big", {3, int64_t{1} << 30}), small = make_buffer("small", {3, 4});
  const Expr b = var("b"), t = var("t");
  Program p;
  p.name = "wide";
  p.params = {small, big};
  p.body = for_loop("b", 3, LoopKind::kBlockX,
                    for_loop("t", 4, LoopKind::kThreadX, store(big, {b, t * int_imm(1000)}, load(small, {b, t}))));
  const CudaKernel k = emit_cuda(p);
  EXPECT_NE(k.source.find("big[((long long)(int)blockIdx.x) * 1073741824LL + ((long long)(int)threadIdx.x * 1000LL)]"),
            std::string::npos)
      << k.source;
  EXPECT_NE(k.source.find("small[((int)blockIdx.x) * 4 + (int)threadIdx.x]"), std::string::npos) << k.source;
  std::string why;
  if (const Nvrtc* nvrtc = Nvrtc::get(&why)) {
    const NvrtcResult r = nvrtc->compile(k.source, "sm_90");
    EXPECT_TRUE(r.ok) << r.log;
  }
}

}  // namespace
}  // namespace ktune
