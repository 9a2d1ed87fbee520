#include "measure/baselines.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "schedule_space/error.h"

#ifdef KTUNE_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef KTUNE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace ktune {

namespace {

[[maybe_unused]] std::string missing_library(const std::string& library, const std::string& package) {
  return library + " baseline not available: ktune was built without " + library + " (install " +
         package + " and rebuild)";
}

#ifdef KTUNE_HAVE_OPENBLAS

// Output buffer and the copy out, shared by the OpenBLAS baselines: they all
// compute in the workload's own row-major layout.
class OpenBlasContender : public Contender {
 public:
  explicit OpenBlasContender(const BenchData& data)
      : data_(data), output_(static_cast<size_t>(data.workload.output().elements())) {}
  std::string library() const override { return "openblas"; }
  // Like ktune's kernels, sgemm packs panels of its operands into its own
  // buffers in every call; no layout of the workload's tensors changes.
  // Which of OpenBLAS's kernels and thread runtimes answered: DYNAMIC_ARCH
  // builds pick the kernels at load time (OPENBLAS_CORETYPE can force a
  // core), and the pthread build's spinning workers compete with OpenMP's.
  std::string timed_transforms() const override {
    static const char* kParallel[] = {"sequential", "pthreads", "OpenMP"};
    const int parallel = openblas_get_parallel();
    return std::string("none (operands in the workload's layout); OpenBLAS ") + openblas_get_corename() +
           " kernels, " + (parallel >= 0 && parallel <= 2 ? kParallel[parallel] : "unknown") + " threads";
  }
  void read_output(float* output) override { std::copy(output_.begin(), output_.end(), output); }

 protected:
  const float* input(size_t i) const { return data_.input_pointers[i]; }
  const BenchData& data_;
  AlignedFloats output_;
};

class OpenBlasSgemm : public OpenBlasContender {
 public:
  using OpenBlasContender::OpenBlasContender;
  std::string variant() const override { return "sgemm"; }
  void run() override {
    const Workload& w = data_.workload;
    float* c = output_.data();
    switch (w.op()) {
      case OpKind::kMatmul: {
        const MatmulShape& s = w.matmul();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.m, s.n, s.k, 1.0f, input(0), s.k,
                    input(1), s.n, 0.0f, c, s.n);
        break;
      }
      case OpKind::kDense: {
        const DenseShape& s = w.dense();
        if (s.bias) {
          for (int64_t b = 0; b < s.batch; ++b) std::memcpy(c + b * s.out, input(2), s.out * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.batch, s.out, s.in, 1.0f, input(0),
                    s.in, input(1), s.in, s.bias ? 1.0f : 0.0f, c, s.out);
        break;
      }
      default:
        throw Error("openblas sgemm baseline: unsupported operator " + std::string(op_name(w.op())));
    }
  }
};

// C[b] = A[b] B[b] for every b. OpenBLAS 0.3.28 and later have a batched
// sgemm (one call, one group of b equal problems); older ones, e.g. Debian
// 12's 0.3.21, have none, and a loop of sgemm calls is what a user of them
// writes. The variant's name says which this build has.
class OpenBlasBatchSgemm : public OpenBlasContender {
 public:
  explicit OpenBlasBatchSgemm(const BenchData& data) : OpenBlasContender(data) {
#ifdef KTUNE_HAVE_CBLAS_SGEMM_BATCH
    const BatchMatmulShape& s = data_.workload.batch_matmul();
    for (int64_t b = 0; b < s.b; ++b) {
      a_.push_back(input(0) + b * s.m * s.k);
      b_.push_back(input(1) + b * s.k * s.n);
      c_.push_back(output_.data() + b * s.m * s.n);
    }
#endif
  }
#ifdef KTUNE_HAVE_CBLAS_SGEMM_BATCH
  std::string variant() const override { return "sgemm_batch"; }
  void run() override {
    const BatchMatmulShape& s = data_.workload.batch_matmul();
    const CBLAS_TRANSPOSE no_trans = CblasNoTrans;
    const blasint m = static_cast<blasint>(s.m), n = static_cast<blasint>(s.n),
                  k = static_cast<blasint>(s.k), group = static_cast<blasint>(s.b);
    const float alpha = 1.0f, beta = 0.0f;
    cblas_sgemm_batch(CblasRowMajor, &no_trans, &no_trans, &m, &n, &k, &alpha, a_.data(), &k,
                      b_.data(), &n, &beta, c_.data(), &n, 1, &group);
  }
#else
  std::string variant() const override { return "sgemm loop"; }
  void run() override {
    const BatchMatmulShape& s = data_.workload.batch_matmul();
    for (int64_t b = 0; b < s.b; ++b) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.m, s.n, s.k, 1.0f,
                  input(0) + b * s.m * s.k, s.k, input(1) + b * s.k * s.n, s.n, 0.0f,
                  output_.data() + b * s.m * s.n, s.n);
    }
  }
#endif

#ifdef KTUNE_HAVE_CBLAS_SGEMM_BATCH
 private:
  std::vector<const float*> a_, b_;  // one pointer per batch, for the one call
  std::vector<float*> c_;
#endif
};

// y = W x (+ bias) for a batch-1 dense layer.
class OpenBlasSgemv : public OpenBlasContender {
 public:
  using OpenBlasContender::OpenBlasContender;
  std::string variant() const override { return "sgemv"; }
  void run() override {
    const DenseShape& s = data_.workload.dense();
    float* y = output_.data();
    if (s.bias) std::memcpy(y, input(2), s.out * sizeof(float));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, s.out, s.in, 1.0f, input(1), s.in, input(0), 1,
                s.bias ? 1.0f : 0.0f, y, 1);
  }
};

#endif  // KTUNE_HAVE_OPENBLAS

#ifdef KTUNE_HAVE_DNNL

// The engine, stream and result handling shared by the oneDNN baselines.
// Subclasses create the primitive and set dst_ (in the primitive's layout)
// and user_dst_ (the workload's output layout).
class OneDnnContender : public Contender {
 public:
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;

  OneDnnContender() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}
  std::string library() const override { return "onednn"; }
  void run() override {
    primitive_.execute(stream_, args_);
    stream_.wait();
  }
  void read_output(float* output) override {
    dnnl::memory user(user_dst_, engine_, output);
    dnnl::reorder(dst_, user).execute(stream_, dst_, user);
    stream_.wait();
  }

 protected:
  // A workload tensor as oneDNN memory, without a copy. oneDNN takes a
  // non-const handle; the primitives only read their inputs.
  dnnl::memory user_memory(const dnnl::memory::desc& desc, const float* data) const {
    return dnnl::memory(desc, engine_, const_cast<float*>(data));
  }
  // The operand in the primitive's layout: data itself when the layouts
  // match, else a reordered copy (made here, outside any timing).
  dnnl::memory in_layout(const dnnl::memory::desc& user_desc, const float* data,
                         const dnnl::memory::desc& wanted) {
    dnnl::memory user = user_memory(user_desc, data);
    if (wanted == user_desc) return user;
    dnnl::memory copy(wanted, engine_);
    dnnl::reorder(user, copy).execute(stream_, user, copy);
    stream_.wait();
    return copy;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::primitive primitive_;
  std::unordered_map<int, dnnl::memory> args_;  // DNNL_ARG_* -> memory, for run()
  dnnl::memory::desc user_dst_;
  dnnl::memory dst_;
  std::string impl_;  // the implementation oneDNN picked, e.g. "brg:avx512_core"
};

class OneDnnConv : public OneDnnContender {
 public:
  OneDnnConv(const BenchData& data, bool plain_nchw) : plain_nchw_(plain_nchw) {
    const Conv2dShape& s = data.workload.conv2d();
    const bool depthwise = data.workload.op() == OpKind::kDepthwiseConv2d;
    const dnnl::memory::dims src_dims = {s.n, s.c, s.h, s.w};
    const dnnl::memory::dims dst_dims = {s.n, s.k, s.out_h(), s.out_w()};
    const dnnl::memory::dims wei_dims = depthwise ? dnnl::memory::dims{s.c, s.multiplier, 1, s.r, s.s}
                                                  : dnnl::memory::dims{s.k, s.c, s.r, s.s};
    const dnnl::memory::desc user_src(src_dims, dt::f32, tag::nchw);
    const dnnl::memory::desc user_wei(wei_dims, dt::f32, depthwise ? tag::goihw : tag::oihw);
    user_dst_ = dnnl::memory::desc(dst_dims, dt::f32, tag::nchw);
    auto any = [](const dnnl::memory::dims& d) { return dnnl::memory::desc(d, dt::f32, tag::any); };
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        plain_nchw ? user_src : any(src_dims), any(wei_dims), plain_nchw ? user_dst_ : any(dst_dims),
        {s.stride_h, s.stride_w}, {s.dilation_h - 1, s.dilation_w - 1}, {s.pad_top, s.pad_left},
        {s.pad_bottom, s.pad_right});
    dnnl::convolution_forward::primitive_desc pd(desc, engine_);
    impl_ = pd.impl_info_str();
    dst_ = dnnl::memory(pd.dst_desc(), engine_);
    args_ = {{DNNL_ARG_SRC, in_layout(user_src, data.input_pointers[0], pd.src_desc())},
             {DNNL_ARG_WEIGHTS, in_layout(user_wei, data.input_pointers[1], pd.weights_desc())},
             {DNNL_ARG_DST, dst_}};
    primitive_ = dnnl::convolution_forward(pd);
  }

  std::string variant() const override { return plain_nchw_ ? "nchw" : "blocked"; }
  bool primary() const override { return !plain_nchw_; }
  std::string timed_transforms() const override {
    if (plain_nchw_) {
      return "src/dst in plain NCHW: any activation transform oneDNN (" + impl_ +
             ") does is timed; weights reordered once, untimed";
    }
    return "none: oneDNN (" + impl_ + ") chose its layouts; src/weights/dst reorders untimed";
  }

 private:
  bool plain_nchw_;
};

// matmul, dense and batch_matmul as oneDNN's matmul primitive, the call a
// framework makes: src[(b,) m, k] · weights[(b,) k, n] (+ bias[1, n]).
// Activations stay in the workload's row-major layout (batch_matmul's 3-D
// tensors with their batch dimension, one primitive call for all of it).
// dense's W[out, in] is a constant: it is described as weights[in, out]
// with transposed strides (format_tag::ba), and oneDNN chooses its layout
// (format_tag::any), reordered once outside the timing, as for convolutions.
class OneDnnMatmul : public OneDnnContender {
 public:
  explicit OneDnnMatmul(const BenchData& data) {
    const Workload& w = data.workload;
    const std::vector<const float*>& in = data.input_pointers;
    dnnl::memory::desc src, wei, dst, bias;
    switch (w.op()) {
      case OpKind::kMatmul: {
        const MatmulShape& s = w.matmul();
        src = plain({s.m, s.k}), wei = plain({s.k, s.n}), dst = plain({s.m, s.n});
        break;
      }
      case OpKind::kBatchMatmul: {
        const BatchMatmulShape& s = w.batch_matmul();
        src = plain({s.b, s.m, s.k}), wei = plain({s.b, s.k, s.n}), dst = plain({s.b, s.m, s.n});
        break;
      }
      case OpKind::kDense: {
        const DenseShape& s = w.dense();
        src = plain({s.batch, s.in}), dst = plain({s.batch, s.out});
        wei = dnnl::memory::desc({s.in, s.out}, dt::f32, tag::ba);  // W[out, in] seen as Wᵀ
        if (s.bias) bias = plain({1, s.out});
        weight_reordered_ = true;
        break;
      }
      default:
        throw Error("onednn matmul baseline: unsupported operator " + std::string(op_name(w.op())));
    }
    const dnnl::memory::desc wanted_wei =
        weight_reordered_ ? dnnl::memory::desc(wei.dims(), dt::f32, tag::any) : wei;
    const dnnl::matmul::desc desc = bias ? dnnl::matmul::desc(src, wanted_wei, bias, dst)
                                         : dnnl::matmul::desc(src, wanted_wei, dst);
    const dnnl::matmul::primitive_desc pd(desc, engine_);
    impl_ = pd.impl_info_str();
    user_dst_ = dst;
    dst_ = dnnl::memory(pd.dst_desc(), engine_);
    args_ = {{DNNL_ARG_SRC, user_memory(src, in[0])},
             {DNNL_ARG_WEIGHTS, in_layout(wei, in[1], pd.weights_desc())},
             {DNNL_ARG_DST, dst_}};
    if (bias) args_[DNNL_ARG_BIAS] = user_memory(bias, in[2]);
    primitive_ = dnnl::matmul(pd);
  }

  std::string variant() const override { return "matmul"; }
  std::string timed_transforms() const override {
    if (weight_reordered_) {
      return "none: activations in the workload's layout; oneDNN (" + impl_ +
             ") chose W's layout, reordered once, untimed";
    }
    return "none (operands in the workload's layout); oneDNN " + impl_;
  }

 private:
  static dnnl::memory::desc plain(const dnnl::memory::dims& dims) {
    return dnnl::memory::desc(dims, dt::f32, dims.size() == 2 ? tag::ab : tag::abc);
  }

  bool weight_reordered_ = false;
};

#endif  // KTUNE_HAVE_DNNL

}  // namespace

bool have_openblas() {
#ifdef KTUNE_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

bool have_onednn() {
#ifdef KTUNE_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

Baselines make_baselines(const BenchData& data, int threads) {
  if (threads < 1) throw Error("baselines need at least 1 thread, got " + std::to_string(threads));
  Baselines b;
  const Workload& w = data.workload;
  switch (w.op()) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul:
    case OpKind::kDense:
#ifdef KTUNE_HAVE_OPENBLAS
      openblas_set_num_threads(threads);
      if (w.op() == OpKind::kBatchMatmul) {
        b.contenders.push_back(std::make_unique<OpenBlasBatchSgemm>(data));
      } else {
        b.contenders.push_back(std::make_unique<OpenBlasSgemm>(data));
      }
      if (w.op() == OpKind::kDense && w.dense().batch == 1) {
        b.contenders.push_back(std::make_unique<OpenBlasSgemv>(data));
      }
#else
      b.missing.push_back(missing_library("OpenBLAS", "libopenblas-dev"));
#endif
#ifdef KTUNE_HAVE_DNNL
      omp_set_num_threads(threads);
      try {
        b.contenders.push_back(std::make_unique<OneDnnMatmul>(data));
      } catch (const dnnl::error& e) {
        throw Error("oneDNN refused " + w.key() + ": " + e.what());
      }
#else
      b.missing.push_back(missing_library("oneDNN", "libdnnl-dev"));
#endif
      break;
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d:
#ifdef KTUNE_HAVE_DNNL
      // oneDNN's OpenMP runtime reads the thread count when a primitive is
      // created and run; ktune's kernels name theirs in every parallel region.
      omp_set_num_threads(threads);
      try {
        b.contenders.push_back(std::make_unique<OneDnnConv>(data, /*plain_nchw=*/false));
      } catch (const dnnl::error& e) {
        throw Error("oneDNN refused " + w.key() + ": " + e.what());
      }
      // The NCHW variant is for information only: without it the bench
      // still has its baseline.
      try {
        b.contenders.push_back(std::make_unique<OneDnnConv>(data, /*plain_nchw=*/true));
      } catch (const dnnl::error& e) {
        b.missing.push_back(std::string("oneDNN has no plain-NCHW convolution for this shape: ") +
                            e.what());
      }
#else
      b.missing.push_back(missing_library("oneDNN", "libdnnl-dev"));
#endif
      break;
  }
  return b;
}

}  // namespace ktune
