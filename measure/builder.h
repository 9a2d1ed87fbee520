// Builder: generated C++ source -> shared object, with the system compiler.
//
// The compiler runs as a child process (argv, never a shell) with a timeout;
// artifacts are cached on disk keyed by a hash of the source, compiler and
// flags, so the same candidate is never compiled twice. build_all compiles in
// parallel. A Builder is safe to use from several threads.
#pragma once

#include <string>
#include <vector>

#include "measure/measure.h"

namespace ktune {

struct BuildResult {
  std::string artifact_path;  // the .so, when error == kNone
  MeasureError error = MeasureError::kNone;  // kCompileError or kCompileTimeout
  std::string message;        // compiler diagnostics (truncated) on error
  double seconds = 0;
  bool cached = false;
};

class Builder {
 public:
  // cache_dir is created if missing. parallel <= 0: one job per core.
  Builder(std::string cache_dir, int parallel = 0);

  // Compiles with target.cpu.compiler and target.cpu.flags, plus the fixed
  // flags the kernel ABI needs (-std=c++17 -shared -fPIC -fopenmp).
  BuildResult build(const std::string& source, const CpuTarget& target, double timeout_s) const;
  std::vector<BuildResult> build_all(const std::vector<std::string>& sources,
                                     const CpuTarget& target, double timeout_s) const;

  const std::string& cache_dir() const { return cache_dir_; }

 private:
  std::string cache_dir_;
  int parallel_;
};

// The default artifact cache: $KTUNE_CACHE_DIR, else $XDG_CACHE_HOME/ktune,
// else ~/.cache/ktune, else /tmp/ktune-cache-<uid>.
std::string default_cache_dir();

}  // namespace ktune
