#include "measure/verify.h"

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

namespace ktune {

namespace {

std::string format_number(double v) {
  std::ostringstream s;
  s.precision(7);
  s << v;
  return s.str();
}

}  // namespace

void fill_check_input(size_t operand_index, float* data, int64_t n) {
  std::mt19937 rng(0x6b74756eu + static_cast<uint32_t>(operand_index));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t j = 0; j < n; ++j) data[j] = uniform(rng);
}

int64_t reduction_length(const Workload& w) {
  switch (w.op()) {
    case OpKind::kMatmul: return w.matmul().k;
    case OpKind::kDense: return w.dense().in;
    case OpKind::kBatchMatmul: return w.batch_matmul().k;
    case OpKind::kConv2d: return w.conv2d().c * w.conv2d().r * w.conv2d().s;
    case OpKind::kDepthwiseConv2d: return w.conv2d().r * w.conv2d().s;
  }
  return 1;
}

// Inputs are uniform in [-1, 1], so every product has magnitude <= 1 and the
// typical sum of |products| is K/4 for a reduction of length K. fp32 kernels
// may sum in any order (tiles, vector lanes, FMA contraction); the error of
// such a sum grows like eps * sqrt(K) * sum|products| in practice. The
// absolute tolerance is four times that (a missing or extra product, ~0.25,
// stays far above it), plus a relative 1e-4 of the value itself. NaN never
// passes, which catches elements a kernel never wrote when the output is
// pre-filled with NaN.
std::optional<std::string> compare_with_reference(const Workload& w, const float* output,
                                                  const float* expected, int64_t n) {
  const double eps = std::numeric_limits<float>::epsilon();
  const double k = static_cast<double>(reduction_length(w));
  const double atol = 4 * eps * std::sqrt(k) * (k / 4 + 1);
  const double rtol = 1e-4;
  int64_t wrong = 0, first = -1;
  for (int64_t i = 0; i < n; ++i) {
    double got = output[i], want = expected[i];
    bool ok = std::fabs(got - want) <= atol + rtol * std::fabs(want);  // false for NaN
    if (!ok) {
      if (wrong++ == 0) first = i;
    }
  }
  if (wrong == 0) return std::nullopt;
  std::string got = std::isnan(output[first]) ? "nan (never written?)" : format_number(output[first]);
  return "output[" + std::to_string(first) + "] = " + got + ", expected " +
         format_number(expected[first]) + " (tolerance " +
         format_number(atol + rtol * std::fabs(expected[first])) + "); " + std::to_string(wrong) +
         " of " + std::to_string(n) + " elements wrong";
}

}  // namespace ktune
