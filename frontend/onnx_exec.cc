#include "frontend/onnx_exec.h"

#include <algorithm>
#include <functional>
#include <numeric>

#include "schedule_space/error.h"

namespace ktune {

namespace {

int64_t product(const std::vector<int64_t>& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
}

void expect_size(const std::vector<float>& v, int64_t n, const std::string& what) {
  if (static_cast<int64_t>(v.size()) != n) {
    throw Error(what + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(n));
  }
}

std::vector<float> transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> t(x.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t[static_cast<size_t>(j * rows + i)] = x[static_cast<size_t>(i * cols + j)];
  }
  return t;
}

// x of shape `from` broadcast (numpy rules) to `to`.
std::vector<float> broadcast(const std::vector<float>& x, std::vector<int64_t> from, const std::vector<int64_t>& to) {
  while (from.size() < to.size()) from.insert(from.begin(), 1);
  std::vector<float> out(static_cast<size_t>(product(to)));
  std::vector<int64_t> idx(to.size(), 0);
  for (size_t o = 0; o < out.size(); ++o) {
    int64_t src = 0;
    for (size_t d = 0; d < to.size(); ++d) src = src * from[d] + (from[d] == 1 ? 0 : idx[d]);
    out[o] = x[static_cast<size_t>(src)];
    for (size_t d = to.size(); d-- > 0;) {
      if (++idx[d] < to[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

std::vector<float> run_mapped_node(const NodeMapping& m, const std::vector<std::vector<float>>& in, const KernelFn& kernel) {
  const Workload& w = m.workload;
  const size_t needed = m.has_c ? 3 : 2;
  if (in.size() != needed) {
    throw Error("node " + m.node + ": " + std::to_string(in.size()) + " inputs given, " + std::to_string(needed) + " expected");
  }
  if (m.op_type == "Conv") {
    const Conv2dShape& s = w.conv2d();
    expect_size(in[0], s.n * s.c * s.h * s.w, "Conv input X");
    std::vector<float> out = kernel({in[0], in[1]});
    if (m.has_c) {
      expect_size(in[2], s.k, "Conv bias B");
      const int64_t plane = s.out_h() * s.out_w();
      for (int64_t n = 0; n < s.n; ++n) {
        for (int64_t k = 0; k < s.k; ++k) {
          float* p = out.data() + (n * s.k + k) * plane;
          for (int64_t i = 0; i < plane; ++i) p[i] += in[2][static_cast<size_t>(k)];
        }
      }
    }
    return out;
  }
  if (m.op_type == "MatMul") {
    if (w.op() == OpKind::kMatmul) return kernel({in[0], in[1]});  // rows flattened; B [K,N] or [K]
    const BatchMatmulShape& s = w.batch_matmul();
    std::vector<int64_t> a = m.a_shape, b = m.b_shape;
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    std::vector<int64_t> batch_a(a.begin(), a.end() - 2), batch_b(b.begin(), b.end() - 2);
    const size_t rank = std::max(batch_a.size(), batch_b.size());
    while (batch_a.size() < rank) batch_a.insert(batch_a.begin(), 1);
    while (batch_b.size() < rank) batch_b.insert(batch_b.begin(), 1);
    std::vector<int64_t> batch(rank);
    for (size_t i = 0; i < rank; ++i) batch[i] = std::max(batch_a[i], batch_b[i]);
    std::vector<int64_t> to_a = batch, to_b = batch;
    to_a.insert(to_a.end(), {s.m, s.k});
    to_b.insert(to_b.end(), {s.k, s.n});
    batch_a.insert(batch_a.end(), {s.m, s.k});
    batch_b.insert(batch_b.end(), {s.k, s.n});
    return kernel({broadcast(in[0], batch_a, to_a), broadcast(in[1], batch_b, to_b)});
  }
  // Gemm
  int64_t M = 0, N = 0, K = 0;
  if (w.op() == OpKind::kDense) {
    M = w.dense().batch, N = w.dense().out, K = w.dense().in;
  } else {
    M = w.matmul().m, N = w.matmul().n, K = w.matmul().k;
  }
  expect_size(in[0], M * K, "Gemm input A");
  expect_size(in[1], K * N, "Gemm input B");
  const std::vector<float> a = m.transpose_a ? transpose(in[0], K, M) : in[0];
  if (w.op() == OpKind::kDense) {
    std::vector<std::vector<float>> args = {a, in[1]};  // B is [N,K]: dense's W
    if (m.bias_in_kernel) args.push_back(in[2]);
    return kernel(args);
  }
  std::vector<float> y = kernel({a, m.b_is_nk ? transpose(in[1], N, K) : in[1]});
  const std::vector<float> c = m.has_c ? broadcast(in[2], m.c_shape, {M, N}) : std::vector<float>{};
  for (size_t i = 0; i < y.size(); ++i) {
    y[i] = static_cast<float>(m.alpha * y[i] + (m.has_c ? m.beta * c[i] : 0.0));
  }
  return y;
}

}  // namespace ktune
