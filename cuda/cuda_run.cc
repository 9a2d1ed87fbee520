#include "cuda/cuda_run.h"

#include <dlfcn.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace ktune {

namespace {

using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUevent = void*;
using CUdeviceptr = unsigned long long;

// The driver API functions this file uses.
struct Driver {
  CUresult (*init)(unsigned) = nullptr;
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*primary_ctx_retain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*ctx_set_current)(CUcontext) = nullptr;
  CUresult (*module_load_data)(CUmodule*, const void*) = nullptr;
  CUresult (*module_unload)(CUmodule) = nullptr;
  CUresult (*module_get_function)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*mem_alloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*mem_free)(CUdeviceptr) = nullptr;
  CUresult (*memcpy_htod)(CUdeviceptr, const void*, size_t) = nullptr;
  CUresult (*memcpy_dtoh)(void*, CUdeviceptr, size_t) = nullptr;
  CUresult (*memset_d32)(CUdeviceptr, unsigned, size_t) = nullptr;
  CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**,
                     void**) = nullptr;
  CUresult (*ctx_synchronize)() = nullptr;
  CUresult (*event_create)(CUevent*, unsigned) = nullptr;
  CUresult (*event_record)(CUevent, void*) = nullptr;
  CUresult (*event_synchronize)(CUevent) = nullptr;
  CUresult (*event_elapsed)(float*, CUevent, CUevent) = nullptr;
  CUresult (*event_destroy)(CUevent) = nullptr;
  CUresult (*error_string)(CUresult, const char**) = nullptr;

  static const Driver& get() {
    static const Driver d = [] {
      Driver d;
      void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
      if (!h) throw CudaError("no CUDA driver (libcuda.so.1 not found)");
      auto sym = [&](std::initializer_list<const char*> names) {
        for (const char* n : names) {
          if (void* p = dlsym(h, n)) return p;
        }
        throw CudaError(std::string("the CUDA driver lacks ") + *names.begin());
      };
#define KT_SYM(field, ...) d.field = reinterpret_cast<decltype(d.field)>(sym({__VA_ARGS__}))
      KT_SYM(init, "cuInit");
      KT_SYM(device_get, "cuDeviceGet");
      KT_SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain");
      KT_SYM(ctx_set_current, "cuCtxSetCurrent");
      KT_SYM(module_load_data, "cuModuleLoadData");
      KT_SYM(module_unload, "cuModuleUnload");
      KT_SYM(module_get_function, "cuModuleGetFunction");
      KT_SYM(mem_alloc, "cuMemAlloc_v2");
      KT_SYM(mem_free, "cuMemFree_v2");
      KT_SYM(memcpy_htod, "cuMemcpyHtoD_v2");
      KT_SYM(memcpy_dtoh, "cuMemcpyDtoH_v2");
      KT_SYM(memset_d32, "cuMemsetD32_v2");
      KT_SYM(launch, "cuLaunchKernel");
      KT_SYM(ctx_synchronize, "cuCtxSynchronize");
      KT_SYM(event_create, "cuEventCreate");
      KT_SYM(event_record, "cuEventRecord");
      KT_SYM(event_synchronize, "cuEventSynchronize");
      KT_SYM(event_elapsed, "cuEventElapsedTime_v2", "cuEventElapsedTime");
      KT_SYM(event_destroy, "cuEventDestroy_v2", "cuEventDestroy");
      KT_SYM(error_string, "cuGetErrorString");
#undef KT_SYM
      return d;
    }();
    return d;
  }

  void check(CUresult rc, const char* call) const {
    if (rc == 0) return;
    const char* text = nullptr;
    error_string(rc, &text);
    throw CudaError(std::string(call) + " failed: CUDA error " + std::to_string(rc) + (text ? std::string(" (") + text + ")" : ""));
  }
};

}  // namespace

struct CudaKernelRun::Impl {
  const Driver& d = Driver::get();
  CudaLaunchSpec spec;
  CUcontext ctx = nullptr;
  CUmodule module = nullptr;
  CUfunction function = nullptr;
  std::vector<CUdeviceptr> buffers;  // inputs, then the output
  std::vector<void*> args;
  size_t output_elements = 0;
  CUevent start = nullptr, stop = nullptr;
  void launch() {
    d.check(d.launch(function, static_cast<unsigned>(spec.grid[0]), static_cast<unsigned>(spec.grid[1]),
                     static_cast<unsigned>(spec.grid[2]), static_cast<unsigned>(spec.block[0]),
                     static_cast<unsigned>(spec.block[1]), static_cast<unsigned>(spec.block[2]), 0, nullptr,
                     args.data(), nullptr),
            "cuLaunchKernel");
  }
};

CudaKernelRun::CudaKernelRun(const CudaLaunchSpec& spec, const std::vector<std::vector<float>>& inputs,
                             size_t output_elements)
    : impl_(new Impl) {
  Impl& m = *impl_;
  const Driver& d = m.d;
  m.spec = spec;
  m.output_elements = output_elements;
  try {
    std::ifstream in(spec.cubin_path, std::ios::binary);
    if (!in) throw CudaError("cannot read " + spec.cubin_path);
    std::stringstream cubin;
    cubin << in.rdbuf();
    const std::string image = cubin.str();
    d.check(d.init(0), "cuInit");
    CUdevice dev = 0;
    d.check(d.device_get(&dev, spec.device), "cuDeviceGet");
    d.check(d.primary_ctx_retain(&m.ctx, dev), "cuDevicePrimaryCtxRetain");
    d.check(d.ctx_set_current(m.ctx), "cuCtxSetCurrent");
    d.check(d.module_load_data(&m.module, image.data()), "cuModuleLoadData");
    d.check(d.module_get_function(&m.function, m.module, spec.kernel.c_str()), "cuModuleGetFunction");
    for (const auto& v : inputs) {
      CUdeviceptr p = 0;
      d.check(d.mem_alloc(&p, std::max<size_t>(4, v.size() * 4)), "cuMemAlloc");
      m.buffers.push_back(p);
      d.check(d.memcpy_htod(p, v.data(), v.size() * 4), "cuMemcpyHtoD");
    }
    CUdeviceptr out = 0;
    d.check(d.mem_alloc(&out, std::max<size_t>(4, output_elements * 4)), "cuMemAlloc");
    m.buffers.push_back(out);
    d.check(d.memset_d32(out, 0x7fc00000u, output_elements), "cuMemsetD32");  // NaN: unwritten outputs show
    for (CUdeviceptr& p : m.buffers) m.args.push_back(&p);
    d.check(d.event_create(&m.start, 0), "cuEventCreate");
    d.check(d.event_create(&m.stop, 0), "cuEventCreate");
  } catch (...) {
    delete impl_;
    throw;
  }
}

CudaKernelRun::~CudaKernelRun() {
  // After a sticky error these may fail too; the process is replaced anyway.
  Impl& m = *impl_;
  if (m.start) m.d.event_destroy(m.start);
  if (m.stop) m.d.event_destroy(m.stop);
  for (CUdeviceptr p : m.buffers) m.d.mem_free(p);
  if (m.module) m.d.module_unload(m.module);
  delete impl_;
}

void CudaKernelRun::run_once() {
  impl_->launch();
  impl_->d.check(impl_->d.ctx_synchronize(), "the kernel (cuCtxSynchronize)");
}

double CudaKernelRun::time_calls(int calls) {
  Impl& m = *impl_;
  m.d.check(m.d.event_record(m.start, nullptr), "cuEventRecord");
  for (int i = 0; i < calls; ++i) m.launch();
  m.d.check(m.d.event_record(m.stop, nullptr), "cuEventRecord");
  m.d.check(m.d.event_synchronize(m.stop), "the kernel (cuEventSynchronize)");
  float ms = 0;
  m.d.check(m.d.event_elapsed(&ms, m.start, m.stop), "cuEventElapsedTime");
  return ms / 1000.0;
}

std::vector<float> CudaKernelRun::output() const {
  std::vector<float> out(impl_->output_elements);
  impl_->d.check(impl_->d.memcpy_dtoh(out.data(), impl_->buffers.back(), out.size() * 4), "cuMemcpyDtoH");
  return out;
}

}  // namespace ktune
