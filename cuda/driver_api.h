// The CUDA driver API functions ktune uses, loaded at run time (internal to cuda/).
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>

#include "cuda/cuda_run.h"

namespace ktune::cuda_detail {

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

}  // namespace ktune::cuda_detail
