#include "measure/baselines.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

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
      case OpKind::kBatchMatmul: {
        const BatchMatmulShape& s = w.batch_matmul();
        for (int64_t b = 0; b < s.b; ++b) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.m, s.n, s.k, 1.0f,
                      input(0) + b * s.m * s.k, s.k, input(1) + b * s.k * s.n, s.n, 0.0f,
                      c + b * s.m * s.n, s.n);
        }
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

class OneDnnConv : public Contender {
 public:
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;

  OneDnnConv(const BenchData& data, bool plain_nchw)
      : plain_nchw_(plain_nchw), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
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
    src_ = in_layout(user_src, data.input_pointers[0], pd.src_desc());
    weights_ = in_layout(user_wei, data.input_pointers[1], pd.weights_desc());
    dst_ = dnnl::memory(pd.dst_desc(), engine_);
    conv_ = dnnl::convolution_forward(pd);
  }

  std::string library() const override { return "onednn"; }
  std::string variant() const override { return plain_nchw_ ? "nchw" : "blocked"; }
  bool primary() const override { return !plain_nchw_; }
  std::string timed_transforms() const override {
    if (plain_nchw_) {
      return "src/dst in plain NCHW: any activation transform oneDNN (" + impl_ +
             ") does is timed; weights reordered once, untimed";
    }
    return "none: oneDNN (" + impl_ + ") chose its layouts; src/weights/dst reorders untimed";
  }
  void run() override {
    conv_.execute(stream_, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}});
    stream_.wait();
  }
  void read_output(float* output) override {
    dnnl::memory user(user_dst_, engine_, output);
    dnnl::reorder(dst_, user).execute(stream_, dst_, user);
    stream_.wait();
  }

 private:
  // The operand in the primitive's layout: data itself when the layouts
  // match, else a reordered copy (made here, outside any timing).
  dnnl::memory in_layout(const dnnl::memory::desc& user_desc, const float* data,
                         const dnnl::memory::desc& wanted) {
    // oneDNN takes a non-const handle; the reorder only reads it.
    dnnl::memory user(user_desc, engine_, const_cast<float*>(data));
    if (wanted == user_desc) return user;
    dnnl::memory copy(wanted, engine_);
    dnnl::reorder(user, copy).execute(stream_, user, copy);
    stream_.wait();
    return copy;
  }

  bool plain_nchw_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::memory::desc user_dst_;
  dnnl::memory src_, weights_, dst_;
  dnnl::convolution_forward conv_;
  std::string impl_;
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
      b.contenders.push_back(std::make_unique<OpenBlasSgemm>(data));
      if (w.op() == OpKind::kDense && w.dense().batch == 1) {
        b.contenders.push_back(std::make_unique<OpenBlasSgemv>(data));
      }
#else
      b.missing.push_back(missing_library("OpenBLAS", "libopenblas-dev"));
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
