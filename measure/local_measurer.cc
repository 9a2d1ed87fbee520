#include "measure/local_measurer.h"

#include <algorithm>
#include <ctime>
#include <exception>
#include <map>
#include <optional>

#include "schedule_space/codegen_cpp.h"

namespace ktune {
namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

const char* kind_name(TargetKind kind) { return kind == TargetKind::kCpu ? "cpu" : "cuda"; }

// The C++ source of one candidate, or the error that stops it before the
// compiler: an invalid config, or a program the code generator refuses.
struct Candidate {
  std::optional<std::string> source;
  MeasureError error = MeasureError::kNone;
  std::string message;
};

Candidate generate(const MeasureInput& input) {
  Candidate c;
  auto reject = [&](MeasureError error, std::string message) {
    c.error = error;
    c.message = std::move(message);
    return c;
  };
  if (input.tmpl == nullptr) return reject(MeasureError::kInvalidConfig, "no template given");
  if (input.tmpl->target_kind() != input.target.kind) {
    return reject(MeasureError::kInvalidConfig,
                  "template " + input.tmpl->name() + " is for " +
                      kind_name(input.tmpl->target_kind()) + " targets, not " +
                      kind_name(input.target.kind));
  }
  if (input.target.kind != TargetKind::kCpu) {
    return reject(MeasureError::kCompileError,
                  std::string("LocalMeasurer builds for cpu targets only, not ") +
                      kind_name(input.target.kind));
  }
  ir::Program program;
  try {
    ConfigSpace space = input.tmpl->space(input.workload, input.target);
    if (auto reason = input.tmpl->check(input.workload, input.target, space, input.config)) {
      return reject(MeasureError::kInvalidConfig, *reason);
    }
    program = input.tmpl->instantiate(input.workload, input.target, space, input.config);
  } catch (const std::exception& e) {
    return reject(MeasureError::kInvalidConfig, e.what());
  }
  try {
    c.source = emit_cpp(program);
  } catch (const std::exception& e) {
    return reject(MeasureError::kCompileError, std::string("code generation failed: ") + e.what());
  }
  return c;
}

}  // namespace

LocalMeasurer::LocalMeasurer(LocalMeasurerOptions options)
    : options_(std::move(options)),
      builder_(options_.cache_dir.empty() ? default_cache_dir() : options_.cache_dir,
               options_.build_parallel),
      runner_(options_.runner_path.empty() ? RunnerProcess::default_runner_path()
                                           : options_.runner_path) {}

std::vector<MeasureResult> LocalMeasurer::measure(const std::vector<MeasureInput>& inputs,
                                                  const MeasureOptions& options) {
  std::vector<MeasureResult> results(inputs.size());
  for (MeasureResult& r : results) r.worker = options_.worker_name;

  // Candidates that reach the compiler, grouped by how they are compiled (a
  // batch normally has one target, but nothing requires it).
  using CompileKey = std::pair<std::string, std::vector<std::string>>;
  std::map<CompileKey, std::vector<size_t>> to_build;
  std::vector<std::string> sources(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    Candidate c = generate(inputs[i]);
    if (!c.source) {
      results[i].error = c.error;
      results[i].error_message = std::move(c.message);
      results[i].timestamp = unix_now();
      continue;
    }
    sources[i] = std::move(*c.source);
    const CpuTarget& cpu = inputs[i].target.cpu;
    to_build[{cpu.compiler, cpu.flags}].push_back(i);
  }

  std::vector<size_t> built;
  std::vector<std::string> artifacts(inputs.size());
  for (const auto& [key, indices] : to_build) {
    std::vector<std::string> group_sources;
    for (size_t i : indices) group_sources.push_back(std::move(sources[i]));
    std::vector<BuildResult> builds = builder_.build_all(
        group_sources, inputs[indices.front()].target.cpu, options.compile_timeout_s);
    for (size_t j = 0; j < indices.size(); ++j) {
      MeasureResult& r = results[indices[j]];
      r.build_seconds = builds[j].seconds;
      if (builds[j].error != MeasureError::kNone) {
        r.error = builds[j].error;
        r.error_message = std::move(builds[j].message);
        r.timestamp = unix_now();
      } else {
        artifacts[indices[j]] = builds[j].artifact_path;
        built.push_back(indices[j]);
      }
    }
  }

  // One at a time, in input order, so that candidates never share the CPU.
  std::sort(built.begin(), built.end());
  for (size_t i : built) {
    MeasureResult& r = results[i];
    MeasureResult run = runner_.run({inputs[i].workload.key(), artifacts[i], options, {}});
    r.costs = std::move(run.costs);
    r.error = run.error;
    r.error_message = std::move(run.error_message);
    r.run_seconds = run.run_seconds;
    r.timestamp = unix_now();
  }
  return results;
}

}  // namespace ktune
