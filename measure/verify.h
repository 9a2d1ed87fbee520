// Checking a kernel's output against the reference implementation.
//
// One definition of "agrees with the reference", shared by the sandboxed
// runner (every tuning candidate) and `ktune bench` (the tuned kernel and
// every library baseline), and one definition of the inputs they check on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "schedule_space/workload.h"

namespace ktune {

// Fills data[0..n) with the deterministic check inputs of operand
// `operand_index` (Workload::inputs() order): uniform in [-1, 1], one seed per
// operand, so the values do not depend on the other operands' sizes.
void fill_check_input(size_t operand_index, float* data, int64_t n);

// Number of products summed into one output element: the scale of the
// rounding error an fp32 kernel may legitimately have.
int64_t reduction_length(const Workload& w);

// nullopt if output[0..n) matches expected[0..n) within the fp32 tolerance
// for w, given inputs in [-1, 1]; else a one-line description of the first
// wrong element and how many are wrong. NaN never passes.
std::optional<std::string> compare_with_reference(const Workload& w, const float* output,
                                                  const float* expected, int64_t n);

}  // namespace ktune
