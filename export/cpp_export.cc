#include "export/cpp_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"
#include "export/cuda_library.h"
#include "export/kernel_choice.h"
#include "schedule_space/template.h"

namespace ktune {

namespace {

#include "export/library_sources.inc"

constexpr const char* kGenericKernels =
#include "export/generic_kernels.inc"
    ;

namespace fs = std::filesystem;

using export_detail::op_code;
using export_detail::replace_all;
using export_detail::shape_array;

void write(const fs::path& path, const std::string& text) { export_detail::write_file(path.string(), text); }

// The flags and the CPU check of an ISA level.
struct IsaLevel {
  std::string flags;     // CMake list
  std::string check;     // C expression over __builtin_cpu_supports (x86-64)
  std::string features;  // in words
  bool arm = false;      // needs an AArch64 machine
};
IsaLevel isa_level(const std::string& isa) {
  if (isa == "neon") return {"-O3;-ffp-contract=fast", "0", "an AArch64 CPU (NEON)", true};
  if (isa == "avx512") {
    return {"-O3;-march=x86-64-v4;-ffp-contract=fast",
            "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512bw\") && "
            "__builtin_cpu_supports(\"avx512dq\") && __builtin_cpu_supports(\"avx512vl\") && "
            "__builtin_cpu_supports(\"fma\")",
            "AVX-512 (F, BW, DQ, VL) and FMA"};
  }
  if (isa == "avx2") {
    return {"-O3;-march=x86-64-v3;-ffp-contract=fast",
            "__builtin_cpu_supports(\"avx2\") && __builtin_cpu_supports(\"fma\")", "AVX2 and FMA"};
  }
  if (isa == "sse4") return {"-O3;-march=x86-64-v2;-ffp-contract=fast", "__builtin_cpu_supports(\"sse4.2\")", "SSE4.2"};
  return {"-O3;-ffp-contract=fast", "1", "nothing special"};
}

}  // namespace

CppExportSummary export_cpp_library(const Database& db, const CppExportOptions& options) {
  if (options.out_dir.empty()) throw Error("export --format cpp needs --out DIR");
  const export_detail::ExportPlan plan = export_detail::choose_export_kernels(db, options);
  if (plan.target.kind == TargetKind::kCuda) return export_cuda_library(plan, options.out_dir);
  CppExportSummary summary;
  summary.device_key = plan.device_key;
  const std::string& description = plan.description;
  const Target& target = plan.target;
  const std::vector<export_detail::ExportChoice>& chosen = plan.kernels;

  // The tree.
  const fs::path root = options.out_dir;
  export_detail::prepare_tree(root.string());
  const IsaLevel isa = isa_level(target.cpu.isa);
  auto fill = [&](std::string text) {
    text = replace_all(text, "@DEVICE_KEY@", summary.device_key);
    text = replace_all(text, "@ISA@", target.cpu.isa);
    text = replace_all(text, "@FLAGS@", replace_all(isa.flags, ";", " "));
    text = replace_all(text, "@CPU_CHECK@", isa.check);
    text = replace_all(text, "@ISA_FEATURES@", isa.features);
    text = replace_all(text, "@ARCH_OK@", isa.arm ? "defined(__aarch64__)" : "defined(__x86_64__)");
    return text;
  };
  write(root / "include" / "ktune_kernels.h", fill(std::string(kHeader) + kHeaderCommon + kHeaderCpu + kHeaderEnd));
  write(root / "src" / "ktune_kernels_internal.h", kInternalHeader);
  write(root / "src" / "dispatch.cc", fill(std::string(kDispatchCommon) + kDispatchCpu));
  write(root / "src" / "generic.cc", kGenericKernels);
  write(root / "CMakeLists.txt", fill(kCMakeLists));
  write(root / "cmake" / "ktune_kernelsConfig.cmake", kPackageConfig);
  write(root / "cmake" / "isa_check.c", fill(kIsaCheck));

  std::ostringstream table;
  table << "// The generated kernels, by exact shape.\n#include \"ktune_kernels_internal.h\"\n\nextern \"C\" {\n";
  for (size_t i = 0; i < chosen.size(); ++i) {
    const std::string prefix = "ktune_k" + std::to_string(i) + "_";
    table << "int64_t " << prefix << "workspace_floats(void);\nvoid " << prefix
          << "prepare(const float* const*, float*);\nvoid " << prefix << "run(const float* const*, float*, float*);\n";
  }
  table << "}\n\nconst ktune_entry ktune_entries[] = {\n";
  for (size_t i = 0; i < chosen.size(); ++i) {
    const export_detail::ExportChoice& c = chosen[i];
    const ConfigSpace space = c.tmpl->space(c.workload, target);
    const ir::Program program = c.tmpl->instantiate(c.workload, target, space, c.config);
    const std::string prefix = "ktune_k" + std::to_string(i) + "_";
    char name[32];
    std::snprintf(name, sizeof name, "kernel_%03zu.cc", i);
    write(root / "src" / name,
          "// " + c.workload.key() + ": " + c.info.source + " (" + c.tmpl->name() + " v" +
              std::to_string(c.tmpl->version()) + ", " + c.info.config_text + ")\n" +
              emit_cpp(program, CppEmitOptions{prefix, "ktune_kernels_threads"}));
    const std::vector<int64_t> shape = shape_array(c.workload);
    table << "    {" << op_code(c.workload.op()) << ", {";
    for (size_t j = 0; j < shape.size(); ++j) table << (j ? ", " : "") << shape[j];
    table << "}, " << (c.info.source == "tuned" ? 0 : c.info.source == "nearest" ? 1 : 2) << ", " << prefix
          << "workspace_floats, " << prefix << "prepare, " << prefix << "run, \"" << c.workload.key() << "\", "
          << std::setprecision(17) << c.info.measured_s << "},\n";
    summary.kernels.push_back(c.info);
  }
  table << "};\nconst int ktune_entry_count = " << chosen.size() << ";\n";
  write(root / "src" / "entries.cc", table.str());

  std::ostringstream readme;
  readme << "# ktune kernels for " << summary.device_key << "\n\n"
         << "Generated by " << tool_version() << " (`ktune export --format cpp`). Device: " << description << ".\n\n"
         << "A static library with a C ABI (`include/ktune_kernels.h`) that needs only a C++17 compiler, CMake and "
            "OpenMP. Calls are dispatched by exact shape; any other shape runs a correct generic kernel, counted by "
            "`ktune_generic_calls()`; `ktune_*_kind()` says which kernel a shape gets.\n\n"
         << "```cmake\nadd_subdirectory(path/to/this/directory)\ntarget_link_libraries(your_program PRIVATE "
            "ktune::kernels)\n```\n\nor `cmake -B build && cmake --build build && cmake --install build --prefix P`, "
            "then `find_package(ktune_kernels)` with `CMAKE_PREFIX_PATH=P`.\n\n"
         << "Compile flags of the kernels: `" << replace_all(isa.flags, ";", " ") << "` (instruction set: "
         << target.cpu.isa << ", needs " << isa.features
         << "). Configuring on a machine without it stops with an error; `-DKTUNE_KERNELS_SKIP_CPU_CHECK=ON` "
            "cross-builds, and the functions then return KTUNE_ECPU on such a machine instead of crashing.\n\n"
         << "Threads: each kernel uses the thread count it was tuned with (" << target.cpu.threads
         << "); `ktune_set_num_threads(n)` overrides it.\n\n"
         << export_detail::kernel_table(summary.kernels);
  write(root / "README.md", readme.str());
  return summary;
}

}  // namespace ktune
