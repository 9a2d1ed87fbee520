#include "measure/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <thread>

#include "measure/verify.h"
#include "schedule_space/error.h"

namespace ktune {

namespace {

using Clock = std::chrono::steady_clock;

double time_calls(Contender& c, int calls) {
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) c.run();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Calls per sample so that a sample lasts at least min_sample_s, calibrated
// on warm calls (the first pays for cold caches and thread pools).
int calls_per_sample(Contender& c, double min_sample_s) {
  constexpr int kMaxCalls = 1 << 24;
  for (int calls = 1;; calls *= 2) {
    double t = time_calls(c, calls);
    if (t >= min_sample_s / 4 || calls >= kMaxCalls) {
      double per_call = std::max(t / calls, 1e-9);
      return static_cast<int>(std::clamp(std::ceil(min_sample_s / per_call), 1.0,
                                         static_cast<double>(kMaxCalls)));
    }
  }
}

// Linear interpolation between closest ranks of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double pos = p * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

class TunedContender : public Contender {
 public:
  TunedContender(const std::string& artifact_path, const BenchData& data, std::string transforms)
      : kernel_(artifact_path),
        inputs_(data.input_pointers),
        output_(static_cast<size_t>(data.workload.output().elements()),
                std::numeric_limits<float>::quiet_NaN()),
        transforms_(std::move(transforms)) {
    kernel_.prepare(inputs_.data());
  }
  std::string library() const override { return "ktune"; }
  std::string timed_transforms() const override { return transforms_; }
  void run() override { kernel_.run(inputs_.data(), output_.data()); }
  void read_output(float* output) override { std::copy(output_.begin(), output_.end(), output); }

 private:
  KernelLibrary kernel_;
  std::vector<const float*> inputs_;
  AlignedFloats output_;  // NaN until written: unwritten elements fail the check
  std::string transforms_;
};

}  // namespace

BenchData::BenchData(const Workload& w) : workload(w) {
  std::vector<TensorSpec> specs = w.inputs();
  for (size_t i = 0; i < specs.size(); ++i) {
    inputs.emplace_back(static_cast<size_t>(specs[i].elements()));
    fill_check_input(i, inputs.back().data(), specs[i].elements());
  }
  for (const auto& v : inputs) input_pointers.push_back(v.data());
  reference.resize(static_cast<size_t>(w.output().elements()));
  ktune::reference(w, input_pointers, reference.data());
}

std::unique_ptr<Contender> make_tuned_contender(const std::string& artifact_path,
                                                const BenchData& data,
                                                const std::string& timed_transforms) {
  return std::make_unique<TunedContender>(artifact_path, data, timed_transforms);
}

std::string describe_timed_transforms(const ir::Program& program) {
  std::ostringstream out;
  for (const ir::Buffer& b : program.workspace) {
    if (b->prepared || b->scope != ir::Scope::kGlobal) continue;
    out << (out.tellp() == 0 ? "packs " : ", ") << b->name << "[";
    for (size_t i = 0; i < b->shape.size(); ++i) out << (i ? "," : "") << b->shape[i];
    out << "]";
  }
  std::string text = out.str();
  return text.empty() ? "none" : text + " in every call";
}

const ContenderTiming* BenchResult::best_primary(const std::string& library) const {
  const ContenderTiming* best = nullptr;
  for (const ContenderTiming& t : timings) {
    if (t.library == library && t.primary && (!best || t.median_s < best->median_s)) best = &t;
  }
  return best;
}

const ContenderTiming* BenchResult::fastest_baseline() const {
  const ContenderTiming* best = nullptr;
  for (const ContenderTiming& t : timings) {
    if (t.library != "ktune" && t.primary && (!best || t.median_s < best->median_s)) best = &t;
  }
  return best;
}

BenchResult run_bench(const BenchData& data, const std::vector<Contender*>& contenders,
                      const BenchOptions& options) {
  if (options.rounds < 1 || !(options.min_sample_s >= 0)) {
    throw Error("bad bench options: rounds must be >= 1 (got " + std::to_string(options.rounds) +
                "), the minimum sample duration >= 0 s");
  }
  BenchResult result;
  const int64_t n = static_cast<int64_t>(data.reference.size());
  std::vector<float> output(data.reference.size());
  for (Contender* c : contenders) {
    std::fill(output.begin(), output.end(), std::numeric_limits<float>::quiet_NaN());
    c->run();
    c->read_output(output.data());
    if (auto wrong = compare_with_reference(data.workload, output.data(), data.reference.data(), n)) {
      result.disagreements.push_back({c->display_name(), *wrong});
    }
  }
  if (!result.agree()) return result;

  std::vector<int> calls;
  for (Contender* c : contenders) calls.push_back(calls_per_sample(*c, options.min_sample_s));
  std::vector<std::vector<double>> seconds(contenders.size());
  for (int round = 0; round < options.rounds; ++round) {
    for (size_t i = 0; i < contenders.size(); ++i) {
      if (options.pause_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(options.pause_s));
      seconds[i].push_back(time_calls(*contenders[i], calls[i]) / calls[i]);
    }
  }
  const double flops = data.workload.flops();
  for (size_t i = 0; i < contenders.size(); ++i) {
    ContenderTiming t;
    t.library = contenders[i]->library();
    t.variant = contenders[i]->variant();
    t.timed_transforms = contenders[i]->timed_transforms();
    t.primary = contenders[i]->primary();
    t.calls_per_sample = calls[i];
    t.seconds = seconds[i];
    std::vector<double> sorted = seconds[i];
    std::sort(sorted.begin(), sorted.end());
    t.median_s = percentile(sorted, 0.5);
    t.p10_s = percentile(sorted, 0.1);
    t.p90_s = percentile(sorted, 0.9);
    t.min_s = sorted.front();
    t.max_s = sorted.back();
    t.gflops = flops / t.median_s / 1e9;
    result.timings.push_back(std::move(t));
  }
  return result;
}

}  // namespace ktune
