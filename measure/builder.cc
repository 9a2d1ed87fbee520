#include "measure/builder.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "measure/subprocess.h"
#include "schedule_space/error.h"

namespace ktune {
namespace fs = std::filesystem;
namespace {

// What every artifact needs to satisfy the kernel ABI (codegen_cpp.h). They
// come before the target's flags so that a target may raise the standard.
const std::vector<std::string> kFixedFlags = {"-std=c++17", "-shared", "-fPIC", "-fopenmp"};

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

// `compiler --version`, once per compiler per process: an upgraded compiler
// must not reuse artifacts built by the old one.
std::string compiler_version(const std::string& compiler) {
  static std::mutex mu;
  static std::map<std::string, std::string> versions;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = versions.find(compiler);
    if (it != versions.end()) return it->second;
  }
  std::string version;
  try {
    detail::CommandResult r = detail::run_command({compiler, "--version"}, 30);
    version = r.succeeded() ? r.output : "";
  } catch (const Error&) {
    // Not runnable: the build itself will report it.
  }
  std::lock_guard<std::mutex> lock(mu);
  return versions.emplace(compiler, version).first->second;
}

// -march=native means "this host's CPU", which neither the flags nor the
// compiler version say; a cache directory shared between hosts (an NFS home)
// must not hand one host's artifact to another.
std::string host_cpu_fingerprint() {
  static const std::string fingerprint = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line, model, flags;
    while (std::getline(in, line) && (model.empty() || flags.empty())) {
      if (model.empty() && line.rfind("model name", 0) == 0) model = line;
      if (flags.empty() && (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0)) {
        flags = line;
      }
    }
    return model + "\n" + flags;
  }();
  return fingerprint;
}

std::vector<std::string> compile_flags(const CpuTarget& target) {
  std::vector<std::string> flags = kFixedFlags;
  flags.insert(flags.end(), target.flags.begin(), target.flags.end());
  return flags;
}

// The exact text of the cached source file: a header naming everything the
// artifact depends on besides the source, then the source. The cache file
// name is its hash, and a cache hit compares the stored text with this one,
// so a hash collision can never return the wrong artifact.
std::string cache_key_text(const std::string& source, const CpuTarget& target) {
  std::string header = "// ktune artifact: " + target.compiler;
  bool native = false;
  for (const std::string& flag : compile_flags(target)) {
    header += " " + flag;
    native = native || flag.find("native") != std::string::npos;
  }
  header += "\n";
  std::istringstream version(compiler_version(target.compiler));
  for (std::string line; std::getline(version, line);) header += "// compiler: " + line + "\n";
  if (native) {
    std::istringstream cpu(host_cpu_fingerprint());
    for (std::string line; std::getline(cpu, line);) header += "// host: " + line + "\n";
  }
  // #line keeps the compiler's line numbers those of the generated source.
  return header + "#line 1\n" + source;
}

// A name no other thread or process is using, for write-then-rename.
std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  return ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

const char* const kImmintrinInclude = "#include <immintrin.h>";

// Kernels that use x86 intrinsics (masked loads, lane shifts) include
// <immintrin.h>, and with -march=native on an AVX-512 machine GCC parses it
// for 0.25-0.3 s: as long as compiling a whole small kernel. A precompiled
// header of it, built once per compiler, flags and host in the artifact
// cache and passed with -include, takes that to a few ms. The code produced
// is the same: GCC uses a PCH only when it was built with compatible options
// and otherwise reads the header itself. GCC only (Clang's PCH are another
// format), and where building it fails the kernels are compiled without
// one. Returns the header to -include, or nullopt.
std::optional<std::string> immintrin_pch(const std::string& cache_dir, const CpuTarget& target,
                                         double timeout_s) {
  const std::string version = compiler_version(target.compiler);
  if (version.find("Free Software Foundation") == std::string::npos ||
      version.find("clang") != std::string::npos) {
    return std::nullopt;
  }
  std::vector<std::string> flags;
  for (const std::string& flag : compile_flags(target)) {
    if (flag != "-shared") flags.push_back(flag);
  }
  std::string key = "pch 1\n" + target.compiler + "\n" + version + "\n" + host_cpu_fingerprint();
  for (const std::string& flag : flags) key += "\n" + flag;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(key)));

  static std::mutex mu;
  static std::set<std::string> failed;  // directories whose header did not build: not tried again
  const fs::path dir = fs::path(cache_dir) / "pch" / hash;
  const fs::path header = dir / "kt_immintrin.h";
  const fs::path pch = dir / "kt_immintrin.h.gch";
  std::lock_guard<std::mutex> lock(mu);  // one build per process; the others wait for it
  if (failed.count(dir.string())) return std::nullopt;
  std::error_code ec;
  // Checked every time: a cache emptied while the process runs gets a new one.
  if (fs::exists(header, ec) && fs::exists(pch, ec)) return header.string();
  std::optional<std::string> result;
  try {
    fs::create_directories(dir, ec);
    if (!fs::exists(header, ec)) {
      const std::string tmp = header.string() + unique_suffix();
      write_file(tmp, std::string("#if defined(__x86_64__) || defined(__i386__)\n") + kImmintrinInclude +
                          "\n#endif\n");
      fs::rename(tmp, header);
    }
    if (!fs::exists(pch, ec)) {
      const std::string tmp = pch.string() + unique_suffix();
      std::vector<std::string> argv = {target.compiler};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.insert(argv.end(), {"-x", "c++-header", "-o", tmp, header.string()});
      detail::CommandResult r = detail::run_command(argv, timeout_s);
      if (r.succeeded()) {
        fs::rename(tmp, pch);
      } else {
        fs::remove(tmp, ec);
      }
    }
    if (fs::exists(pch, ec)) result = header.string();
  } catch (const std::exception&) {
    // Compile without it.
  }
  if (!result) failed.insert(dir.string());
  return result;
}

}  // namespace

Builder::Builder(std::string cache_dir, int parallel)
    : cache_dir_(std::move(cache_dir)), parallel_(parallel > 0 ? parallel : online_cores()) {
  std::error_code ec;
  fs::create_directories(cache_dir_, ec);
  if (ec) throw Error("cannot create the artifact cache '" + cache_dir_ + "': " + ec.message());
  if (parallel_ <= 0) parallel_ = 1;
}

BuildResult Builder::build(const std::string& source, const CpuTarget& target,
                           double timeout_s) const {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  BuildResult result;
  const std::string key_text = cache_key_text(source, target);
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(key_text)));
  const fs::path source_path = fs::path(cache_dir_) / (std::string(hash) + ".cc");
  const fs::path artifact_path = fs::path(cache_dir_) / (std::string(hash) + ".so");

  std::error_code ec;
  if (fs::exists(artifact_path, ec) && read_file(source_path) == key_text) {
    result.artifact_path = artifact_path.string();
    result.cached = true;
    result.seconds = elapsed();
    return result;
  }

  // Build under temporary names and rename into place: a concurrent builder
  // (thread or process) of the same source then sees either nothing or a
  // complete artifact, never a half-written one.
  const std::string suffix = unique_suffix();
  const fs::path tmp_source = source_path.string() + suffix + ".cc";
  const fs::path tmp_artifact = artifact_path.string() + suffix + ".so";
  auto remove_temporaries = [&] {
    fs::remove(tmp_source, ec);
    fs::remove(tmp_artifact, ec);
  };
  try {
    write_file(tmp_source, key_text);
    std::vector<std::string> argv = {target.compiler};
    for (const std::string& flag : compile_flags(target)) argv.push_back(flag);
    if (source.find(kImmintrinInclude) != std::string::npos) {
      if (std::optional<std::string> pch = immintrin_pch(cache_dir_, target, timeout_s)) {
        argv.insert(argv.end(), {"-include", *pch});
      }
    }
    argv.insert(argv.end(), {"-o", tmp_artifact.string(), tmp_source.string()});
    detail::CommandResult compile = detail::run_command(argv, timeout_s);
    if (compile.timed_out) {
      result.error = MeasureError::kCompileTimeout;
      std::ostringstream message;
      message << "compile timed out after " << timeout_s << " s";
      result.message = message.str();
    } else if (!compile.succeeded()) {
      result.error = MeasureError::kCompileError;
      result.message = target.compiler + " failed (" +
                       detail::describe_wait_status(compile.wait_status) + "):\n" + compile.output;
    } else {
      fs::rename(tmp_source, source_path);
      fs::rename(tmp_artifact, artifact_path);
      result.artifact_path = artifact_path.string();
    }
  } catch (const std::exception& e) {
    result.error = MeasureError::kCompileError;
    result.message = e.what();
  }
  remove_temporaries();
  result.seconds = elapsed();
  return result;
}

std::vector<BuildResult> Builder::build_all(const std::vector<std::string>& sources,
                                            const CpuTarget& target, double timeout_s) const {
  // A batch may hold the same source twice (two configs that generate the
  // same code): compile it once.
  std::vector<size_t> first_of(sources.size());
  std::vector<size_t> unique;
  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < sources.size(); ++i) {
    auto [it, inserted] = seen.emplace(sources[i], i);
    first_of[i] = it->second;
    if (inserted) unique.push_back(i);
  }

  // Longest first (a source's length predicts its compile time well): the
  // batch then ends with short compiles on every worker rather than one
  // long one on a single worker while the others wait.
  std::stable_sort(unique.begin(), unique.end(),
                   [&](size_t a, size_t b) { return sources[a].size() > sources[b].size(); });

  std::vector<BuildResult> results(sources.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t u; (u = next++) < unique.size();) {
      results[unique[u]] = build(sources[unique[u]], target, timeout_s);
    }
  };
  size_t workers = std::min(unique.size(), static_cast<size_t>(parallel_));
  std::vector<std::thread> pool;
  for (size_t i = 1; i < workers; ++i) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();

  for (size_t i = 0; i < sources.size(); ++i) {
    if (first_of[i] == i) continue;
    results[i] = results[first_of[i]];
    results[i].cached = results[i].error == MeasureError::kNone;
    results[i].seconds = 0;
  }
  return results;
}

std::string default_cache_dir() {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value ? value : "";
  };
  if (std::string dir = env("KTUNE_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string dir = env("XDG_CACHE_HOME"); !dir.empty()) return dir + "/ktune";
  if (std::string home = env("HOME"); !home.empty()) return home + "/.cache/ktune";
  return "/tmp/ktune-cache-" + std::to_string(getuid());
}

}  // namespace ktune
