// KernelLibrary: a built kernel artifact loaded into this process.
//
// The one place that knows how to use a shared object exporting the kernel
// ABI (codegen_cpp.h): dlopen it (RTLD_NOW | RTLD_LOCAL, so a missing symbol
// fails here and two artifacts never see each other's symbols), check its ABI
// version, own its workspace (64-byte aligned, filled with NaN so a kernel
// that reads what it never wrote shows up in its output), prepare once, run.
// Used by the sandboxed runner, by `ktune bench` and by the tests.
//
// Loading runs the artifact's code in this process: only load artifacts this
// build produced (a crashing candidate belongs in ktune-runner, not here).
// Not thread-safe: one caller at a time per KernelLibrary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace ktune {

class KernelLibrary {
 public:
  // Workspaces above this many floats (8 GiB) are refused as a broken artifact.
  static constexpr int64_t kMaxWorkspaceFloats = int64_t{1} << 31;

  // Throws ktune::Error naming the artifact if it cannot be loaded, lacks a
  // kernel ABI symbol, has another ABI version than kKernelAbiVersion, or
  // asks for a workspace outside 0..kMaxWorkspaceFloats.
  explicit KernelLibrary(const std::string& artifact_path);
  ~KernelLibrary();
  KernelLibrary(const KernelLibrary&) = delete;
  KernelLibrary& operator=(const KernelLibrary&) = delete;

  const std::string& path() const { return path_; }
  int abi_version() const { return abi_version_; }
  int64_t workspace_floats() const { return workspace_floats_; }
  float* workspace() { return workspace_.get(); }

  // ktune_prepare: once, before the first run (packs constant operands into
  // the workspace). inputs are in Workload::inputs() order.
  void prepare(const float* const* inputs);
  // ktune_run: the timed computation; output has output().elements() floats.
  void run(const float* const* inputs, float* output);

 private:
  struct FreeDeleter {
    void operator()(float* p) const;
  };
  template <typename F>
  F symbol(const char* name);

  std::string path_;
  void* handle_ = nullptr;
  int abi_version_ = 0;
  int64_t workspace_floats_ = 0;
  void (*prepare_)(const float* const*, float*) = nullptr;
  void (*run_)(const float* const*, float*, float*) = nullptr;
  std::unique_ptr<float, FreeDeleter> workspace_;
};

}  // namespace ktune
