// Program features for the cost model, in the spirit of AutoTVM's.
//
// Three kinds, each a fixed-length float vector:
//   - itervar: per loop of the program's body (the first kMaxLoops: those
//     around the most executed access outermost first, so the compute nest
//     keeps its positions across configs, then the others in program
//     order): log2 extent, nesting depth, log2 of the
//     product of the extents above and of the largest product below, the loop
//     kind one-hot (serial, parallel, unrolled, vectorized, GPU block, GPU
//     thread); then,
//     for the first kMaxBuffers buffers in the program's order (params, then
//     workspace, then local buffers), the access stride with respect to that
//     loop (elements), the bytes one iteration of the loop touches, the reuse
//     ratio (accesses / distinct elements touched) and the access count.
//     Specific to a template's loop structure: the features of one task.
//   - curve: independent of loop count and buffer names, so comparable
//     across templates and workloads (transfer learning): per buffer, the
//     reuse ratio as a function of the bytes touched, sampled at fixed
//     points from the innermost loop out; plus the parallel extent (CPU:
//     the parallel loop; GPU: blocks x threads per block), the
//     widest vector, the largest unrolled product and the total iterations.
//   - knob: the config's knob values (Knob::values), log-scaled.
//   - itervar+knob: both, concatenated: what the loops show and what they
//     do not (e.g. the order the multiply-adds are emitted in).
// Every magnitude is log2(1 + |x|). Strides are estimated by finite
// differences of the index expressions (exact for affine indices).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "schedule_space/config_space.h"
#include "schedule_space/ir.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune::cost_model {

enum class FeatureKind { kItervar, kCurve, kKnob, kItervarKnob };
// "itervar" | "curve" | "knob" | "itervar+knob"; throws ktune::Error naming
// the accepted ones.
FeatureKind parse_feature_kind(std::string_view name);
std::string_view feature_kind_name(FeatureKind kind);

inline constexpr size_t kMaxLoops = 12;
inline constexpr size_t kMaxBuffers = 5;
inline constexpr size_t kLoopFeatures = 10;   // extent, depth, above, below, 6 kinds
inline constexpr size_t kBufferFeatures = 4;  // stride, bytes, reuse, count
inline constexpr size_t kItervarLength = kMaxLoops * (kLoopFeatures + kMaxBuffers * kBufferFeatures);
inline constexpr size_t kCurveBuffers = 4;
inline constexpr size_t kCurvePoints = 9;     // bytes touched = 2^6, 2^8, ..., 2^22
inline constexpr size_t kCurveLength = kCurveBuffers * kCurvePoints + 4;

std::vector<float> itervar_features(const ir::Program& program);
std::vector<float> curve_features(const ir::Program& program);
std::vector<float> knob_features(const ConfigSpace& space, const Config& config);

// Features of one task's configs, of one kind, computed once per config
// index. The references must outlive the extractor. A config the template
// cannot instantiate gets all zeros.
class FeatureExtractor {
 public:
  FeatureExtractor(const Workload& workload, const Target& target, const Template& tmpl,
                   const ConfigSpace& space, FeatureKind kind);
  const std::vector<float>& get(const Config& config);
  // The same, from config's program when the caller has built it already
  // (two extractors of one config share one instantiation).
  const std::vector<float>& get(const Config& config, const ir::Program& program);
  bool contains(uint64_t index) const { return cache_.count(index) != 0; }
  size_t length() const { return length_; }
  FeatureKind kind() const { return kind_; }
  size_t cached() const { return cache_.size(); }

 private:
  const Workload& workload_;
  const Target& target_;
  const Template& tmpl_;
  const ConfigSpace& space_;
  FeatureKind kind_;
  size_t length_;
  std::unordered_map<uint64_t, std::vector<float>> cache_;
};

}  // namespace ktune::cost_model
