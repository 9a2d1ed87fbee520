// NVRTC, loaded at run time (dlopen), so ktune builds and runs where the
// CUDA toolkit is absent and simply says it cannot compile for the GPU.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ktune {

struct NvrtcResult {
  bool ok = false;
  std::string cubin;  // the binary for the requested arch when ok
  std::string log;    // the compiler's log (errors when !ok)
};

class Nvrtc {
 public:
  // The library, searched as $KTUNE_NVRTC, libnvrtc.so(.13/.12/.11.2) on the
  // loader path, then /usr/local/cuda/lib64; nullptr (and *why) if none loads.
  static const Nvrtc* get(std::string* why = nullptr);

  // Compiles CUDA C (no #include) to a cubin for arch ("sm_90"). Never throws
  // for bad source: the log says what is wrong.
  NvrtcResult compile(const std::string& source, const std::string& arch,
                      const std::vector<std::string>& extra_options = {}) const;
  std::string version() const;  // "13.0"
  std::string path() const { return path_; }

 private:
  Nvrtc() = default;
  void* handle_ = nullptr;
  std::string path_;
  int (*create_)(void**, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
  int (*compile_)(void*, int, const char* const*) = nullptr;
  int (*log_size_)(void*, size_t*) = nullptr;
  int (*log_)(void*, char*) = nullptr;
  int (*cubin_size_)(void*, size_t*) = nullptr;
  int (*cubin_)(void*, char*) = nullptr;
  int (*destroy_)(void**) = nullptr;
  const char* (*error_string_)(int) = nullptr;
  int (*version_)(int*, int*) = nullptr;
};

}  // namespace ktune
