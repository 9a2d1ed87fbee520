// `ktune worker`: measures candidates for a daemon on this machine until
// SIGINT or SIGTERM (then it finishes and reports the batch in hand). What
// it does is logged on stderr.
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "logging/log.h"
#include "workers/worker.h"

namespace ktune::cli {

namespace {

struct WorkerArgs {
  WorkerOptions options;
  std::string device = "cpu";
  std::string key;
  int threads = 0;
  std::string compiler;
  std::string log_level = "info";
};

int run_worker_command(WorkerArgs& args) {
  logging::setup(args.log_level, args.options.name.empty() ? "worker" : "worker " + args.options.name);
  args.options.token = token_or_env(args.options.token);
  args.options.target = target_from_flag("--device", args.device, args.threads);
  if (!args.compiler.empty()) args.options.target.cpu.compiler = args.compiler;
  args.options.target.key = args.key;
  // Simulated costs must never pass for measurements of the real device.
  if (args.options.simulate && args.key.empty()) args.options.target.key = "sim/" + args.options.target.device_key();
  sigset_t signals = block_stop_signals();
  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    const int sig = wait_for_signal(signals);
    spdlog::info("{}: stopping after the batch in hand", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop = true;
  });
  signal_thread.detach();  // the process ends with run_worker
  if (args.options.simulate) {
    spdlog::info("{}; device key {}; simulated: measures nothing, {} ms per item", args.options.target.describe(),
                 args.options.target.device_key(), args.options.simulate_ms);
  } else {
    spdlog::info("{}; device key {}{}", args.options.target.describe(), args.options.target.device_key(),
                 args.options.noop ? "; noop: measures nothing" : "");
  }
  const int code = run_worker(args.options, stop);
  if (code == 0) spdlog::info("stopped");
  return code;
}

}  // namespace

CommandRun add_worker_command(CLI::App& app) {
  auto w = std::make_shared<WorkerArgs>();
  CLI::App* worker = app.add_subcommand("worker", "measure candidates for a daemon on this machine");
  worker->add_option("--daemon", w->options.daemon, "daemon address HOST:PORT")->required();
  worker->add_option("--token", w->options.token, "the daemon's token (default: $KTUNE_TOKEN)");
  worker->add_option("--tls-ca", w->options.tls.ca_file, "PEM CA certificate to verify the daemon (enables TLS)");
  worker->add_option("--tls-cert", w->options.tls.cert_file, "PEM client certificate (mutual TLS)");
  worker->add_option("--tls-key", w->options.tls.key_file, "PEM client key (mutual TLS)");
  worker->add_option("--device", w->device, "device to measure on: cpu or cuda:N")->capture_default_str();
  worker->add_option("--key", w->key, "device key to register as (default: derived from the hardware)");
  add_threads_option(worker, w->threads, "threads for generated kernels (default: all cores)");
  worker->add_option("--parallel", w->options.parallel, "items leased and built in parallel at a time")
      ->capture_default_str()->check(CLI::PositiveNumber);
  worker->add_option("--name", w->options.name, "worker name (default: host name and pid)");
  worker->add_option("--cache-dir", w->options.measurer.cache_dir, "artifact cache directory");
  worker->add_option("--compiler", w->compiler, "C++ compiler for kernels (default: c++)");
  CLI::Option* noop = worker->add_flag(
      "--noop", w->options.noop, "measure nothing: answer every item with a fixed 1 ms result (benchmarks the daemon alone)");
  CLI::Option* simulate = worker->add_flag(
      "--simulate", w->options.simulate,
      "measure nothing: answer each item after --simulate-ms with a deterministic cost a model of the device gives "
      "(scaling benchmarks of the farm and the search); the device key defaults to sim/<derived key>");
  simulate->excludes(noop);
  worker->add_option("--simulate-ms", w->options.simulate_ms, "--simulate: milliseconds one item takes")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->needs(simulate);
  worker->add_option("--log-level", w->log_level, kLogLevelHelp)->capture_default_str();
  return [w] { return run_worker_command(*w); };
}

}  // namespace ktune::cli
