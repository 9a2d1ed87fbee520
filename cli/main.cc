// ktune: the command-line entry point. Errors at this boundary become a
// one-line message on stderr and a non-zero exit code, never a crash.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "schedule_space/error.h"

int main(int argc, char** argv) {
  using namespace ktune::cli;
  CLI::App app{"ktune: learning-based auto-tuning of tensor operators"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ktune ") + KTUNE_VERSION);

  std::map<std::string, CommandRun> commands = {
      {"tune", add_tune_command(app)},
      {"space", add_space_command(app)},
      {"best", add_best_command(app)},
      {"bench", add_bench_command(app)},
      {"report", add_report_command(app)},
      {"tasks", add_tasks_command(app)},
      {"devices", add_devices_command(app)},
      {"export", add_export_command(app)},
      {"import", add_import_command(app)},
      {"daemon", add_daemon_command(app)},
      {"worker", add_worker_command(app)},
  };
  for (auto& [name, run] : add_farm_commands(app)) commands.emplace(name, std::move(run));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) return commands.at(sub->get_name())();
  } catch (const ktune::Error& e) {
    std::cerr << "ktune: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "ktune: internal error: " << e.what() << "\n";
    return kExitFailed;
  }
  return kExitBadInput;
}
