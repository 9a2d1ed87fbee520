// `ktune daemon`: the tuning daemon (jobs, the device farm, the database)
// until SIGINT or SIGTERM. Its one stdout line says where it listens (tests
// and scripts read the port there); everything else is the log on stderr.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "logging/log.h"
#include "service/jobs.h"
#include "service/server.h"

namespace ktune::cli {

namespace {

struct DaemonArgs {
  ServerOptions server;
  std::string db_path = "ktune.db";
  FarmOptions farm;
  JobLimits jobs;
  int max_request_mb = 4;
  std::string log_level = "info";
};

int run_daemon(DaemonArgs& args) {
  logging::setup(args.log_level, "daemon");
  args.server.token = token_or_env(args.server.token);
  sigset_t signals = block_stop_signals();
  std::unique_ptr<Database> db = Database::open(args.db_path);
  args.server.max_message_bytes = args.max_request_mb << 20;
  DeviceFarm farm(args.farm);
  JobManager jobs(*db, farm, args.jobs);
  DaemonServer server(*db, farm, jobs, args.server);
  const std::string address =
      args.server.listen.substr(0, args.server.listen.rfind(':')) + ":" + std::to_string(server.port());
  const std::string details = std::string("database ") + args.db_path +
                              (args.server.token.empty() ? "" : ", token required") +
                              (args.server.tls_cert.empty() ? "" : ", TLS");
  std::cout << "ktune daemon: listening on " << address << " (" << details << ")" << std::endl;
  spdlog::info("listening on {} ({}); lease timeout {} s, heartbeat {} s, {} leases per item at most", address,
               details, args.farm.lease_timeout_s, args.farm.heartbeat_s, args.farm.max_attempts);
  spdlog::info("limits: {} unfinished jobs, {} measurement items, {} workers, {} calls at once, {} MiB per request",
               args.jobs.max_jobs, args.farm.max_items, args.farm.max_workers, args.server.max_calls,
               args.max_request_mb);
  jobs.resume();
  const int sig = wait_for_signal(signals);
  spdlog::info("{}: stopping; unfinished jobs resume at the next start", sig == SIGINT ? "SIGINT" : "SIGTERM");
  jobs.shutdown();
  farm.shutdown();
  server.shutdown();
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace

CommandRun add_daemon_command(CLI::App& app) {
  auto d = std::make_shared<DaemonArgs>();
  CLI::App* daemon = app.add_subcommand("daemon", "run the tuning daemon: jobs, the device farm, the database");
  daemon->add_option("--listen", d->server.listen, "address to listen on (non-loopback needs --token)")
      ->capture_default_str();
  daemon->add_option("--db", d->db_path, "SQLite tuning log (jobs and records)")->capture_default_str();
  daemon->add_option("--token", d->server.token, "token every call must carry (default: $KTUNE_TOKEN)");
  daemon->add_option("--tls-cert", d->server.tls_cert, "PEM server certificate (enables TLS)");
  daemon->add_option("--tls-key", d->server.tls_key, "PEM server key");
  daemon->add_option("--tls-ca", d->server.tls_ca, "PEM CA: require client certificates signed by it");
  daemon->add_option("--lease-timeout", d->farm.lease_timeout_s, "seconds without heartbeat before an item is requeued")
      ->capture_default_str()->check(CLI::PositiveNumber);
  daemon->add_option("--heartbeat", d->farm.heartbeat_s, "heartbeat period workers are told to use (s)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  daemon->add_option("--max-attempts", d->farm.max_attempts, "leases of one item before it is recorded as device_lost")
      ->capture_default_str()->check(CLI::PositiveNumber);
  // Limits: a flood of clients or workers gets RESOURCE_EXHAUSTED naming the
  // flag, and the daemon's memory stays bounded.
  daemon->add_option("--max-jobs", d->jobs.max_jobs, "unfinished jobs at once; more submissions are refused")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  daemon->add_option("--max-queued-items", d->farm.max_items,
                     "measurement items queued or leased at once; jobs wait and new submissions are refused past it")
      ->capture_default_str()->check(CLI::Range(1, 10000000));
  daemon->add_option("--max-workers", d->farm.max_workers,
                     "workers registered; past it the longest-lost one is forgotten, or registering is refused")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  daemon->add_option("--max-calls", d->server.max_calls,
                     "calls served at once (each waiting lease holds one); more are refused")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  daemon->add_option("--max-request-mb", d->max_request_mb, "largest request accepted (MiB)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  daemon->add_option("--log-level", d->log_level, kLogLevelHelp)->capture_default_str();
  return [d] { return run_daemon(*d); };
}

}  // namespace ktune::cli
