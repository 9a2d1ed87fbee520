// Reference implementations: the loops straight from each operator's
// definition, accumulating in double. They must be obviously correct first;
// they are also run once per new workload by the runner, so they use
// cache-friendly loop orders and OpenMP over independent outputs (each output
// element is still summed in one fixed order, so results do not depend on
// the thread count).
#include <cstdint>
#include <string>
#include <vector>

#include "schedule_space/error.h"
#include "schedule_space/workload.h"

namespace ktune {

namespace {

// C[batch,m,n] = A[batch,m,k] · B[batch,k,n], row-major. i-k-j order: the
// inner loop streams a row of B into a row accumulator. Rows of all batches
// are independent, so they are shared out together.
void matmul_reference(const float* a, const float* b, float* c, int64_t batch, int64_t m,
                      int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
  for (int64_t row_index = 0; row_index < batch * m; ++row_index) {
    const float* a_row = a + row_index * k;
    const float* b_batch = b + (row_index / m) * k * n;
    std::vector<double> row(n, 0.0);
    for (int64_t p = 0; p < k; ++p) {
      const double a_ip = a_row[p];
      const float* b_row = b_batch + p * n;
      for (int64_t j = 0; j < n; ++j) row[j] += a_ip * b_row[j];
    }
    for (int64_t j = 0; j < n; ++j) c[row_index * n + j] = static_cast<float>(row[j]);
  }
}

// Y[batch,out] = X[batch,in] · W[out,in]ᵀ (+ bias[out]).
void dense_reference(const DenseShape& s, const float* x, const float* w, const float* bias,
                     float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t idx = 0; idx < s.batch * s.out; ++idx) {
    const int64_t b = idx / s.out, o = idx % s.out;
    double sum = bias ? bias[o] : 0.0;
    for (int64_t i = 0; i < s.in; ++i) sum += static_cast<double>(x[b * s.in + i]) * w[o * s.in + i];
    y[idx] = static_cast<float>(sum);
  }
}

// Adds one input channel plane [h,w] convolved with one filter [r,s] into the
// output plane acc [out_h,out_w]. Taps that land in the padding read zero.
void accumulate_channel(const Conv2dShape& s, const float* plane, const float* filter,
                        std::vector<double>& acc) {
  const int64_t out_h = s.out_h(), out_w = s.out_w();
  for (int64_t r = 0; r < s.r; ++r) {
    for (int64_t q = 0; q < s.s; ++q) {
      const double weight = filter[r * s.s + q];
      for (int64_t oy = 0; oy < out_h; ++oy) {
        const int64_t iy = oy * s.stride_h - s.pad_top + r * s.dilation_h;
        if (iy < 0 || iy >= s.h) continue;
        for (int64_t ox = 0; ox < out_w; ++ox) {
          const int64_t ix = ox * s.stride_w - s.pad_left + q * s.dilation_w;
          if (ix < 0 || ix >= s.w) continue;
          acc[oy * out_w + ox] += weight * plane[iy * s.w + ix];
        }
      }
    }
  }
}

// out[n,k,out_h,out_w]. conv2d: output channel oc sums every input channel
// against weight[oc,c]. depthwise: it reads input channel oc / multiplier
// against weight[oc,0].
void conv2d_reference(const Conv2dShape& s, bool depthwise, const float* data,
                      const float* weight, float* out) {
  const int64_t plane = s.h * s.w, filter = s.r * s.s, out_plane = s.out_h() * s.out_w();
#pragma omp parallel for schedule(static)
  for (int64_t idx = 0; idx < s.n * s.k; ++idx) {
    const int64_t b = idx / s.k, oc = idx % s.k;
    std::vector<double> acc(out_plane, 0.0);
    if (depthwise) {
      const int64_t ic = oc / s.multiplier;
      accumulate_channel(s, data + (b * s.c + ic) * plane, weight + oc * filter, acc);
    } else {
      for (int64_t ic = 0; ic < s.c; ++ic) {
        accumulate_channel(s, data + (b * s.c + ic) * plane, weight + (oc * s.c + ic) * filter,
                           acc);
      }
    }
    for (int64_t i = 0; i < out_plane; ++i) out[idx * out_plane + i] = static_cast<float>(acc[i]);
  }
}

}  // namespace

void reference(const Workload& w, const std::vector<const float*>& inputs, float* output) {
  const size_t expected = w.inputs().size();
  if (inputs.size() != expected) {
    throw Error("reference(" + w.key() + "): expected " + std::to_string(expected) +
                " inputs, got " + std::to_string(inputs.size()));
  }
  switch (w.op()) {
    case OpKind::kMatmul: {
      const auto& s = w.matmul();
      matmul_reference(inputs[0], inputs[1], output, 1, s.m, s.n, s.k);
      return;
    }
    case OpKind::kDense: {
      const auto& s = w.dense();
      dense_reference(s, inputs[0], inputs[1], s.bias ? inputs[2] : nullptr, output);
      return;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = w.batch_matmul();
      matmul_reference(inputs[0], inputs[1], output, s.b, s.m, s.n, s.k);
      return;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d:
      conv2d_reference(w.conv2d(), w.op() == OpKind::kDepthwiseConv2d, inputs[0], inputs[1],
                       output);
      return;
  }
}

}  // namespace ktune
