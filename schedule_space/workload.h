// Workloads: a tensor operator with its exact shape (fp32).
//
// A Workload has a canonical key: the same workload always prints the same
// key, and parse(key) gives the workload back. Users may write specs with
// defaults omitted and fields in any order, e.g.
//   matmul(m=512,n=512,k=512)
//   dense(batch=1,in=512,out=1000,bias=1)
//   batch_matmul(b=8,m=128,n=128,k=64)
//   conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)
//   conv2d(n=1,c=3,h=224,w=224,k=64,r=7,s=7,stride=2,pad=3x3,dilation=1)
//   depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,stride=1,pad=1)
// Per-dimension values: stride=SHxSW, dilation=DHxDW, pad=P | PHxPW |
// PTxPLxPBxPR (top, left, bottom, right). Defaults: stride 1, pad 0,
// dilation 1, bias 0, multiplier 1 (depthwise channel multiplier).
//
// Layouts: matmul A[m,k]·B[k,n] -> C[m,n], row-major. dense X[batch,in]·W[out,in]ᵀ
// (+ bias[out]) -> Y[batch,out]. batch_matmul A[b,m,k]·B[b,k,n] -> C[b,m,n].
// conv2d data NCHW, weight KCRS -> out NKPQ. depthwise: data NCHW, weight
// [c*multiplier,1,r,s] -> out N(c*multiplier)PQ.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ktune {

struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
  bool operator==(const MatmulShape&) const = default;
};

struct DenseShape {
  int64_t batch = 0, in = 0, out = 0;
  bool bias = false;
  bool operator==(const DenseShape&) const = default;
};

struct BatchMatmulShape {
  int64_t b = 0, m = 0, n = 0, k = 0;
  bool operator==(const BatchMatmulShape&) const = default;
};

// Shared by conv2d and depthwise_conv2d.
struct Conv2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t k = 0;  // output channels; for depthwise always c * multiplier
  int64_t r = 0, s = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t multiplier = 1;  // depthwise only

  int64_t out_h() const {
    return (h + pad_top + pad_bottom - dilation_h * (r - 1) - 1) / stride_h + 1;
  }
  int64_t out_w() const {
    return (w + pad_left + pad_right - dilation_w * (s - 1) - 1) / stride_w + 1;
  }
  bool operator==(const Conv2dShape&) const = default;
};

enum class OpKind { kMatmul, kDense, kBatchMatmul, kConv2d, kDepthwiseConv2d };

std::string_view op_name(OpKind op);

// A tensor an operator reads or writes, with its row-major shape.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_weight = false;  // a constant operand a library user would pre-pack
  int64_t elements() const;
};

class Workload {
 public:
  Workload() = default;
  explicit Workload(MatmulShape s) : op_(OpKind::kMatmul), shape_(s) {}
  explicit Workload(DenseShape s) : op_(OpKind::kDense), shape_(s) {}
  explicit Workload(BatchMatmulShape s) : op_(OpKind::kBatchMatmul), shape_(s) {}
  // depthwise = true makes a depthwise_conv2d (k is set to c * multiplier).
  Workload(Conv2dShape s, bool depthwise);

  // Parses a spec or canonical key; throws ktune::Error naming the bad field
  // and what is accepted. The result is validated.
  static Workload parse(std::string_view spec);

  // Throws ktune::Error if sizes are non-positive, the output is empty, or a
  // tensor would be absurdly large (more than 2^31 elements or 4 GiB).
  void validate() const;

  OpKind op() const { return op_; }
  std::string key() const;
  // Multiply and add count as two; padding zeros count like any input; the
  // dense bias add counts one per output element.
  double flops() const;

  // Operands in the order kernels take them; the output is separate.
  std::vector<TensorSpec> inputs() const;
  TensorSpec output() const;

  const MatmulShape& matmul() const { return std::get<MatmulShape>(shape_); }
  const DenseShape& dense() const { return std::get<DenseShape>(shape_); }
  const BatchMatmulShape& batch_matmul() const { return std::get<BatchMatmulShape>(shape_); }
  const Conv2dShape& conv2d() const { return std::get<Conv2dShape>(shape_); }  // conv2d and depthwise

  bool operator==(const Workload& o) const { return op_ == o.op_ && shape_ == o.shape_; }

 private:
  OpKind op_ = OpKind::kMatmul;
  std::variant<MatmulShape, DenseShape, BatchMatmulShape, Conv2dShape> shape_;
};

// Straightforward, obviously-correct implementation used to check every
// candidate. inputs are in Workload::inputs() order; output has
// output().elements() floats. Accumulates in double for a tight reference.
void reference(const Workload& w, const std::vector<const float*>& inputs, float* output);

}  // namespace ktune
