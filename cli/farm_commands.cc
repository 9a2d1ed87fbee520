// The device-farm commands: `ktune daemon` and `ktune worker`, and the
// clients `ktune submit`, `jobs`, `job`, `cancel` and `workers`.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "proto/ktune.grpc.pb.h"
#include "schedule_space/error.h"
#include "service/jobs.h"
#include "service/server.h"
#include "workers/client.h"
#include "workers/convert.h"
#include "workers/worker.h"

namespace ktune::cli {

namespace {

constexpr const char* kDefaultDaemon = "127.0.0.1:7117";

// The token: --token, else $KTUNE_TOKEN (which keeps it out of `ps`).
std::string token_or_env(const std::string& given) {
  if (!given.empty()) return given;
  const char* env = std::getenv("KTUNE_TOKEN");
  return env ? env : "";
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after;
// wait_for_signal() then takes them synchronously.
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

struct ClientArgs {
  std::string daemon = kDefaultDaemon;
  std::string token;
  ClientTls tls;
  std::string format = "text";
};

void add_client_options(CLI::App* cmd, ClientArgs& a) {
  cmd->add_option("--daemon", a.daemon, "daemon address HOST:PORT")->capture_default_str();
  cmd->add_option("--token", a.token, "token the daemon requires (default: $KTUNE_TOKEN)");
  cmd->add_option("--tls-ca", a.tls.ca_file, "PEM CA certificate to verify the daemon (enables TLS)");
  cmd->add_option("--tls-cert", a.tls.cert_file, "PEM client certificate (mutual TLS)");
  cmd->add_option("--tls-key", a.tls.key_file, "PEM client key (mutual TLS)");
}

std::unique_ptr<v1::Tuning::Stub> tuning_stub(const ClientArgs& a) {
  return v1::Tuning::NewStub(make_channel(a.daemon, a.tls));
}

// Runs one call; a failed status becomes a ktune::Error naming the daemon.
template <typename Call>
void call(const ClientArgs& a, const char* what, Call&& c) {
  grpc::ClientContext ctx;
  prepare_context(ctx, token_or_env(a.token), 30);
  grpc::Status s = c(ctx);
  if (!s.ok()) throw Error(std::string(what) + " at " + a.daemon + " failed: " + status_text(s));
}

nlohmann::json json_of(const google::protobuf::Message& m) { return nlohmann::json::parse(wire::to_json(m)); }

int trials_done(const v1::JobStatus& j) {
  int n = 0;
  for (const auto& t : j.tasks()) n += t.trials_done();
  return n;
}

void print_job(const v1::JobStatus& j, std::ostream& out) {
  out << j.job_id() << "  " << j.state() << "  " << j.spec().device_key() << "  " << trials_done(j) << "/"
      << j.spec().trials() * j.tasks_size() << " trials  tuner " << j.spec().tuner() << "  " << j.workers()
      << " workers\n";
  if (!j.message().empty()) out << "  " << j.message() << "\n";
  for (const auto& t : j.tasks()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f GFLOP/s", t.best_gflops());
    out << "  " << std::left << std::setw(8) << t.state() << std::right << std::setw(5) << t.trials_done() << "/"
        << t.trials_total() << "  " << (t.best_gflops() > 0 ? buf : "-") << "  " << t.errors() << " errors  "
        << t.workload_key() << "\n";
  }
}

// --- ktune daemon ---

struct DaemonArgs {
  ServerOptions server;
  std::string db_path = "ktune.db";
  FarmOptions farm;
};

int run_daemon(DaemonArgs& args) {
  args.server.token = token_or_env(args.server.token);
  sigset_t signals = block_stop_signals();
  std::unique_ptr<Database> db = Database::open(args.db_path);
  DeviceFarm farm(args.farm);
  JobManager jobs(*db, farm);
  DaemonServer server(*db, farm, jobs, args.server);
  std::cout << "ktune daemon: listening on " << args.server.listen.substr(0, args.server.listen.rfind(':')) << ":"
            << server.port() << " (database " << args.db_path << (args.server.token.empty() ? "" : ", token required")
            << (args.server.tls_cert.empty() ? "" : ", TLS") << ")" << std::endl;
  jobs.resume();
  const int sig = wait_for_signal(signals);
  std::cerr << "ktune daemon: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
            << ": stopping; unfinished jobs resume at the next start" << std::endl;
  jobs.shutdown();
  farm.shutdown();
  server.shutdown();
  return kExitOk;
}

// --- ktune worker ---

struct WorkerArgs {
  WorkerOptions options;
  std::string device = "cpu";
  std::string key;
  int threads = 0;
  std::string compiler;
};

int run_worker_command(WorkerArgs& args) {
  args.options.token = token_or_env(args.options.token);
  args.options.target = target_from_flag("--device", args.device, args.threads);
  if (!args.compiler.empty()) args.options.target.cpu.compiler = args.compiler;
  args.options.target.key = args.key;
  sigset_t signals = block_stop_signals();
  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    wait_for_signal(signals);
    std::cerr << "ktune worker: stopping after the batch in hand" << std::endl;
    stop = true;
  });
  signal_thread.detach();  // the process ends with run_worker
  std::cerr << "ktune worker: " << args.options.target.describe() << "; device key "
            << args.options.target.device_key() << std::endl;
  return run_worker(args.options, stop);
}

// --- clients ---

struct SubmitArgs {
  ClientArgs client;
  v1::JobSpec spec;
  std::vector<std::string> ops;
  bool wait = false;
  bool no_transfer = false, no_seeds = false;
};

int follow_job(const ClientArgs& client, const std::string& id) {
  auto stub = tuning_stub(client);
  const bool tty = isatty(fileno(stderr));
  std::string last;
  while (true) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::JobStatus j;
    call(client, "following the job", [&](grpc::ClientContext& ctx) { return stub->GetJob(&ctx, req, &j); });
    std::ostringstream line;
    double best = 0;
    int tasks_done = 0;
    for (const auto& t : j.tasks()) {
      tasks_done += t.state() == "done";
      best = std::max(best, t.best_gflops());
    }
    line << id << ": " << j.state() << ", " << tasks_done << "/" << j.tasks_size() << " operators, "
         << trials_done(j) << "/" << j.spec().trials() * j.tasks_size() << " trials, " << j.workers() << " workers";
    if (!j.message().empty()) line << " (" << j.message() << ")";
    if (line.str() != last) {
      if (tty) {
        std::cerr << "\r\033[K" << line.str() << std::flush;
      } else {
        std::cerr << line.str() << std::endl;
      }
      last = line.str();
    }
    if (j.state() == "done" || j.state() == "cancelled" || j.state() == "failed") {
      if (tty) std::cerr << "\n";
      print_job(j, std::cout);
      return j.state() == "done" ? kExitOk : kExitFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int run_submit(SubmitArgs& a) {
  check_format(a.client.format);
  for (const std::string& op : a.ops) a.spec.add_ops(op);
  a.spec.set_no_transfer(a.no_transfer);
  a.spec.set_no_seeds(a.no_seeds);
  JobManager::validate(a.spec);  // the daemon checks again; this names the problem before any network
  auto stub = tuning_stub(a.client);
  v1::SubmitRequest req;
  *req.mutable_spec() = a.spec;
  v1::SubmitReply reply;
  call(a.client, "submitting the job", [&](grpc::ClientContext& ctx) { return stub->Submit(&ctx, req, &reply); });
  if (a.client.format == "json") {
    std::cout << nlohmann::json{{"job_id", reply.job_id()}}.dump() << "\n";
  } else {
    std::cout << reply.job_id() << "\n";
  }
  std::cout.flush();
  return a.wait ? follow_job(a.client, reply.job_id()) : kExitOk;
}

int run_jobs(const ClientArgs& a) {
  check_format(a.format);
  auto stub = tuning_stub(a);
  v1::ListJobsReply reply;
  call(a, "listing jobs", [&](grpc::ClientContext& ctx) { return stub->ListJobs(&ctx, v1::ListJobsRequest{}, &reply); });
  if (a.format == "json") {
    std::cout << json_of(reply).value("jobs", nlohmann::json::array()).dump(2) << "\n";
    return kExitOk;
  }
  if (reply.jobs().empty()) std::cout << "no jobs\n";
  for (const auto& j : reply.jobs()) {
    std::cout << j.job_id() << "  " << j.state() << "  " << j.spec().device_key() << "  " << trials_done(j) << "/"
              << j.spec().trials() * j.tasks_size() << " trials  " << j.tasks_size() << " operators\n";
  }
  return kExitOk;
}

int run_job_command(const ClientArgs& a, const std::string& id) {
  check_format(a.format);
  auto stub = tuning_stub(a);
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::JobStatus j;
  call(a, "getting the job", [&](grpc::ClientContext& ctx) { return stub->GetJob(&ctx, req, &j); });
  if (a.format == "json") {
    std::cout << json_of(j).dump(2) << "\n";
  } else {
    print_job(j, std::cout);
  }
  return kExitOk;
}

int run_cancel(const ClientArgs& a, const std::string& id) {
  auto stub = tuning_stub(a);
  v1::CancelJobRequest req;
  req.set_job_id(id);
  v1::CancelJobReply reply;
  call(a, "cancelling the job", [&](grpc::ClientContext& ctx) { return stub->CancelJob(&ctx, req, &reply); });
  std::cout << id << ": " << reply.job().state() << "\n";
  return kExitOk;
}

int run_workers(const ClientArgs& a) {
  check_format(a.format);
  auto stub = tuning_stub(a);
  v1::ListWorkersReply reply;
  call(a, "listing workers",
       [&](grpc::ClientContext& ctx) { return stub->ListWorkers(&ctx, v1::ListWorkersRequest{}, &reply); });
  if (a.format == "json") {
    std::cout << json_of(reply).value("workers", nlohmann::json::array()).dump(2) << "\n";
    return kExitOk;
  }
  if (reply.workers().empty()) std::cout << "no workers\n";
  for (const auto& w : reply.workers()) {
    char ago[32];
    std::snprintf(ago, sizeof ago, "%.1f s ago", w.last_heartbeat_s_ago());
    std::cout << w.worker_id() << "  " << w.worker_name() << "  " << w.device_key() << "  " << w.state() << "  "
              << w.items_done() << " items done  " << w.in_flight() << " in flight  last seen " << ago << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<std::pair<std::string, CommandRun>> add_farm_commands(CLI::App& app) {
  std::vector<std::pair<std::string, CommandRun>> out;

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
  out.emplace_back("daemon", [d] { return run_daemon(*d); });

  auto w = std::make_shared<WorkerArgs>();
  CLI::App* worker = app.add_subcommand("worker", "measure candidates for a daemon on this machine");
  worker->add_option("--daemon", w->options.daemon, "daemon address HOST:PORT")->required();
  worker->add_option("--token", w->options.token, "the daemon's token (default: $KTUNE_TOKEN)");
  worker->add_option("--tls-ca", w->options.tls.ca_file, "PEM CA certificate to verify the daemon (enables TLS)");
  worker->add_option("--tls-cert", w->options.tls.cert_file, "PEM client certificate (mutual TLS)");
  worker->add_option("--tls-key", w->options.tls.key_file, "PEM client key (mutual TLS)");
  worker->add_option("--device", w->device, "device to measure on: cpu or cuda:N")->capture_default_str();
  worker->add_option("--key", w->key, "device key to register as (default: derived from the hardware)");
  worker->add_option("--threads", w->threads, "threads for generated kernels (default: all cores)");
  worker->add_option("--parallel", w->options.parallel, "items leased and built in parallel at a time")
      ->capture_default_str()->check(CLI::PositiveNumber);
  worker->add_option("--name", w->options.name, "worker name (default: host name and pid)");
  worker->add_option("--cache-dir", w->options.measurer.cache_dir, "artifact cache directory");
  worker->add_option("--compiler", w->compiler, "C++ compiler for kernels (default: c++)");
  worker->add_flag("--noop", w->options.noop,
                   "measure nothing: answer every item with a fixed 1 ms result (benchmarks the daemon alone)");
  out.emplace_back("worker", [w] { return run_worker_command(*w); });

  auto s = std::make_shared<SubmitArgs>();
  s->spec.set_tuner("xgb");
  s->spec.set_seed(1);
  s->spec.set_final_top(-1);
  CLI::App* submit = app.add_subcommand("submit", "submit a tuning job to a daemon; prints its id");
  add_client_options(submit, s->client);
  submit->add_option("--op", s->ops, "operator spec (repeatable)")->required();
  submit->add_option("--device-key", [s](const std::vector<std::string>& v) { s->spec.set_device_key(v.at(0)); return true; },
                     "device key of the workers to measure on, e.g. cpu/amd-epyc/avx512/2t")->required();
  submit->add_option("--trials", [s](const std::vector<std::string>& v) { s->spec.set_trials(std::stoi(v.at(0))); return true; },
                     "candidates to measure per operator")->required()->check(CLI::PositiveNumber);
  submit->add_option("--tuner", [s](const std::vector<std::string>& v) { s->spec.set_tuner(v.at(0)); return true; },
                     "xgb (default), ga, random or grid");
  submit->add_option("--template", [s](const std::vector<std::string>& v) { s->spec.set_template_name(v.at(0)); return true; },
                     "schedule template (default: every template that takes the operator)");
  submit->add_option("--seed", [s](const std::vector<std::string>& v) { s->spec.set_seed(std::stoull(v.at(0))); return true; },
                     "random seed (default 1)")->check(CLI::NonNegativeNumber);
  submit->add_option("--batch-size", [s](const std::vector<std::string>& v) { s->spec.set_batch_size(std::stoi(v.at(0))); return true; },
                     "candidates per batch (default 16)")->check(CLI::PositiveNumber);
  submit->add_option("--final-top", [s](const std::vector<std::string>& v) { s->spec.set_final_top(std::stoi(v.at(0))); return true; },
                     "top candidates re-measured at the end (default 3)")->check(CLI::NonNegativeNumber);
  submit->add_option("--repeat", [s](const std::vector<std::string>& v) { s->spec.set_repeat(std::stoi(v.at(0))); return true; },
                     "timed repeats per candidate")->check(CLI::PositiveNumber);
  submit->add_flag("--no-transfer", s->no_transfer, "xgb: do not learn from other workloads' records");
  submit->add_flag("--no-seeds", s->no_seeds, "do not measure the templates' analytical seed configs first");
  submit->add_flag("--wait", s->wait, "follow the job until it ends, showing progress");
  submit->add_option("--format", s->client.format, kFormatHelp)->capture_default_str();
  out.emplace_back("submit", [s] { return run_submit(*s); });

  auto jl = std::make_shared<ClientArgs>();
  CLI::App* jobs = app.add_subcommand("jobs", "list a daemon's jobs");
  add_client_options(jobs, *jl);
  jobs->add_option("--format", jl->format, kFormatHelp)->capture_default_str();
  out.emplace_back("jobs", [jl] { return run_jobs(*jl); });

  auto jc = std::make_shared<ClientArgs>();
  auto job_id = std::make_shared<std::string>();
  CLI::App* job = app.add_subcommand("job", "show one job's progress per operator");
  add_client_options(job, *jc);
  job->add_option("id", *job_id, "job id")->required();
  job->add_option("--format", jc->format, kFormatHelp)->capture_default_str();
  out.emplace_back("job", [jc, job_id] { return run_job_command(*jc, *job_id); });

  auto cc = std::make_shared<ClientArgs>();
  auto cancel_id = std::make_shared<std::string>();
  CLI::App* cancel = app.add_subcommand("cancel", "cancel a job (its measurements stay)");
  add_client_options(cancel, *cc);
  cancel->add_option("id", *cancel_id, "job id")->required();
  out.emplace_back("cancel", [cc, cancel_id] { return run_cancel(*cc, *cancel_id); });

  auto wc = std::make_shared<ClientArgs>();
  CLI::App* workers = app.add_subcommand("workers", "list the workers a daemon knows");
  add_client_options(workers, *wc);
  workers->add_option("--format", wc->format, kFormatHelp)->capture_default_str();
  out.emplace_back("workers", [wc] { return run_workers(*wc); });
  return out;
}

}  // namespace ktune::cli
