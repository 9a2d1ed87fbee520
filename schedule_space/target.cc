#include "schedule_space/target.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune {

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Value of the first "key : value" line of /proc/cpuinfo with this key.
std::string cpuinfo_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    if (name != key) continue;
    size_t start = colon + 1;
    while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
    return line.substr(start);
  }
  return "";
}

// CPU feature flags as the kernel reports them (x86 "flags", Arm "Features"):
// these are the cpuid bits the OS has also enabled (e.g. AVX-512 state).
std::set<std::string> cpu_flags() {
  std::string text = cpuinfo_field("flags");
  if (text.empty()) text = cpuinfo_field("Features");
  std::istringstream words(text);
  return {std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
}

void set_isa(const std::set<std::string>& flags, CpuTarget& cpu) {
  auto has = [&](const char* flag) { return flags.count(flag) > 0; };
#if defined(__aarch64__)
  // Advanced SIMD is mandatory on AArch64, whatever the flags line says.
  const bool neon = true;
#else
  const bool neon = has("asimd") || has("neon");
#endif
  auto set = [&](const char* isa, int lanes) {
    cpu.isa = isa;
    cpu.vector_lanes = lanes;
  };
  if (has("avx512f")) {
    set("avx512", 16);
  } else if (has("avx2") && has("fma")) {
    set("avx2", 8);
  } else if (has("sse4_2")) {
    set("sse4", 4);
  } else if (neon) {
    set("neon", 4);
  } else {
    set("generic", 4);
  }
}

// "32K" -> 32768; "16M" -> 16 MiB; plain numbers are bytes. 0 if unreadable.
int64_t parse_cache_size(const std::string& text) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const char unit = used < text.size() ? std::toupper(static_cast<unsigned char>(text[used])) : 0;
  if (unit == 'K') return value << 10;
  if (unit == 'M') return value << 20;
  if (unit == 'G') return value << 30;
  return value;
}

// Cache sizes of cpu0 from sysfs; a level that is not listed keeps the
// CpuTarget default.
void set_caches(CpuTarget& cpu) {
  for (int index = 0;; ++index) {
    const std::string dir =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    const std::string level = read_first_line(dir + "level");
    if (level.empty()) break;
    const std::string type = read_first_line(dir + "type");
    const int64_t size = parse_cache_size(read_first_line(dir + "size"));
    if (size <= 0 || type == "Instruction") continue;
    if (level == "1") cpu.l1d_bytes = size;
    if (level == "2") cpu.l2_bytes = size;
    if (level == "3") cpu.l3_bytes = size;
  }
}

std::string bytes_text(int64_t bytes) {
  if (bytes >= (int64_t{1} << 20) && bytes % (int64_t{1} << 20) == 0) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

}  // namespace

namespace detail {

std::string cpu_model_slug(const std::string& model_name) {
  std::string text;
  for (char ch : model_name) {
    text += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  for (const char* mark : {"(r)", "(tm)", "(c)"}) {
    for (size_t at; (at = text.find(mark)) != std::string::npos;) {
      text.replace(at, std::strlen(mark), " ");
    }
  }
  // The clock ("cpu @ 2.20ghz") and integrated graphics name no different
  // core; they are cut off with everything after them.
  for (const char* tail : {"@", " with "}) {
    const size_t at = text.find(tail);
    if (at != std::string::npos) text.erase(at);
  }

  std::istringstream in(text);
  std::vector<std::string> words{std::istream_iterator<std::string>(in),
                                 std::istream_iterator<std::string>()};
  auto is_filler = [](const std::string& word) {
    if (word == "processor" || word == "cpu") return true;
    // "64-core", "8-core": the core count of one SKU family member.
    const size_t dash = word.find("-core");
    auto is_digit = [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; };
    return dash != std::string::npos && dash > 0 && dash + 5 == word.size() &&
           std::all_of(word.begin(), word.begin() + dash, is_digit);
  };
  while (!words.empty() && is_filler(words.back())) words.pop_back();

  std::string slug;
  for (const std::string& word : words) {
    for (char ch : word) {
      if (std::isalnum(static_cast<unsigned char>(ch))) {
        slug += ch;
      } else if (!slug.empty() && slug.back() != '-') {
        slug += '-';
      }
    }
    if (!slug.empty() && slug.back() != '-') slug += '-';
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug.empty() ? "generic" : slug;
}

}  // namespace detail

std::string Target::device_key() const {
  if (!key.empty()) return key;
  if (kind == TargetKind::kCuda) return "cuda/" + cuda.name + "/" + cuda.arch();
  return "cpu/" + cpu.model + "/" + cpu.isa + "/" + std::to_string(cpu.threads) + "t";
}

std::string Target::describe() const {
  if (kind == TargetKind::kCuda) {
    return "cuda:" + std::to_string(cuda.ordinal) + " " + cuda.name + ", " + cuda.arch() + ", " +
           std::to_string(cuda.sm_count) + " SMs, " + std::to_string(cuda.max_threads_per_block) +
           " threads/block, " + bytes_text(cuda.shared_bytes_per_block) + " shared/block, " +
           std::to_string(cuda.registers_per_block) + " registers/block";
  }
  std::string text = "cpu " + cpu.model + ", " + cpu.isa + " (" +
                     std::to_string(cpu.vector_lanes) + " fp32 lanes), " +
                     std::to_string(cpu.threads) + (cpu.threads == 1 ? " thread" : " threads") +
                     ", L1d " + bytes_text(cpu.l1d_bytes) + ", L2 " + bytes_text(cpu.l2_bytes) +
                     ", L3 " + bytes_text(cpu.l3_bytes) + ", compiler " + cpu.compiler;
  for (const std::string& flag : cpu.flags) text += " " + flag;
  return text;
}

void check_target(const Target& t) {
  // Bounds far above any real machine, so that the arithmetic of the
  // templates on these numbers (products of a few of them) cannot overflow
  // when a target comes from a request or a file.
  auto within = [](const char* field, int64_t value, int64_t most) {
    if (value <= 0) throw Error(std::string("target: ") + field + " must be positive, got " + std::to_string(value));
    if (value > most) {
      throw Error(std::string("target: ") + field + " must be at most " + std::to_string(most) + ", got " +
                  std::to_string(value));
    }
  };
  constexpr int64_t kMostBytes = int64_t{1} << 40;
  if (t.kind == TargetKind::kCuda) {
    const CudaTarget& g = t.cuda;
    if (g.name.empty()) throw Error("target: cuda.name is empty");
    within("cuda.cc_major", g.cc_major, 100);
    within("cuda.sm_count", g.sm_count, 1 << 16);
    within("cuda.max_threads_per_block", g.max_threads_per_block, 1 << 16);
    within("cuda.shared_bytes_per_block", g.shared_bytes_per_block, kMostBytes);
    within("cuda.registers_per_block", g.registers_per_block, 1 << 24);
    within("cuda.max_registers_per_thread", g.max_registers_per_thread, 1 << 16);
    within("cuda.warp_size", g.warp_size, 1024);
    return;
  }
  const CpuTarget& c = t.cpu;
  within("cpu.vector_lanes", c.vector_lanes, 256);
  within("cpu.threads", c.threads, 1 << 16);
  within("cpu.l1d_bytes", c.l1d_bytes, kMostBytes);
  within("cpu.l2_bytes", c.l2_bytes, kMostBytes);
  within("cpu.l3_bytes", c.l3_bytes, kMostBytes);
  if (c.compiler.empty()) throw Error("target: cpu.compiler is empty");
}

std::string cpu_model_name() { return cpuinfo_field("model name"); }

Target detect_cpu_target(int threads) {
  Target target;
  target.kind = TargetKind::kCpu;
  CpuTarget& cpu = target.cpu;
  cpu.model = detail::cpu_model_slug(cpuinfo_field("model name"));
  set_isa(cpu_flags(), cpu);
  cpu.threads = threads > 0 ? threads : online_cores();
  set_caches(cpu);
  return target;
}

int online_cores() {
  // The affinity mask is what this process may actually use (containers,
  // taskset); sysconf counts the whole machine.
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    const int count = CPU_COUNT(&mask);
    if (count > 0) return count;
  }
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

Target cuda_target_for_arch(const std::string& arch) {
  Target t;
  t.kind = TargetKind::kCuda;
  if (arch == "sm_80") {
    t.cuda.name = "nvidia-a100";
    t.cuda.cc_major = 8, t.cuda.cc_minor = 0, t.cuda.sm_count = 108;
  } else if (arch == "sm_90") {
    t.cuda.name = "nvidia-h100";
    t.cuda.cc_major = 9, t.cuda.cc_minor = 0, t.cuda.sm_count = 132;
  } else {
    throw Error("unknown CUDA arch '" + arch + "': accepted are sm_80, sm_90");
  }
  return t;
}

}  // namespace ktune
