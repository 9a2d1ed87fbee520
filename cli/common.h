// Pieces the ktune subcommands share: choosing a template, building the
// target, and printing records.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "db/database.h"
#include "measure/measure.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "tuner/tuner.h"

namespace ktune::cli {

// The named template (checked against the workload's operator), or the
// operator's default CPU template. Throws ktune::Error.
const Template& choose_template(const Workload& w, const std::string& template_name,
                                TargetKind kind = TargetKind::kCpu);

// "--format" values accepted by commands that print results.
inline const char* kFormatHelp = "output format: text or json";
// Throws ktune::Error unless format is "text" or "json".
void check_format(const std::string& format);

// Tunes one workload as `ktune tune` does (template_name "" = the
// operator's default, tuner_name as --tuner), recording in db (may be null)
// and showing progress on stderr; announce: a line saying what is tuned.
// Used by `ktune tune` and by `ktune bench --trials N`. With configs (the
// template's describe() text, as `ktune space` prints it), measures exactly
// those instead of searching; a text that does not parse throws ktune::Error.
TuneSummary tune_workload(const Workload& w, const Target& target, const std::string& template_name,
                          const std::string& tuner_name, uint64_t seed, Measurer& measurer,
                          Database* db, const TuneOptions& options, bool announce,
                          const std::vector<std::string>& configs = {});

// Adds --threads to a command, with help text `help` (which should say
// that the default is all cores). A value must be at least 1; 0 and negative
// values are refused with an error naming the flag, and leaving the flag out
// keeps threads at 0, which target_from_flag and detect_cpu_target take as
// all cores.
CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& help);

// A --target / --device value: "cpu" (threads: 0 = all cores) or "cuda:N".
// Throws ktune::Error naming the flag and what is accepted, or saying that
// there is no such GPU.
Target target_from_flag(const std::string& flag, const std::string& value, int threads);
// The measurer for a target: LocalMeasurer on the CPU, CudaMeasurer on a GPU.
std::unique_ptr<Measurer> make_measurer(const Target& target, const std::string& cache_dir);
// Stores target's description in db unless it is there already: `ktune
// export` ships it with the records.
void remember_device(Database& db, const Target& target);

// Writes text to path, replacing it; throws ktune::Error "cannot write
// <what> to <path>: <reason>".
void write_text_file(const std::string& path, const std::string& text, const std::string& what);

nlohmann::json record_json(const Record& r);
// "85.31 GFLOP/s, 3.147 ms".
std::string speed_text(const Record& r);

}  // namespace ktune::cli

// Shared by the farm's commands: `ktune daemon` (cli/daemon_command.cc),
// `ktune worker` (cli/worker_command.cc) and the clients (cli/farm_commands.cc).
#include <signal.h>

namespace ktune::cli {

// The farm's token: given if not empty, else $KTUNE_TOKEN (which keeps it
// out of `ps`).
std::string token_or_env(const std::string& given);

// Blocks SIGINT and SIGTERM in this thread and every thread started after;
// wait_for_signal() then takes them synchronously and returns the signal.
sigset_t block_stop_signals();
int wait_for_signal(const sigset_t& set);

// "--log-level" of the long-running farm processes (logging/log.h).
inline const char* kLogLevelHelp = "log level on stderr: trace, debug, info, warn, error or off";

}  // namespace ktune::cli
