// `ktune best`: the best config stored for an operator on a device.
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct BestArgs {
  std::vector<std::string> ops;
  std::string db_path = "ktune.db";
  std::string device_key;
  int threads = 0;
  std::string format = "text";
};

int run_best(const BestArgs& args) {
  check_format(args.format);
  std::vector<Workload> workloads;
  for (const std::string& spec : args.ops) workloads.push_back(Workload::parse(spec));
  std::string device_key = args.device_key.empty() ? detect_cpu_target(args.threads).device_key()
                                                   : args.device_key;
  std::unique_ptr<Database> db = Database::open(args.db_path);
  nlohmann::json json_out = nlohmann::json::array();
  bool all_found = true;
  for (const Workload& w : workloads) {
    std::optional<Record> best = db->best(w.key(), device_key);
    all_found = all_found && best.has_value();
    if (args.format == "json") {
      json_out.push_back(best ? record_json(*best)
                              : nlohmann::json{{"workload", w.key()}, {"device_key", device_key}, {"best", nullptr}});
      continue;
    }
    if (!best) {
      std::cout << w.key() << " on " << device_key << ": no valid measurement in " << args.db_path << "\n";
      continue;
    }
    std::cout << w.key() << " on " << device_key << "\n"
              << "  " << speed_text(*best) << "  (" << best->kind << " measurement, "
              << best->result.costs.size() << " repeats)\n"
              << "  template " << best->template_name << " v" << best->template_version << ", config #"
              << best->config_index << ": " << best->config_text << "\n";
  }
  if (args.format == "json") std::cout << json_out.dump(2) << "\n";
  return all_found ? kExitOk : kExitFailed;
}

}  // namespace

CommandRun add_best_command(CLI::App& app) {
  auto args = std::make_shared<BestArgs>();
  CLI::App* cmd = app.add_subcommand("best", "print the best stored config of operators");
  cmd->add_option("--op", args->ops, "operator spec (repeatable)")->required();
  cmd->add_option("--db", args->db_path, "SQLite tuning log")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--device-key", args->device_key, "device key (default: this machine's)");
  cmd->add_option("--threads", args->threads, "threads, to derive this machine's device key (default: all cores)");
  cmd->add_option("--format", args->format, kFormatHelp)->capture_default_str();
  return [args] { return run_best(*args); };
}

}  // namespace ktune::cli
