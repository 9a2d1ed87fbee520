// ktune-runner: loads one built kernel at a time, checks it against the
// reference implementation and times it. Started and fed by RunnerProcess;
// the protocol is in runner_protocol.h.
//
// This process is the sandbox: a candidate may crash it, hang it or write
// anywhere in it. The parent then kills it and starts a fresh one, so nothing
// here needs to survive a bad candidate; but everything a good candidate
// leaves behind (inputs, reference outputs) is kept for the next one.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <list>
#include <memory>
#include <optional>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "measure/kernel_library.h"
#include "cuda/cuda_run.h"
#include "cuda/nvrtc.h"
#include "measure/runner_protocol.h"
#include "measure/verify.h"
#include "schedule_space/error.h"
#include "schedule_space/workload.h"

namespace ktune {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_number(double v) {
  std::ostringstream s;
  s.precision(7);
  s << v;
  return s.str();
}

// Page-aligned (hence 64-byte aligned) floats from mmap. Inputs are made
// read-only once filled: they are shared by every candidate of a workload,
// and a kernel that writes its inputs must crash (a runtime error naming the
// culprit) rather than silently corrupt the check of the candidates after it.
class FloatBuffer {
 public:
  explicit FloatBuffer(int64_t floats) : floats_(floats) {
    bytes_ = std::max<size_t>(1, static_cast<size_t>(floats) * sizeof(float));
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      throw Error("cannot allocate " + std::to_string(bytes_) + " bytes: " + strerror(errno));
    }
    data_ = static_cast<float*>(p);
  }
  ~FloatBuffer() { munmap(data_, bytes_); }
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return floats_; }
  size_t bytes() const { return bytes_; }
  void make_read_only() { mprotect(data_, bytes_, PROT_READ); }

 private:
  float* data_ = nullptr;
  int64_t floats_;
  size_t bytes_;
};

// A workload's inputs (deterministic uniform values in [-1, 1]) and its
// reference output, computed the first time a check needs it.
struct WorkloadData {
  Workload workload;
  std::vector<std::unique_ptr<FloatBuffer>> inputs;
  std::vector<const float*> input_pointers;
  int64_t output_elements = 0;
  std::unique_ptr<FloatBuffer> reference_output;

  const FloatBuffer& reference() {
    if (!reference_output) {
      reference_output = std::make_unique<FloatBuffer>(output_elements);
      ktune::reference(workload, input_pointers, reference_output->data());
      reference_output->make_read_only();
    }
    return *reference_output;
  }

  explicit WorkloadData(const Workload& w) : workload(w) {
    std::vector<TensorSpec> specs = w.inputs();
    for (size_t i = 0; i < specs.size(); ++i) {
      auto buffer = std::make_unique<FloatBuffer>(specs[i].elements());
      fill_check_input(i, buffer->data(), buffer->size());
      buffer->make_read_only();
      input_pointers.push_back(buffer->data());
      inputs.push_back(std::move(buffer));
    }
    output_elements = w.output().elements();
  }

  size_t bytes() const {
    size_t total = reference_output ? reference_output->bytes() : 0;
    for (const auto& b : inputs) total += b->bytes();
    return total;
  }
};

// The reference can be slow (it is the naive loop nest, in double), and a
// tuning batch measures many candidates of one workload: keep the most
// recently used workloads, within a memory bound.
class WorkloadCache {
 public:
  WorkloadData& get(const std::string& key) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->key == key) {
        entries_.splice(entries_.begin(), entries_, it);
        return *entries_.front().data;
      }
    }
    entries_.push_front({key, std::make_unique<WorkloadData>(Workload::parse(key))});
    size_t total = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
      size_t bytes = it->data->bytes();
      if (it != entries_.begin() && total + bytes > kMaxBytes) {
        it = entries_.erase(it);
      } else {
        total += bytes;
        ++it;
      }
    }
    return *entries_.front().data;
  }

 private:
  static constexpr size_t kMaxBytes = size_t{1} << 30;
  struct Entry {
    std::string key;  // as requested
    std::unique_ptr<WorkloadData> data;
  };
  std::list<Entry> entries_;  // most recently used first
};

// Evicts the caches by writing a buffer larger than the last-level cache.
class CacheFlusher {
 public:
  void flush() {
    if (buffer_.empty()) buffer_.assign(flush_bytes() / sizeof(int64_t), 0);
    for (size_t i = 0; i < buffer_.size(); i += 8) buffer_[i] += 1;  // one write per 64-byte line
    sink_ = buffer_[buffer_.size() / 2];
  }

 private:
  static size_t flush_bytes() {
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
    size_t bytes = llc > 0 ? 2 * static_cast<size_t>(llc) : 0;
    return std::clamp<size_t>(bytes, size_t{64} << 20, size_t{1} << 30);
  }
  std::vector<int64_t> buffer_;
  volatile int64_t sink_ = 0;
};

struct Measurement {
  MeasureResult result;
  int number = 0;
};

class Runner {
 public:
  Measurement measure(const RunRequest& request, const std::function<void()>& started) {
    Measurement m;
    const MeasureOptions& o = request.options;
    if (o.repeat < 1 || o.number < 0 || !(o.min_repeat_ms >= 0)) {
      throw Error("bad run options: repeat must be >= 1 (got " + std::to_string(o.repeat) +
                  "), number >= 0 (got " + std::to_string(o.number) +
                  "), min_repeat_ms >= 0 (got " + format_number(o.min_repeat_ms) + ")");
    }
    WorkloadData& data = workloads_.get(request.workload_key);
    if (o.check) data.reference();
    started();
    if (request.cuda.enabled) return measure_cuda(request, data);

    KernelLibrary kernel(request.artifact_path);
    FloatBuffer output(data.output_elements);
    const float* const* inputs = data.input_pointers.data();
    kernel.prepare(inputs);

    if (o.check) {
      std::fill_n(output.data(), output.size(), std::numeric_limits<float>::quiet_NaN());
      kernel.run(inputs, output.data());
      if (auto wrong = compare_with_reference(data.workload, output.data(),
                                              data.reference().data(), data.reference().size())) {
        m.result.error = MeasureError::kWrongAnswer;
        m.result.error_message = *wrong;
        return m;
      }
    }

    auto time_calls = [&](int calls) {
      auto start = Clock::now();
      for (int i = 0; i < calls; ++i) kernel.run(inputs, output.data());
      return seconds_since(start);
    };
    time_repeats(o, time_calls, [&] {
      if (o.flush_cache) flusher_.flush();
    }, m);
    return m;
  }

 private:
  // A GPU candidate: loaded and run through the driver API; timed with CUDA
  // events, calls batched as on the CPU. Any CUDA error is a runtime error
  // (and the parent then replaces this process).
  Measurement measure_cuda(const RunRequest& request, WorkloadData& data) {
    Measurement m;
    const MeasureOptions& o = request.options;
    try {
      std::vector<std::vector<float>> inputs;
      for (const auto& b : data.inputs) inputs.emplace_back(b->data(), b->data() + b->size());
      CudaLaunchSpec spec{request.artifact_path, request.cuda.kernel, request.cuda.grid, request.cuda.block,
                          request.cuda.device};
      CudaKernelRun kernel(spec, inputs, static_cast<size_t>(data.output_elements));
      kernel.run_once();
      if (o.check) {
        const std::vector<float> out = kernel.output();
        if (auto wrong = compare_with_reference(data.workload, out.data(), data.reference().data(),
                                                data.reference().size())) {
          m.result.error = MeasureError::kWrongAnswer;
          m.result.error_message = *wrong;
          return m;
        }
      }
      time_repeats(o, [&](int calls) { return kernel.time_calls(calls); }, [] {}, m);
    } catch (const CudaError& e) {
      m = Measurement{};
      m.result.error = MeasureError::kRuntimeError;
      m.result.error_message = std::string("CUDA: ") + e.what();
    }
    return m;
  }

  // The timing both kinds of candidate share: calls per repeat from a warm-up
  // (unless given), then o.repeat repeats of that many calls (before_repeat
  // first, e.g. a cache flush), cut short after the first when hopeless.
  // time_calls(n) is the seconds n calls take.
  template <typename TimeCalls, typename BeforeRepeat>
  static void time_repeats(const MeasureOptions& o, TimeCalls&& time_calls, BeforeRepeat&& before_repeat,
                           Measurement& m) {
    const double min_repeat_s = o.min_repeat_ms / 1000;
    const double warmup_s = time_calls(1);
    m.number = o.number > 0 ? o.number : choose_number(warmup_s, min_repeat_s, time_calls);
    for (int r = 0; r < o.repeat; ++r) {
      before_repeat();
      const double per_call = time_calls(m.number) / m.number;
      m.result.costs.push_back(per_call);
      if (r == 0 && o.best_so_far_s > 0 && per_call > o.best_so_far_s * o.cut_short_factor) {
        m.result.error_message = "cut short: " + format_number(per_call) + " s per call > " +
                                 format_number(o.cut_short_factor) + " x the best so far (" +
                                 format_number(o.best_so_far_s) + " s)";
        break;
      }
    }
  }

  // Calls per repeat so that a repeat lasts at least min_repeat_s. The first
  // call pays for cold caches and the OpenMP thread pool's start, so unless
  // it alone fills a repeat, calibrate on batches of warm calls.
  template <typename TimeCalls>
  static int choose_number(double warmup_s, double min_repeat_s, TimeCalls&& time_calls) {
    if (warmup_s >= min_repeat_s) return 1;
    const int kMaxNumber = 1 << 30;
    for (int calls = 1;; calls *= 2) {
      double t = time_calls(calls);
      if (t >= min_repeat_s / 4 || calls >= kMaxNumber / 2) {
        double per_call = std::max(t / calls, 1e-9);
        return static_cast<int>(std::clamp(std::ceil(min_repeat_s / per_call), 1.0,
                                           static_cast<double>(kMaxNumber)));
      }
    }
  }

  WorkloadCache workloads_;
  CacheFlusher flusher_;
};

// Writes one protocol line to fd, all of it.
void send_line(int fd, const nlohmann::json& j) {
  std::string line = j.dump() + "\n";
  for (size_t done = 0; done < line.size();) {
    ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);  // the parent is gone
    }
    done += static_cast<size_t>(n);
  }
}

// Ends this process if its parent dies: a candidate stuck in an endless loop
// would otherwise spin forever as an orphan.
void exit_with_parent() {
  pid_t parent = getppid();
  std::thread([parent] {
    while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    _exit(1);
  }).detach();
}

int runner_main() {
  // The protocol gets stdout to itself; what kernels print goes to stderr,
  // which the parent keeps for crash reports.
  int protocol_fd = dup(STDOUT_FILENO);
  dup2(STDERR_FILENO, STDOUT_FILENO);
  // Candidates that crash must not leave core dumps behind.
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  exit_with_parent();

  Runner runner;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    Measurement m;
    try {
      RunRequest request = detail::request_from_json(nlohmann::json::parse(line));
      m = runner.measure(request, [&] { send_line(protocol_fd, detail::started_event()); });
    } catch (const std::exception& e) {
      m = Measurement{};
      m.result.error = MeasureError::kRuntimeError;
      m.result.error_message = e.what();
    }
    send_line(protocol_fd, detail::result_to_json(m.result, m.number));
  }
  return 0;
}

}  // namespace
}  // namespace ktune

// `ktune-runner --nvrtc SOURCE ARCH CUBIN`: compiles a CUDA kernel with
// NVRTC in this separate process, so that the parent can time it out
// (NVRTC itself cannot be interrupted). Exit 0 with the cubin written, or 1
// with the compiler's log on stdout.
int nvrtc_main(const char* source_path, const char* arch, const char* cubin_path) {
  std::string why;
  const ktune::Nvrtc* nvrtc = ktune::Nvrtc::get(&why);
  if (!nvrtc) {
    std::cout << why << std::endl;
    return 1;
  }
  std::ifstream in(source_path, std::ios::binary);
  if (!in) {
    std::cout << "cannot read " << source_path << std::endl;
    return 1;
  }
  std::stringstream source;
  source << in.rdbuf();
  const ktune::NvrtcResult r = nvrtc->compile(source.str(), arch);
  if (!r.ok) {
    std::cout << r.log << std::endl;
    return 1;
  }
  const std::string tmp = std::string(cubin_path) + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << r.cubin;
    if (!out) {
      std::cout << "cannot write " << tmp << std::endl;
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), cubin_path) != 0) {
    std::cout << "cannot write " << cubin_path << std::endl;
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--nvrtc") return nvrtc_main(argv[2], argv[3], argv[4]);
  return ktune::runner_main();
}
