#include "cuda/nvrtc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace ktune {

const Nvrtc* Nvrtc::get(std::string* why) {
  static std::once_flag once;
  static Nvrtc* instance = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("KTUNE_NVRTC")) candidates.push_back(env);
    for (const char* name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}) {
      candidates.push_back(name);
      candidates.push_back(std::string("/usr/local/cuda/lib64/") + name);
    }
    std::string tried;
    for (const std::string& c : candidates) {
      void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        tried += (tried.empty() ? "" : ", ") + c;
        continue;
      }
      auto* n = new Nvrtc();
      n->handle_ = h;
      n->path_ = c;
      auto sym = [&](const char* name) { return dlsym(h, name); };
      n->create_ = reinterpret_cast<decltype(n->create_)>(sym("nvrtcCreateProgram"));
      n->compile_ = reinterpret_cast<decltype(n->compile_)>(sym("nvrtcCompileProgram"));
      n->log_size_ = reinterpret_cast<decltype(n->log_size_)>(sym("nvrtcGetProgramLogSize"));
      n->log_ = reinterpret_cast<decltype(n->log_)>(sym("nvrtcGetProgramLog"));
      n->cubin_size_ = reinterpret_cast<decltype(n->cubin_size_)>(sym("nvrtcGetCUBINSize"));
      n->cubin_ = reinterpret_cast<decltype(n->cubin_)>(sym("nvrtcGetCUBIN"));
      n->destroy_ = reinterpret_cast<decltype(n->destroy_)>(sym("nvrtcDestroyProgram"));
      n->error_string_ = reinterpret_cast<decltype(n->error_string_)>(sym("nvrtcGetErrorString"));
      n->version_ = reinterpret_cast<decltype(n->version_)>(sym("nvrtcVersion"));
      if (!n->create_ || !n->compile_ || !n->log_size_ || !n->log_ || !n->cubin_size_ || !n->cubin_ || !n->destroy_ ||
          !n->error_string_ || !n->version_) {
        failure = c + " lacks NVRTC's functions (nvrtcGetCUBIN needs CUDA 11.1 or newer)";
        dlclose(h);
        delete n;
        return;
      }
      instance = n;
      return;
    }
    failure = "NVRTC not found (tried " + tried + "); install the CUDA toolkit or set KTUNE_NVRTC";
  });
  if (!instance && why) *why = failure;
  return instance;
}

NvrtcResult Nvrtc::compile(const std::string& source, const std::string& arch,
                           const std::vector<std::string>& extra_options) const {
  NvrtcResult r;
  void* prog = nullptr;
  int rc = create_(&prog, source.c_str(), "ktune_kernel.cu", 0, nullptr, nullptr);
  if (rc != 0) {
    r.log = std::string("nvrtcCreateProgram: ") + error_string_(rc);
    return r;
  }
  std::vector<std::string> options = {"--gpu-architecture=" + arch, "-std=c++17"};
  options.insert(options.end(), extra_options.begin(), extra_options.end());
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  rc = compile_(prog, static_cast<int>(argv.size()), argv.data());
  size_t size = 0;
  if (log_size_(prog, &size) == 0 && size > 1) {
    r.log.resize(size);
    log_(prog, r.log.data());
    r.log.resize(size - 1);
  }
  if (rc != 0) {
    r.log = std::string("nvrtcCompileProgram: ") + error_string_(rc) + "\n" + r.log;
  } else if (cubin_size_(prog, &size) == 0 && size > 0) {
    r.cubin.resize(size);
    r.ok = cubin_(prog, r.cubin.data()) == 0;
  } else {
    r.log += "\nno cubin (is " + arch + " a real architecture?)";
  }
  destroy_(&prog);
  return r;
}

std::string Nvrtc::version() const {
  int major = 0, minor = 0;
  version_(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace ktune
