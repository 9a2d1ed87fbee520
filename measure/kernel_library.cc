#include "measure/kernel_library.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"

namespace ktune {

void KernelLibrary::FreeDeleter::operator()(float* p) const { std::free(p); }

template <typename F>
F KernelLibrary::symbol(const char* name) {
  void* p = dlsym(handle_, name);
  if (!p) {
    throw Error("artifact '" + path_ + "' does not export " + name + " (not a ktune kernel?)");
  }
  return reinterpret_cast<F>(p);
}

// A threaded kernel brings the compiler's OpenMP runtime (libgomp) with it.
// In a process that does not link it (the test programs, ktune's own tools)
// that runtime would be initialised at every kernel's load, starting its
// thread pool again, and unmapped at every kernel's unload, dropping the
// state its initialiser allocated (LeakSanitizer reports it). Once loaded it
// stays: a no-op where it is not loaded or already part of the process.
namespace {
void pin_openmp_runtime() {
  if (dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) == nullptr) dlerror();
}
}  // namespace

KernelLibrary::KernelLibrary(const std::string& artifact_path) : path_(artifact_path) {
  handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) throw Error(std::string("cannot load artifact: ") + dlerror());
  pin_openmp_runtime();
  try {
    auto abi_version = symbol<int (*)()>("ktune_abi_version");
    auto workspace_floats = symbol<int64_t (*)()>("ktune_workspace_floats");
    prepare_ = symbol<void (*)(const float* const*, float*)>("ktune_prepare");
    run_ = symbol<void (*)(const float* const*, float*, float*)>("ktune_run");
    abi_version_ = abi_version();
    if (abi_version_ != kKernelAbiVersion) {
      throw Error("artifact '" + path_ + "' has kernel ABI version " +
                  std::to_string(abi_version_) + ", this build expects version " +
                  std::to_string(kKernelAbiVersion));
    }
    workspace_floats_ = workspace_floats();
    if (workspace_floats_ < 0 || workspace_floats_ > kMaxWorkspaceFloats) {
      throw Error("artifact '" + path_ + "' asks for a workspace of " +
                  std::to_string(workspace_floats_) + " floats; accepted: 0 to 2^31");
    }
    // Rounded up to whole cache lines, as aligned_alloc requires; never empty.
    const size_t floats = std::max<size_t>(16, (static_cast<size_t>(workspace_floats_) + 15) / 16 * 16);
    workspace_.reset(static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))));
    if (!workspace_) {
      throw Error("cannot allocate a workspace of " + std::to_string(floats) + " floats for '" +
                  path_ + "'");
    }
    std::fill_n(workspace_.get(), floats, std::nanf(""));
  } catch (...) {
    dlclose(handle_);
    throw;
  }
}

KernelLibrary::~KernelLibrary() {
  workspace_.reset();
  dlclose(handle_);
}

void KernelLibrary::prepare(const float* const* inputs) { prepare_(inputs, workspace_.get()); }

void KernelLibrary::run(const float* const* inputs, float* output) {
  run_(inputs, output, workspace_.get());
}

}  // namespace ktune
