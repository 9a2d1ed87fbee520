#include "cuda/cuda_run.h"
#include "cuda/driver_api.h"

#include <dlfcn.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace ktune {

using cuda_detail::CUdeviceptr;
using cuda_detail::Driver;

struct CudaKernelRun::Impl {
  const Driver& d = Driver::get();
  CudaLaunchSpec spec;
  cuda_detail::CUcontext ctx = nullptr;
  cuda_detail::CUmodule module = nullptr;
  cuda_detail::CUfunction function = nullptr;
  std::vector<CUdeviceptr> buffers;  // inputs, then the output
  std::vector<void*> args;
  size_t output_elements = 0;
  cuda_detail::CUevent start = nullptr, stop = nullptr;
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
    cuda_detail::CUdevice dev = 0;
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
