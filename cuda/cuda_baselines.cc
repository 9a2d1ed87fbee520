#include "cuda/cuda_baselines.h"

#include <algorithm>
#include <functional>

#include "cuda/driver_api.h"

#ifdef KTUNE_CHECK_CUDA_PROTOTYPES
#include <cublas_v2.h>
#include <cudnn.h>
#endif

namespace ktune {

namespace {

using cuda_detail::CUdeviceptr;
using cuda_detail::Driver;

// cuBLAS (cublas_v2.h).
struct Cublas {
  int (*create)(void**) = nullptr;
  int (*destroy)(void*) = nullptr;
  int (*sgemm)(void*, int, int, int, int, int, const float*, const float*, int, const float*, int, const float*,
               float*, int) = nullptr;
  int (*sgemm_strided)(void*, int, int, int, int, int, const float*, const float*, int, long long, const float*, int,
                       long long, const float*, float*, int, long long, int) = nullptr;
};

// cuDNN's legacy convolution API (cudnn.h), still in cuDNN 9.
struct Cudnn {
  int (*create)(void**) = nullptr;
  int (*create_tensor)(void**) = nullptr;
  int (*set_tensor4d)(void*, int, int, int, int, int, int) = nullptr;
  int (*create_filter)(void**) = nullptr;
  int (*set_filter4d)(void*, int, int, int, int, int, int) = nullptr;
  int (*create_conv)(void**) = nullptr;
  int (*set_conv2d)(void*, int, int, int, int, int, int, int, int) = nullptr;
  int (*set_groups)(void*, int) = nullptr;
  int (*find_algo)(void*, void*, void*, void*, void*, int, int*, void*) = nullptr;
  int (*workspace_size)(void*, void*, void*, void*, void*, int, size_t*) = nullptr;
  int (*forward)(void*, const void*, void*, const void*, void*, const void*, void*, int, void*, size_t, const void*,
                 void*, void*) = nullptr;
};

struct AlgoPerf {  // cudnnConvolutionFwdAlgoPerf_t
  int algo;
  int status;
  float time;
  size_t memory;
  int determinism;
  int math_type;
  int reserved[3];
};

#ifdef KTUNE_CHECK_CUDA_PROTOTYPES
// The run-time loaded signatures match the real headers.
static_assert(sizeof(AlgoPerf) == sizeof(cudnnConvolutionFwdAlgoPerf_t));
static_assert(sizeof(cublasOperation_t) == sizeof(int) && CUBLAS_OP_N == 0 && CUBLAS_OP_T == 1);
static_assert(CUDNN_TENSOR_NCHW == 0 && CUDNN_DATA_FLOAT == 0 && CUDNN_CROSS_CORRELATION == 1);
#endif

void* open_first(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (void* h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return h;
    if (void* h = dlopen((std::string("/usr/local/cuda/lib64/") + n).c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
  }
  return nullptr;
}

template <typename T>
bool load(void* h, T& fn, const char* name) {
  fn = reinterpret_cast<T>(dlsym(h, name));
  return fn != nullptr;
}

const Cublas* cublas() {
  static const Cublas* c = [] () -> const Cublas* {
    void* h = open_first({"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"});
    if (!h) return nullptr;
    static Cublas b;
    if (!load(h, b.create, "cublasCreate_v2") || !load(h, b.destroy, "cublasDestroy_v2") ||
        !load(h, b.sgemm, "cublasSgemm_v2") || !load(h, b.sgemm_strided, "cublasSgemmStridedBatched")) {
      return nullptr;
    }
    return &b;
  }();
  return c;
}

const Cudnn* cudnn() {
  static const Cudnn* c = [] () -> const Cudnn* {
    void* h = open_first({"libcudnn.so", "libcudnn.so.9", "libcudnn.so.8"});
    if (!h) return nullptr;
    static Cudnn d;
    if (!load(h, d.create, "cudnnCreate") || !load(h, d.create_tensor, "cudnnCreateTensorDescriptor") ||
        !load(h, d.set_tensor4d, "cudnnSetTensor4dDescriptor") || !load(h, d.create_filter, "cudnnCreateFilterDescriptor") ||
        !load(h, d.set_filter4d, "cudnnSetFilter4dDescriptor") || !load(h, d.create_conv, "cudnnCreateConvolutionDescriptor") ||
        !load(h, d.set_conv2d, "cudnnSetConvolution2dDescriptor") || !load(h, d.set_groups, "cudnnSetConvolutionGroupCount") ||
        !load(h, d.find_algo, "cudnnFindConvolutionForwardAlgorithm") ||
        !load(h, d.workspace_size, "cudnnGetConvolutionForwardWorkspaceSize") ||
        !load(h, d.forward, "cudnnConvolutionForward")) {
      return nullptr;
    }
    return &d;
  }();
  return c;
}

// Device copies of the inputs and an output; freed on scope exit.
struct DeviceData {
  const Driver& d = Driver::get();
  std::vector<CUdeviceptr> in;
  CUdeviceptr out = 0, workspace = 0;
  size_t out_elements = 0;
  DeviceData(int device, const std::vector<std::vector<float>>& inputs, size_t output_elements) : out_elements(output_elements) {
    d.check(d.init(0), "cuInit");
    cuda_detail::CUdevice dev = 0;
    d.check(d.device_get(&dev, device), "cuDeviceGet");
    cuda_detail::CUcontext ctx = nullptr;
    d.check(d.primary_ctx_retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    d.check(d.ctx_set_current(ctx), "cuCtxSetCurrent");
    for (const auto& v : inputs) {
      CUdeviceptr p = 0;
      d.check(d.mem_alloc(&p, std::max<size_t>(4, v.size() * 4)), "cuMemAlloc");
      in.push_back(p);
      d.check(d.memcpy_htod(p, v.data(), v.size() * 4), "cuMemcpyHtoD");
    }
    d.check(d.mem_alloc(&out, std::max<size_t>(4, output_elements * 4)), "cuMemAlloc");
  }
  ~DeviceData() {
    for (CUdeviceptr p : in) d.mem_free(p);
    if (out) d.mem_free(out);
    if (workspace) d.mem_free(workspace);
  }
  float* ptr(CUdeviceptr p) const { return reinterpret_cast<float*>(static_cast<uintptr_t>(p)); }
};

// Timing of call() with CUDA events (time_batches), after one untimed call.
void time_rounds(const Driver& d, const std::function<void()>& call, int rounds, double min_sample_s, GpuTiming& t) {
  cuda_detail::CUevent start = nullptr, stop = nullptr;
  d.check(d.event_create(&start, 0), "cuEventCreate");
  d.check(d.event_create(&stop, 0), "cuEventCreate");
  auto batch = [&](int n) {
    d.check(d.event_record(start, nullptr), "cuEventRecord");
    for (int i = 0; i < n; ++i) call();
    d.check(d.event_record(stop, nullptr), "cuEventRecord");
    d.check(d.event_synchronize(stop), "cuEventSynchronize");
    float ms = 0;
    d.check(d.event_elapsed(&ms, start, stop), "cuEventElapsedTime");
    return ms / 1000.0;
  };
  call();
  d.check(d.ctx_synchronize(), "cuCtxSynchronize");
  t.seconds = time_batches(batch, rounds, min_sample_s);
  d.event_destroy(start);
  d.event_destroy(stop);
}

}  // namespace

std::vector<double> time_batches(const std::function<double(int)>& batch_seconds, int rounds, double min_sample_s) {
  int n = 1;
  while (batch_seconds(n) < min_sample_s && n < (1 << 24)) n *= 2;
  std::vector<double> per_call;
  for (int r = 0; r < rounds; ++r) per_call.push_back(batch_seconds(n) / n);
  return per_call;
}

double GpuTiming::median() const {
  if (seconds.empty()) return 0;
  std::vector<double> s = seconds;
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

GpuTiming time_vendor(const Workload& w, int device, const std::vector<std::vector<float>>& inputs, int rounds,
                      double min_sample_s) {
  GpuTiming t;
  const size_t out_n = static_cast<size_t>(w.output().elements());
  const float one = 1.0f, zero = 0.0f;
  if (w.op() == OpKind::kMatmul || w.op() == OpKind::kDense || w.op() == OpKind::kBatchMatmul) {
    const Cublas* b = cublas();
    if (!b) {
      t.skipped = "cuBLAS not found (libcublas.so)";
      return t;
    }
    if (w.op() == OpKind::kDense && w.dense().bias) {
      t.skipped = "cuBLAS has no fused bias: dense with bias is not compared";
      return t;
    }
    DeviceData dd(device, inputs, out_n);
    void* handle = nullptr;
    if (b->create(&handle) != 0) throw CudaError("cublasCreate failed");
    std::function<void()> call;
    // Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
    if (w.op() == OpKind::kMatmul) {
      const auto& s = w.matmul();
      call = [&, s] {
        b->sgemm(handle, 0, 0, static_cast<int>(s.n), static_cast<int>(s.m), static_cast<int>(s.k), &one, dd.ptr(dd.in[1]),
                 static_cast<int>(s.n), dd.ptr(dd.in[0]), static_cast<int>(s.k), &zero, dd.ptr(dd.out), static_cast<int>(s.n));
      };
    } else if (w.op() == OpKind::kDense) {
      const auto& s = w.dense();  // Y^T[out,batch] = W[out,in] X^T[in,batch]
      call = [&, s] {
        b->sgemm(handle, 1, 0, static_cast<int>(s.out), static_cast<int>(s.batch), static_cast<int>(s.in), &one,
                 dd.ptr(dd.in[1]), static_cast<int>(s.in), dd.ptr(dd.in[0]), static_cast<int>(s.in), &zero,
                 dd.ptr(dd.out), static_cast<int>(s.out));
      };
    } else {
      const auto& s = w.batch_matmul();
      call = [&, s] {
        b->sgemm_strided(handle, 0, 0, static_cast<int>(s.n), static_cast<int>(s.m), static_cast<int>(s.k), &one,
                         dd.ptr(dd.in[1]), static_cast<int>(s.n), s.k * s.n, dd.ptr(dd.in[0]), static_cast<int>(s.k),
                         s.m * s.k, &zero, dd.ptr(dd.out), static_cast<int>(s.n), s.m * s.n, static_cast<int>(s.b));
      };
    }
    time_rounds(dd.d, call, rounds, min_sample_s, t);
    t.output.resize(out_n);
    dd.d.check(dd.d.memcpy_dtoh(t.output.data(), dd.out, out_n * 4), "cuMemcpyDtoH");
    b->destroy(handle);
    t.library = "cublas sgemm";
    return t;
  }
  const Cudnn* c = cudnn();
  if (!c) {
    t.skipped = "cuDNN not found (libcudnn.so)";
    return t;
  }
  const Conv2dShape& s = w.conv2d();
  if (s.pad_top != s.pad_bottom || s.pad_left != s.pad_right) {
    t.skipped = "cuDNN takes symmetric padding only";
    return t;
  }
  const bool dw = w.op() == OpKind::kDepthwiseConv2d;
  DeviceData dd(device, inputs, out_n);
  void *handle = nullptr, *x = nullptr, *y = nullptr, *f = nullptr, *conv = nullptr;
  auto ok = [](int rc, const char* what) {
    if (rc != 0) throw CudaError(std::string(what) + " failed with cuDNN status " + std::to_string(rc));
  };
  ok(c->create(&handle), "cudnnCreate");
  ok(c->create_tensor(&x), "cudnnCreateTensorDescriptor");
  ok(c->create_tensor(&y), "cudnnCreateTensorDescriptor");
  ok(c->create_filter(&f), "cudnnCreateFilterDescriptor");
  ok(c->create_conv(&conv), "cudnnCreateConvolutionDescriptor");
  auto i32 = [](int64_t v) { return static_cast<int>(v); };
  ok(c->set_tensor4d(x, 0, 0, i32(s.n), i32(s.c), i32(s.h), i32(s.w)), "cudnnSetTensor4dDescriptor");
  ok(c->set_tensor4d(y, 0, 0, i32(s.n), i32(s.k), i32(s.out_h()), i32(s.out_w())), "cudnnSetTensor4dDescriptor");
  ok(c->set_filter4d(f, 0, 0, i32(s.k), dw ? 1 : i32(s.c), i32(s.r), i32(s.s)), "cudnnSetFilter4dDescriptor");
  ok(c->set_conv2d(conv, i32(s.pad_top), i32(s.pad_left), i32(s.stride_h), i32(s.stride_w), i32(s.dilation_h),
                   i32(s.dilation_w), 1, 0),
     "cudnnSetConvolution2dDescriptor");
  if (dw) ok(c->set_groups(conv, i32(s.c)), "cudnnSetConvolutionGroupCount");
  AlgoPerf perf[16] = {};
  int found = 0;
  ok(c->find_algo(handle, x, f, conv, y, 16, &found, perf), "cudnnFindConvolutionForwardAlgorithm");
  int algo = -1;
  for (int i = 0; i < found && algo < 0; ++i) {
    if (perf[i].status == 0) algo = perf[i].algo;  // fastest first
  }
  if (algo < 0) {
    t.skipped = "cuDNN found no algorithm";
    return t;
  }
  size_t ws = 0;
  ok(c->workspace_size(handle, x, f, conv, y, algo, &ws), "cudnnGetConvolutionForwardWorkspaceSize");
  if (ws > 0) dd.d.check(dd.d.mem_alloc(&dd.workspace, ws), "cuMemAlloc");
  auto call = [&] {
    c->forward(handle, &one, x, dd.ptr(dd.in[0]), f, dd.ptr(dd.in[1]), conv, algo, dd.ptr(dd.workspace), ws, &zero, y,
               dd.ptr(dd.out));
  };
  time_rounds(dd.d, call, rounds, min_sample_s, t);
  t.output.resize(out_n);
  dd.d.check(dd.d.memcpy_dtoh(t.output.data(), dd.out, out_n * 4), "cuMemcpyDtoH");
  t.library = "cudnn algo " + std::to_string(algo);
  return t;
}

}  // namespace ktune
