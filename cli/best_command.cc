// `ktune best`: the best config stored for operators on a device — given
// with --op or --model, or every workload with a valid best there (what
// `ktune export --best` would export).
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/workload_selection.h"
#include "db/jsonl.h"
#include "db/record_config.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct BestArgs {
  WorkloadSelection selection;
  std::string db_path = "ktune.db";
  std::string device_key;
  int threads = 0;
  std::string format = "text";
};

// ", spread +-1.3%" (nothing with fewer than three repeats).
std::string spread_text(const Record& r) {
  if (r.result.costs.size() < 3) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, ", spread \u00b1%.1f%%", 100 * r.result.spread());
  return buf;
}

void print_best_text(const Record& best) {
  std::cout << best.workload_key << " on " << best.device_key << "\n"
            << "  " << speed_text(best) << "  (" << best.kind << " measurement, "
            << best.result.costs.size() << " repeats" << spread_text(best) << ")\n"
            << "  template " << best.template_name << " v" << best.template_version << ", config #"
            << best.config_index << ": " << best.config_text << "\n";
}

// Every workload with a valid best on the device.
int list_bests(const Database& db, const BestArgs& args, const std::string& device_key) {
  RecordFilter filter;
  filter.device_key = device_key;
  const std::vector<Record> bests = valid_bests(db, filter);
  if (args.format == "json") {
    nlohmann::json json_out = nlohmann::json::array();
    for (const Record& r : bests) json_out.push_back(record_json(r));
    std::cout << json_out.dump(2) << "\n";
  } else {
    if (bests.empty()) std::cout << "no valid best on " << device_key << " in " << args.db_path << "\n";
    for (const Record& r : bests) print_best_text(r);
  }
  return bests.empty() ? kExitFailed : kExitOk;
}

int run_best(const BestArgs& args) {
  check_format(args.format);
  const std::vector<Workload> workloads = args.selection.workloads();
  std::string device_key = args.device_key.empty() ? detect_cpu_target(args.threads).device_key()
                                                   : args.device_key;
  std::unique_ptr<Database> db = Database::open(args.db_path, Database::Access::kReadOnly);
  if (workloads.empty()) return list_bests(*db, args, device_key);
  nlohmann::json json_out = nlohmann::json::array();
  bool all_found = true;
  for (const Workload& w : workloads) {
    std::optional<Record> best = db->best(w.key(), device_key);
    // A best this build cannot use is no best here, as for the list and exports.
    std::string unusable;
    if (best && !usable(*best)) {
      unusable = resolve_template(best->template_name, best->template_version).reason;
      best.reset();
    }
    all_found = all_found && best.has_value();
    if (args.format == "json") {
      nlohmann::json none = {{"workload", w.key()}, {"device_key", device_key}, {"best", nullptr}};
      if (!unusable.empty()) none["unusable"] = unusable;
      json_out.push_back(best ? record_json(*best) : none);
      continue;
    }
    if (!best) {
      std::cout << w.key() << " on " << device_key << ": no valid measurement in " << args.db_path
                << (unusable.empty() ? "" : " (its best is not usable: " + unusable + ")") << "\n";
      continue;
    }
    print_best_text(*best);
  }
  if (args.format == "json") std::cout << json_out.dump(2) << "\n";
  return all_found ? kExitOk : kExitFailed;
}

}  // namespace

CommandRun add_best_command(CLI::App& app) {
  auto args = std::make_shared<BestArgs>();
  CLI::App* cmd = app.add_subcommand("best", "print the best stored config of operators");
  args->selection.add_options(
      cmd, "operator spec (repeatable; without --op or --model: every workload with a valid best on the device)");
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--device-key", args->device_key, "device key (default: this machine's)");
  add_threads_option(cmd, args->threads, "threads, to derive this machine's device key (default: all cores)");
  cmd->add_option("--format", args->format, kFormatHelp)->capture_default_str();
  return [args] { return run_best(*args); };
}

}  // namespace ktune::cli
