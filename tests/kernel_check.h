// Test support for generated kernels: compile and run a Program in-process,
// and check random configs of a template against the reference.
//
//   - KernelLibrary / run_program: emit_cpp + the system compiler +
//     ktune::KernelLibrary,
//     for codegen tests on hand-built programs (no runner process needed);
//   - sample_valid_configs / expect_configs_correct: the template tests'
//     common loop — a fixed-seed sample of valid configs of a template for a
//     workload, each measured by LocalMeasurer with the reference check on.
//     expect_configs_correct needs ktune_measure linked.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "measure/kernel_library.h"
#include "tests/run_command.h"
#include "measure/local_measurer.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"
#include "schedule_space/ir.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune::testing {

// This machine as an AVX2 target (8-lane vectors, 16 registers), for tests
// whose hand-picked configs are written for AVX2's spaces: an AVX-512
// machine runs that code too. nullopt where the machine has neither (the
// test then skips, saying why).
inline std::optional<Target> avx2_machine_target(int threads) {
  Target t = detect_cpu_target(threads);
  if (t.cpu.isa != "avx2" && t.cpu.isa != "avx512") return std::nullopt;
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  return t;
}

// A generated kernel compiled with the system compiler (with -Werror, so
// generated code stays warning-free) and loaded in-process with
// ktune::KernelLibrary. Throws ktune::Error with the compiler's output if it
// does not build. `march` is the -march= value (another ISA level than the
// host's to check the code paths the generated code selects by ISA).
class KernelLibrary {
 public:
  explicit KernelLibrary(const std::string& source, const std::string& march = "native") {
    dir_ = std::filesystem::temp_directory_path() /
           ("ktune-kernel-check-" + std::to_string(getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    const std::string src = (dir_ / "kernel.cc").string(), so = (dir_ / "kernel.so").string(),
                      log = (dir_ / "compile.log").string();
    std::ofstream(src) << source;
    const char* cxx = std::getenv("CXX");
    std::vector<std::string> args = {cxx && *cxx ? cxx : "c++", "-std=c++17", "-O2", "-march=" + march,
                                     "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC",
                                     "-Wall", "-Werror", src, "-o", so};
    const int rc = run_command(args, {}, log);
    if (rc == 127) throw Error("kernel_check: cannot start the compiler " + args[0]);
    if (rc != 0) {
      std::ifstream in(log);
      std::stringstream diag;
      diag << in.rdbuf();
      throw Error("kernel_check: the generated kernel does not compile:\n" + diag.str() +
                  "\n--- source ---\n" + source);
    }
    loaded_ = std::make_unique<ktune::KernelLibrary>(so);
  }
  ~KernelLibrary() {
    loaded_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  KernelLibrary(const KernelLibrary&) = delete;
  KernelLibrary& operator=(const KernelLibrary&) = delete;

  int abi_version() const { return loaded_->abi_version(); }
  int64_t workspace_floats() const { return loaded_->workspace_floats(); }
  ktune::KernelLibrary& loaded() { return *loaded_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path dir_;
  std::unique_ptr<ktune::KernelLibrary> loaded_;
};

// Runs a program on the given inputs (one vector per input param, in order)
// and returns its output. Workspace and output start as NaN, so a kernel
// that reads what it never wrote shows up in the result.
inline std::vector<float> run_program(const ir::Program& program,
                                      const std::vector<std::vector<float>>& inputs) {
  KernelLibrary lib(emit_cpp(program));
  std::vector<const float*> in;
  for (const auto& v : inputs) in.push_back(v.data());
  std::vector<float> out(static_cast<size_t>(program.params.back()->elements()), std::nanf(""));
  lib.loaded().prepare(in.data());
  lib.loaded().run(in.data(), out.data());
  return out;
}

// Random inputs in [-1, 1] for a workload, fixed seed.
inline std::vector<std::vector<float>> random_inputs(const Workload& w, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<std::vector<float>> inputs;
  for (const TensorSpec& t : w.inputs()) {
    std::vector<float> v(static_cast<size_t>(t.elements()));
    for (float& x : v) x = dist(rng);
    inputs.push_back(std::move(v));
  }
  return inputs;
}

// Largest |got - want| / (1 + |want|) over the output; +inf for a NaN.
inline double max_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double e = std::fabs(double(got[i]) - double(want[i])) / (1.0 + std::fabs(double(want[i])));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

// The reference output for inputs.
inline std::vector<float> reference_output(const Workload& w,
                                           const std::vector<std::vector<float>>& inputs) {
  std::vector<const float*> in;
  for (const auto& v : inputs) in.push_back(v.data());
  std::vector<float> out(static_cast<size_t>(w.output().elements()));
  reference(w, in, out.data());
  return out;
}

// Up to `count` distinct configs of the space that tmpl.check accepts, drawn
// at random with a fixed seed (deterministic across runs).
inline std::vector<Config> sample_valid_configs(const Template& tmpl, const Workload& w,
                                                const Target& t, const ConfigSpace& space,
                                                size_t count, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<Config> configs;
  std::set<uint64_t> seen;
  for (int attempt = 0; attempt < 20000 && configs.size() < count; ++attempt) {
    Config c = space.random(rng);
    if (!seen.insert(c.index).second) continue;
    if (!tmpl.check(w, t, space, c)) configs.push_back(c);
  }
  return configs;
}

// Measures each config with LocalMeasurer and the reference check on, and
// expects every one to be correct, naming the config of any failure.
inline void expect_correct(const Template& tmpl, const Workload& w, const Target& t,
                           const ConfigSpace& space, const std::vector<Config>& configs) {
  std::vector<MeasureInput> inputs;
  for (const Config& c : configs) inputs.push_back({w, t, &tmpl, c});
  MeasureOptions options;
  options.check = true;
  options.repeat = 1;
  options.number = 1;
  // A cache of its own: reruns of the tests reuse their builds without
  // touching the user's artifact cache.
  LocalMeasurerOptions measurer_options;
  measurer_options.cache_dir = (std::filesystem::temp_directory_path() /
                                ("ktune-test-cache-" + std::to_string(getuid())))
                                   .string();
  LocalMeasurer measurer(measurer_options);
  const std::vector<MeasureResult> results = measurer.measure(inputs, options);
  ASSERT_EQ(results.size(), configs.size());
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].error, MeasureError::kNone)
        << "config " << space.describe(configs[i]) << " (index " << configs[i].index
        << "): " << error_name(results[i].error) << ": " << results[i].error_message;
  }
}

// Measures `count` random valid configs of tmpl on workload spec with the
// reference check and expects every one to be correct, naming the config of
// any failure. LocalMeasurer builds them in parallel (and caches them).
inline void expect_configs_correct(const Template& tmpl, const std::string& spec, const Target& t,
                                   size_t count, uint64_t seed = 1) {
  SCOPED_TRACE(tmpl.name() + " on " + spec);
  const Workload w = Workload::parse(spec);
  const ConfigSpace space = tmpl.space(w, t);
  const std::vector<Config> configs = sample_valid_configs(tmpl, w, t, space, count, seed);
  ASSERT_FALSE(configs.empty()) << "no valid config found in a space of " << space.size();
  expect_correct(tmpl, w, t, space, configs);
}

// The same for hand-picked configs, written as ConfigSpace::describe does;
// each must be valid.
inline void expect_configs_correct(const Template& tmpl, const std::string& spec, const Target& t,
                                   const std::vector<std::string>& described) {
  SCOPED_TRACE(tmpl.name() + " on " + spec);
  const Workload w = Workload::parse(spec);
  const ConfigSpace space = tmpl.space(w, t);
  std::vector<Config> configs;
  for (const std::string& d : described) {
    configs.push_back(space.parse(d));
    const auto why = tmpl.check(w, t, space, configs.back());
    ASSERT_FALSE(why.has_value()) << d << ": " << *why;
  }
  expect_correct(tmpl, w, t, space, configs);
}

}  // namespace ktune::testing
