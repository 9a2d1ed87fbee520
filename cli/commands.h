// The `ktune` subcommands. Each add_* registers its subcommand on the app
// and returns a callable run when that subcommand was chosen; the callable
// returns the process exit code (see main.cc).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace ktune::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // ran, but produced no usable result
inline constexpr int kExitBadInput = 2;  // bad spec, flag, file or database

using CommandRun = std::function<int()>;

CommandRun add_tune_command(CLI::App& app);
CommandRun add_space_command(CLI::App& app);
CommandRun add_best_command(CLI::App& app);
CommandRun add_bench_command(CLI::App& app);
CommandRun add_report_command(CLI::App& app);
CommandRun add_tasks_command(CLI::App& app);
CommandRun add_devices_command(CLI::App& app);
CommandRun add_export_command(CLI::App& app);  // cli/export_command.cc
CommandRun add_import_command(CLI::App& app);  // cli/import_command.cc
CommandRun add_daemon_command(CLI::App& app);  // cli/daemon_command.cc
CommandRun add_worker_command(CLI::App& app);  // cli/worker_command.cc
// The farm's clients: submit, jobs, job, cancel, workers, pull (cli/farm_commands.cc).
std::vector<std::pair<std::string, CommandRun>> add_farm_commands(CLI::App& app);

}  // namespace ktune::cli
