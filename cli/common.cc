#include "cli/common.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "cuda/cuda_driver.h"
#include "db/stored_device.h"
#include "measure/cuda_measurer.h"
#include "measure/local_measurer.h"
#include "schedule_space/error.h"

namespace ktune::cli {

const Template& choose_template(const Workload& w, const std::string& template_name, TargetKind kind) {
  return *templates_to_tune(w, template_name, kind).front();
}

CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& help) {
  // Without the flag, threads stays 0: all cores. Given, 0 would mean the
  // same silently, which nobody asking for "0 threads" expects.
  const CLI::Validator at_least_one(
      [](std::string& value) -> std::string {
        int n = 0;
        if (!CLI::detail::lexical_cast(value, n) || n < 1) {
          return "must be a whole number of threads >= 1, got '" + value + "' (leave --threads out to use all cores)";
        }
        return "";
      },
      "INT>=1");
  return command->add_option("--threads", threads, help)->check(at_least_one);
}

Target target_from_flag(const std::string& flag, const std::string& value, int threads) {
  if (value == "cpu") return detect_cpu_target(threads);
  if (value.rfind("cuda:", 0) == 0) return cuda_target(value);
  throw Error(flag + " '" + value + "': accepted targets are cpu and cuda:N");
}

std::unique_ptr<Measurer> make_measurer(const Target& target, const std::string& cache_dir) {
  LocalMeasurerOptions o;
  o.cache_dir = cache_dir;
  return ktune::make_measurer(target, o);
}

void remember_device(Database& db, const Target& target) { store_device(db, describe_this_machine(target)); }

void write_text_file(const std::string& path, const std::string& text, const std::string& what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << text;
  if (out) out.close();
  if (!out) throw Error("cannot write " + what + " to " + path + ": " + std::strerror(errno));
}

void check_format(const std::string& format) {
  if (format != "text" && format != "json") {
    throw Error("unknown format '" + format + "': accepted formats are text, json");
  }
}

nlohmann::json record_json(const Record& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["workload"] = r.workload_key;
  j["device_key"] = r.device_key;
  j["template"] = r.template_name;
  j["template_version"] = r.template_version;
  j["config_index"] = r.config_index;
  j["config"] = r.config_text;
  j["costs"] = r.result.costs;
  j["mean_cost_s"] = r.result.ok() ? nlohmann::json(r.result.mean_cost()) : nlohmann::json();
  j["gflops"] = r.gflops();
  j["spread"] = r.result.spread();  // half the p10..p90 range of the repeats over their median
  j["error"] = std::string(error_name(r.result.error));
  j["error_message"] = r.result.error_message;
  j["kind"] = r.kind;
  j["timestamp"] = r.result.timestamp;
  j["tool_version"] = r.tool_version;
  j["build_flags"] = r.build_flags;
  return j;
}

std::string speed_text(const Record& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f GFLOP/s, %.4g ms", r.gflops(), r.result.mean_cost() * 1e3);
  return buf;
}

}  // namespace ktune::cli

// The farm commands' shared pieces (cli/common.h's last section).
#include <cstdlib>

namespace ktune::cli {

std::string token_or_env(const std::string& given) {
  if (!given.empty()) return given;
  const char* env = std::getenv("KTUNE_TOKEN");
  return env ? env : "";
}

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int wait_for_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace ktune::cli
