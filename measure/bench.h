// Bench: a tuned kernel and the vendor libraries timed side by side, in one
// process, on the same inputs and thread count (what `ktune bench` prints).
//
// Each implementation of the workload is a Contender. run_bench first checks
// every contender's output against the reference (verify.h) and times
// nothing if one disagrees; otherwise it alternates: in each round every
// contender takes one timed sample (a batch of calls lasting >= min_sample_s),
// so slow drifts of the machine (other processes, clocks, heat) hit all sides
// alike instead of whichever happened to run last.
//
// Which layout transforms each side does inside its timed region is part of
// the answer: a kernel that packs its activations in every call is not
// comparable to a library whose input was reordered once, outside the timing.
// Every contender says which it does (timed_transforms).
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "measure/kernel_library.h"
#include "schedule_space/ir.h"
#include "schedule_space/workload.h"

namespace ktune {

// Storage aligned to a cache line (and an AVX-512 vector), as frameworks
// allocate tensors. Every side's inputs and outputs are: a plain vector of a
// few hundred KiB comes from mmap 16 bytes past a page, and every 64-byte
// load of a kernel reading it in place would straddle two cache lines.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kAlignment = 64;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlignment)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(kAlignment)); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept { return false; }
};
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

// A workload's check inputs (verify.h's fill_check_input) and reference output.
struct BenchData {
  explicit BenchData(const Workload& w);  // computes the reference (can take a while)
  Workload workload;
  std::vector<AlignedFloats> inputs;  // Workload::inputs() order
  std::vector<const float*> input_pointers;
  std::vector<float> reference;
};

// One implementation of a workload, ready to run on a BenchData's inputs.
class Contender {
 public:
  virtual ~Contender() = default;
  // Who: "ktune" (the tuned kernel), "openblas", "onednn" (the baselines).
  virtual std::string library() const = 0;
  // Which way of the library, e.g. "sgemm", "sgemv", "matmul", "blocked",
  // "nchw" ("" when there is one).
  virtual std::string variant() const { return ""; }
  // Whether this variant is a baseline for the workload: what a user of the
  // library would call. The headline ratio is against the fastest primary
  // variant of all libraries; the others are shown for information, e.g.
  // oneDNN forced to plain NCHW.
  virtual bool primary() const { return true; }
  // Layout transforms of activations inside the timed region, in words;
  // "none" when the timed region is the computation alone.
  virtual std::string timed_transforms() const = 0;
  // One call: the timed computation.
  virtual void run() = 0;
  // Copies the result of the last run() to output (Workload::output() layout),
  // doing untimed reorders if the contender computes in another layout.
  virtual void read_output(float* output) = 0;

  std::string display_name() const {
    return variant().empty() ? library() : library() + " " + variant();
  }
};

// The tuned kernel: a built artifact loaded with KernelLibrary, prepared on
// data's inputs. timed_transforms describes program's workspace buffers that
// ktune_run fills (packed activations), from the Program it was built from.
std::unique_ptr<Contender> make_tuned_contender(const std::string& artifact_path,
                                                const BenchData& data,
                                                const std::string& timed_transforms);
// The timed_transforms text of a kernel built from program: its workspace
// buffers that are not filled by prepare, e.g. "packs data_packed[1,8,58,58,8]";
// "none" if there are none.
std::string describe_timed_transforms(const ir::Program& program);

struct BenchOptions {
  int rounds = 15;             // samples per contender
  double min_sample_s = 0.02;  // calls per sample are batched to last at least this long
  // Idle time before each sample. With several threads, a library's worker
  // threads keep spinning for a while after a call (OpenBLAS's pthreads for
  // ~0.1 s) and would steal cores from the next contender; a pause longer
  // than that keeps the alternation fair.
  double pause_s = 0;
};

struct ContenderTiming {
  std::string library, variant, timed_transforms;
  bool primary = true;
  int calls_per_sample = 0;
  std::vector<double> seconds;  // per call, one per round
  double median_s = 0, p10_s = 0, p90_s = 0, min_s = 0, max_s = 0;
  double gflops = 0;            // at the median
  // (p90 - p10) / median: how much the samples disagree with each other.
  double spread() const { return median_s > 0 ? (p90_s - p10_s) / median_s : 0; }
  std::string display_name() const { return variant.empty() ? library : library + " " + variant; }
};

struct Disagreement {
  std::string who;      // Contender::display_name()
  std::string message;  // compare_with_reference's description
};

struct BenchResult {
  std::vector<ContenderTiming> timings;   // contenders' order; empty if any disagreed
  std::vector<Disagreement> disagreements;
  bool agree() const { return disagreements.empty(); }
  // The timing of library's fastest primary variant; nullptr if none.
  const ContenderTiming* best_primary(const std::string& library) const;
  // The fastest primary variant of any library but "ktune": the baseline a
  // tuned kernel has to beat, as the user could have called any of them.
  // nullptr if there is none (no library in this build has the operator).
  const ContenderTiming* fastest_baseline() const;
};

// Checks, then times the contenders as described at the top of this file.
// Throws ktune::Error for bad options.
BenchResult run_bench(const BenchData& data, const std::vector<Contender*>& contenders,
                      const BenchOptions& options);

}  // namespace ktune
