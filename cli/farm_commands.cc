// The device farm's clients: `ktune submit`, `jobs`, `job`, `cancel`,
// `workers` and `pull`. (`ktune daemon` and `ktune worker`:
// daemon_command.cc, worker_command.cc.)
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/model.h"
#include "cli/progress.h"
#include "db/jsonl.h"
#include "proto/ktune.grpc.pb.h"
#include "schedule_space/error.h"
#include "service/jobs.h"
#include "workers/client.h"
#include "workers/convert.h"

namespace ktune::cli {

namespace {

constexpr const char* kDefaultDaemon = "127.0.0.1:7117";

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

bool is_model(const v1::JobStatus& j) { return j.kind() == "model"; }

// "1.234 ms", "56.78 us"; "-" for none.
std::string time_text(double s) {
  if (!(s > 0) || !std::isfinite(s)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 1e-4 ? "%.2f us" : "%.3f ms", s < 1e-4 ? s * 1e6 : s * 1e3);
  return buf;
}

// "estimated operator time 1.234 ms (untuned 5.678 ms, 4.60x)".
std::string model_time_text(const v1::JobStatus& j) {
  std::string text = "estimated operator time " + time_text(j.estimated_s()) + " (untuned " + time_text(j.untuned_s());
  if (j.estimated_s() > 0 && j.untuned_s() > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ", %.2fx", j.untuned_s() / j.estimated_s());
    text += buf;
  }
  return text + ")";
}

void print_job(const v1::JobStatus& j, std::ostream& out) {
  out << j.job_id() << "  " << j.state() << "  " << j.spec().device_key() << "  " << j.trials_done() << "/"
      << j.trials_total() << " trials";
  if (j.in_flight() > 0) out << " (" << j.in_flight() << " in flight)";
  out << "  tuner " << j.spec().tuner() << "  " << j.workers() << " workers\n";
  if (is_model(j)) out << "  model " << j.spec().model() << ": " << model_time_text(j) << "\n";
  if (!j.message().empty()) out << "  " << j.message() << "\n";
  for (const auto& t : j.tasks()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f GFLOP/s", t.best_gflops());
    out << "  " << std::left << std::setw(8) << t.state() << std::right << std::setw(5) << t.trials_done();
    if (is_model(j)) {
      out << " trials  " << std::setw(11) << time_text(t.best_s()) << "  " << (t.best_gflops() > 0 ? buf : "-")
          << "  x" << t.weight();
    } else {
      out << "/" << t.trials_total() << "  " << (t.best_gflops() > 0 ? buf : "-");
    }
    out << "  " << t.errors() << " errors  " << t.workload_key() << "\n";
  }
}

// --- clients ---

struct SubmitArgs {
  ClientArgs client;
  v1::JobSpec spec;
  std::vector<std::string> ops;
  std::string model;
  std::vector<std::string> input_shapes;
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
    line << id << ": " << j.state() << ", " << tasks_done << "/" << j.tasks_size()
         << (is_model(j) ? " tasks, " : " operators, ") << j.trials_done() << "/" << j.trials_total() << " trials";
    if (j.in_flight() > 0) line << " (" << j.in_flight() << " in flight)";
    line << ", " << j.workers() << " workers";
    if (is_model(j)) line << "; " << model_time_text(j);
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
  if (a.model.empty() == a.ops.empty()) {
    throw Error(a.ops.empty() ? "give a model file or at least one --op" : "give a model file or --op, not both");
  }
  if (!a.model.empty()) {
    // The model's tasks with their weights travel; the daemon needs no file.
    const ModelTasks model = load_model(a.model, a.input_shapes);
    if (model.tasks.empty()) throw Error(a.model + " has no operator ktune can tune");
    for (const ModelTask& t : model.tasks) {
      v1::ModelTask* mt = a.spec.add_tasks();
      mt->set_workload_key(t.workload.key());
      mt->set_weight(t.weight);
    }
    a.spec.set_model(std::filesystem::path(a.model).filename().string());
  } else if (!a.input_shapes.empty() || a.spec.task_cap() != 0) {
    throw Error("--input-shape and --task-cap are for a model");
  }
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
    std::cout << j.job_id() << "  " << j.state() << "  " << j.spec().device_key() << "  " << j.trials_done() << "/"
              << j.trials_total() << " trials  " << j.tasks_size() << (is_model(j) ? " tasks of " + j.spec().model() : " operators") << "\n";
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

// --- ktune pull ---

struct PullArgs {
  ClientArgs client;
  std::string job;
  std::string device_key;
  std::string db_path = "ktune.db";
};

int run_pull(const PullArgs& a) {
  check_format(a.client.format);
  if (a.job.empty() == a.device_key.empty()) throw Error("give --job ID or --device-key KEY (one of them)");
  auto stub = tuning_stub(a.client);
  v1::PullRequest req;
  req.set_job_id(a.job);
  req.set_device_key(a.device_key);
  grpc::ClientContext ctx;
  prepare_context(ctx, token_or_env(a.client.token), 600);
  std::unique_ptr<grpc::ClientReader<v1::PullChunk>> reader = stub->Pull(&ctx, req);
  std::string text;
  v1::PullChunk chunk;
  while (reader->Read(&chunk)) {
    for (const std::string& line : chunk.lines()) text.append(line).push_back('\n');
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) throw Error("pulling records from " + a.client.daemon + " failed: " + status_text(status));
  // Validated whole before the database is touched; stored in one transaction.
  std::istringstream in(text);
  const std::string what = a.job.empty() ? "the records of " + a.device_key : "the records of job " + a.job;
  const ImportFile file = read_jsonl(in, what + " from " + a.client.daemon, false);
  std::unique_ptr<Database> db = Database::open(a.db_path);
  const ImportSummary s = import_file(*db, file);
  if (a.client.format == "json") {
    std::cout << nlohmann::json{{"records", s.lines}, {"imported", s.imported}, {"duplicates", s.duplicates},
                                {"marked_best", s.marked}, {"kept_existing_best", s.kept_existing}, {"db", a.db_path}}
                     .dump()
              << "\n";
  } else {
    std::cout << "pulled " << s.lines << " records (" << what << ") into " << a.db_path << ": " << s.imported
              << " new, " << s.duplicates << " already there; " << s.marked << " marked best, " << s.kept_existing
              << " kept the database's faster best\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<std::pair<std::string, CommandRun>> add_farm_commands(CLI::App& app) {
  std::vector<std::pair<std::string, CommandRun>> out;

  auto s = std::make_shared<SubmitArgs>();
  s->spec.set_tuner("xgb");
  s->spec.set_seed(1);
  s->spec.set_final_top(-1);
  CLI::App* submit = app.add_subcommand("submit", "submit a tuning job to a daemon; prints its id");
  add_client_options(submit, s->client);
  submit->add_option("model", s->model, "ONNX model: tune all its tunable operators within --trials, on the farm");
  submit->add_option("--op", s->ops, "operator spec (repeatable)");
  submit->add_option("--input-shape", s->input_shapes,
                     "model: shape of an input with dynamic dimensions, NAME=D1xD2x... (repeatable)");
  submit->add_option("--task-cap", [s](const std::vector<std::string>& v) { s->spec.set_task_cap(std::stoi(v.at(0))); return true; },
                     "model: at most this many trials per task (default: no cap)")->check(CLI::NonNegativeNumber);
  submit->add_option("--device-key", [s](const std::vector<std::string>& v) { s->spec.set_device_key(v.at(0)); return true; },
                     "device key of the workers to measure on, e.g. cpu/amd-epyc/avx512/2t")->required();
  submit->add_option("--trials", [s](const std::vector<std::string>& v) { s->spec.set_trials(std::stoi(v.at(0))); return true; },
                     "candidates to measure per operator (a model: in all)")->required()->check(CLI::PositiveNumber);
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

  auto pl = std::make_shared<PullArgs>();
  CLI::App* pull = app.add_subcommand("pull", "copy a job's or a device key's records from a daemon into a local database");
  add_client_options(pull, pl->client);
  pull->add_option("--job", pl->job, "the job whose records to copy");
  pull->add_option("--device-key", pl->device_key, "or: every record of this device key");
  pull->add_option("--db", pl->db_path, "local SQLite tuning log (created if missing)")->capture_default_str();
  pull->add_option("--format", pl->client.format, kFormatHelp)->capture_default_str();
  out.emplace_back("pull", [pl] { return run_pull(*pl); });
  return out;
}

}  // namespace ktune::cli
