// `ktune export`: tuning results out of a database — the JSONL record log,
// a best pack (db/jsonl.h), or a generated C++ kernel library
// (export/cpp_export.h).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/workload_selection.h"
#include "db/jsonl.h"
#include "export/cpp_export.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct ExportArgs {
  std::string format;
  std::string db_path = "ktune.db";
  std::string device_key;
  WorkloadSelection selection;
  bool best = false;
  std::string out;
};

// To --out, or to stdout without it.
void emit(const ExportArgs& args, const std::string& text, const std::string& what) {
  if (args.out.empty()) {
    std::cout << text << std::flush;
    return;
  }
  write_text_file(args.out, text, "the export");
  std::cout << "wrote " << args.out << " (" << what << ")\n";
}

std::string plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

int export_cpp(const Database& db, const ExportArgs& args, const std::vector<Workload>& workloads) {
  const CppExportSummary summary =
      export_cpp_library(db, CppExportOptions{.out_dir = args.out, .device_key = args.device_key, .workloads = workloads});
  for (const CppExportKernel& k : summary.kernels) {
    std::cout << "  " << k.workload_key << "  " << k.source;
    if (!k.from.empty()) std::cout << " (from " << k.from << ")";
    std::cout << "  " << k.template_name;
    if (k.measured_s > 0) {
      char ms[32];
      std::snprintf(ms, sizeof ms, "%.4g ms", k.measured_s * 1e3);
      std::cout << "  " << ms;
    }
    std::cout << "\n";
  }
  std::cout << "wrote " << args.out << " (" << plural(summary.kernels.size(), "kernel") << " for "
            << summary.device_key << ")\n";
  return kExitOk;
}

int run_export(const ExportArgs& args) {
  if (args.format != "jsonl" && args.format != "json" && args.format != "cpp") {
    throw Error("unknown format '" + args.format + "': accepted formats are jsonl, json, cpp");
  }
  if (args.format == "json" && !args.best) {
    throw Error("--format json writes a best pack: give --best (every record: --format jsonl)");
  }
  if (args.format == "cpp" && args.out.empty()) throw Error("--format cpp writes a source tree: give --out DIR");
  // Database::open would create a missing file: a typo must not become an
  // empty database and an empty export.
  if (!std::filesystem::exists(args.db_path)) throw Error("no database " + args.db_path);
  const std::vector<Workload> workloads = args.selection.workloads();
  std::unique_ptr<Database> db = Database::open(args.db_path, Database::Access::kReadOnly);
  if (args.format == "cpp") return export_cpp(*db, args, workloads);

  RecordFilter filter;
  filter.device_key = args.device_key;
  filter.best_only = args.best;
  for (const Workload& w : workloads) filter.workload_keys.insert(w.key());
  const std::string scope = " on " + (args.device_key.empty() ? "any device key" : args.device_key) + " in " +
                            args.db_path + (workloads.empty() ? "" : " for the workloads given");
  if (args.format == "json") {
    const nlohmann::ordered_json pack = best_pack(*db, filter);
    const size_t n = pack["entries"].size();
    if (n == 0) {
      std::cerr << "ktune: no valid best" << scope << "\n";
      return kExitFailed;
    }
    emit(args, pack.dump(2) + "\n", plural(n, "best config"));
    return kExitOk;
  }
  std::ostringstream log;
  export_jsonl(*db, filter, log);
  const std::string text = log.str();
  const size_t n = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  if (n == 0) {
    std::cerr << "ktune: no " << (args.best ? "valid best" : "record") << scope << "\n";
    return kExitFailed;
  }
  emit(args, text, plural(n, "record"));
  return kExitOk;
}

}  // namespace

CommandRun add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write tuning results for another machine: records (jsonl), a best pack (json) or a C++ library (cpp)");
  cmd->add_option("--format", args->format,
                  "jsonl: one record per line; json: the best pack (with --best); cpp: a kernel library source tree "
                  "(C++ for a CPU device, CUDA for a GPU one)")
      ->required();
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->capture_default_str();
  cmd->add_option("--device-key", args->device_key,
                  "only this device key (default: every one; cpp: the database's only one)");
  args->selection.add_options(cmd, "only this operator (repeatable; default: every workload)");
  cmd->add_flag("--best", args->best, "only each workload's best record");
  cmd->add_option("--out", args->out, "file to write (jsonl, json; default: stdout), or directory (cpp)");
  return [args] { return run_export(*args); };
}

}  // namespace ktune::cli
