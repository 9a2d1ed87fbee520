// The device farm end to end with real processes on loopback: `ktune daemon`
// and `ktune worker` executables, real gRPC, a real SQLite file, real
// measurements (and the --noop measurement mode where only routing matters).
// Faults are real too: SIGKILL of a worker and of the daemon mid-job.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "db/database.h"
#include "schedule_space/workload.h"
#include "ktune_command.h"
#include "proto/ktune.grpc.pb.h"
#include "scratch_dir.h"
#include "tests/farm_fixture.h"
#include "workers/client.h"

namespace ktune {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::kKtune;
using testing::Process;
using testing::ScratchDir;

const std::string kOp = "matmul(m=64,n=64,k=64)";

class FarmProcessTest : public testing::FarmFixture {
 protected:
  std::string submit(const std::string& key, int trials, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"submit", "--op", kOp, "--device-key", key, "--trials", std::to_string(trials)};
    args.insert(args.end(), extra.begin(), extra.end());
    testing::CommandOutput out = client(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    std::string id = out.out.substr(0, out.out.find('\n'));
    EXPECT_EQ(id.rfind("job-", 0), 0u) << out.out;
    return id;
  }

  std::string job_state(const std::string& id) {
    auto db = Database::open(db_path());
    std::optional<JobRow> row = db->job(id);
    return row ? row->state : "";
  }

  // config -> number of search records of the job.
  std::map<std::string, int> search_configs(const std::string& job) {
    auto db = Database::open(db_path());
    std::map<std::string, int> n;
    for (const Record& r : job_records(*db, job)) {
      if (r.kind == "search") ++n[r.template_name + "#" + std::to_string(r.config_index)];
    }
    return n;
  }
  static std::vector<Record> job_records(const Database& db, const std::string& job) {
    std::vector<Record> out;
    // The operator's records on the test's device keys, filtered by job.
    const std::string w = Workload::parse(kOp).key();
    for (const std::string& key : keys_) {
      for (Record& r : db.history(w, key)) {
        if (r.job == job) out.push_back(std::move(r));
      }
    }
    return out;
  }

  static inline std::vector<std::string> keys_;
};

TEST_F(FarmProcessTest, ADaemonAndTwoWorkersCompleteAJobWithOneRecordPerConfig) {
  const std::string key = device_key();
  keys_ = {key};
  auto daemon = start_daemon();
  auto a = start_worker("wA");
  auto b = start_worker("wB");
  const std::string job = submit(key, 24, {"--wait"});
  EXPECT_EQ(job_state(job), "done");
  std::map<std::string, int> configs = search_configs(job);
  EXPECT_EQ(configs.size(), 24u);
  for (const auto& [config, n] : configs) EXPECT_EQ(n, 1) << config;
  auto db = Database::open(db_path());
  std::set<std::string> workers;
  int finals = 0;
  for (const Record& r : job_records(*db, job)) {
    workers.insert(r.result.worker);
    finals += r.kind == "final";
    EXPECT_TRUE(r.result.ok()) << r.result.error_message;
  }
  EXPECT_GE(finals, 3);  // the top 3, and the untuned default unless it is one of them
  EXPECT_LE(finals, 4);
  EXPECT_EQ(workers, (std::set<std::string>{"wA", "wB"}));  // both did work
  EXPECT_TRUE(db->best(Workload::parse(kOp).key(), key).has_value());
  testing::CommandOutput shown = client({"job", job});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("24/24"), std::string::npos) << shown.out;
  testing::CommandOutput listed = client({"workers"});
  EXPECT_NE(listed.out.find("wA"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("wB"), std::string::npos) << listed.out;
  // SIGTERM: workers and daemon stop cleanly.
  a->kill(SIGTERM);
  b->kill(SIGTERM);
  EXPECT_EQ(a->wait(), 0) << a->log();
  EXPECT_EQ(b->wait(), 0) << b->log();
  daemon->kill(SIGTERM);
  EXPECT_EQ(daemon->wait(), 0) << daemon->log();
}

TEST_F(FarmProcessTest, AWorkerKilledMidJobLosesNothingAndDuplicatesNothing) {
  const std::string key = device_key();
  keys_ = {key};
  auto daemon = start_daemon();
  auto a = start_worker("wA");
  auto b = start_worker("wB");
  const std::string job = submit(key, 40, {"--no-seeds", "--final-top", "0"});
  ASSERT_TRUE(eventually([&] { return search_configs(job).size() >= 8; })) << daemon->log();
  a->kill(SIGKILL);
  ASSERT_TRUE(eventually([&] { return job_state(job) == "done"; })) << daemon->log() << b->log();
  std::map<std::string, int> configs = search_configs(job);
  EXPECT_EQ(configs.size(), 40u);
  for (const auto& [config, n] : configs) EXPECT_EQ(n, 1) << config;
  auto db = Database::open(db_path());
  for (const Record& r : job_records(*db, job)) {
    EXPECT_NE(r.result.error, MeasureError::kDeviceLost) << r.result.error_message;
  }
}

TEST_F(FarmProcessTest, ADaemonKilledMidJobResumesAfterRestartKeepingEveryRecord) {
  const std::string key = device_key();
  keys_ = {key};
  auto daemon = start_daemon();
  auto a = start_worker("wA");
  auto b = start_worker("wB");
  const std::string job = submit(key, 48, {"--no-seeds"});
  ASSERT_TRUE(eventually([&] { return search_configs(job).size() >= 12; })) << daemon->log();
  daemon->kill(SIGKILL);
  std::vector<Record> before;
  {
    auto db = Database::open(db_path());
    before = job_records(*db, job);
    EXPECT_EQ(db->job(job)->state, "running");
  }
  ASSERT_GE(before.size(), 12u);
  daemon = start_daemon();
  ASSERT_TRUE(eventually([&] { return job_state(job) == "done"; })) << daemon->log() << a->log();
  std::map<std::string, int> configs = search_configs(job);
  EXPECT_EQ(configs.size(), 48u);
  for (const auto& [config, n] : configs) EXPECT_EQ(n, 1) << config;
  auto db = Database::open(db_path());
  std::set<int64_t> ids;
  for (const Record& r : job_records(*db, job)) ids.insert(r.id);
  for (const Record& r : before) EXPECT_TRUE(ids.count(r.id)) << "record " << r.id << " lost";
  // The workers find the restarted daemon on their own. The job can be done
  // before both have: one worker may still be waiting out its back-off from
  // the calls that failed while the daemon was down (seen under ASan).
  auto registered_again = [](const auto& w) {
    return eventually([&] { return w->log().find("registering again") != std::string::npos; });
  };
  EXPECT_TRUE(registered_again(a)) << a->log();
  EXPECT_TRUE(registered_again(b)) << b->log();
  EXPECT_TRUE(a->running());
  EXPECT_TRUE(b->running());
}

TEST_F(FarmProcessTest, JobsForTwoDeviceKeysGoOnlyToMatchingWorkers) {
  keys_ = {"lab/key-a", "lab/key-b"};
  auto daemon = start_daemon();
  auto a = start_worker("wA", {"--key", "lab/key-a", "--noop"});
  auto b = start_worker("wB", {"--key", "lab/key-b", "--noop"});
  const std::string job_a = submit("lab/key-a", 20, {"--tuner", "random"});
  const std::string job_b = submit("lab/key-b", 20, {"--tuner", "random"});
  ASSERT_TRUE(eventually([&] { return job_state(job_a) == "done" && job_state(job_b) == "done"; })) << daemon->log();
  auto db = Database::open(db_path());
  std::vector<Record> ra = job_records(*db, job_a), rb = job_records(*db, job_b);
  // 20 trials, and 3 re-measured with the untuned default unless it is among them.
  EXPECT_GE(ra.size(), 23u);
  EXPECT_LE(ra.size(), 24u);
  EXPECT_GE(rb.size(), 23u);
  EXPECT_LE(rb.size(), 24u);
  for (const Record& r : ra) {
    EXPECT_EQ(r.result.worker, "wA");
    EXPECT_EQ(r.device_key, "lab/key-a");
  }
  for (const Record& r : rb) {
    EXPECT_EQ(r.result.worker, "wB");
    EXPECT_EQ(r.device_key, "lab/key-b");
  }
}

TEST_F(FarmProcessTest, AMissingOrWrongTokenIsRefused) {
  auto daemon = start_daemon({"--token", "s3cret"});
  testing::CommandOutput none = client({"jobs"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("UNAUTHENTICATED"), std::string::npos) << none.err;
  testing::CommandOutput wrong = client({"jobs", "--token", "guess"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("wrong token"), std::string::npos) << wrong.err;
  testing::CommandOutput right = client({"jobs", "--token", "s3cret"});
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_NE(right.out.find("no jobs"), std::string::npos);
  auto w = start_worker("wBad", {"--token", "guess", "--noop"});
  EXPECT_EQ(w->wait(), 2);
  EXPECT_NE(w->log().find("refused"), std::string::npos) << w->log();
  auto good = start_worker("wGood", {"--token", "s3cret", "--noop"});
  EXPECT_TRUE(eventually([&] { return good->log().find("registered with") != std::string::npos; }, 30s)) << good->log();
}

TEST_F(FarmProcessTest, MalformedRequestsGetAClearStatusAndTheDaemonKeepsServing) {
  auto daemon = start_daemon();
  auto channel = make_channel(address_);
  auto tuning = v1::Tuning::NewStub(channel);
  auto farm = v1::Farm::NewStub(channel);
  auto expect = [](grpc::Status s, grpc::StatusCode code, const std::string& words) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_NE(s.error_message().find(words), std::string::npos) << s.error_message();
  };
  auto submit_spec = [&](v1::JobSpec spec) {
    grpc::ClientContext ctx;
    v1::SubmitRequest req;
    *req.mutable_spec() = spec;
    v1::SubmitReply reply;
    return tuning->Submit(&ctx, req, &reply);
  };
  v1::JobSpec good;
  good.add_ops(kOp);
  good.set_device_key("cpu/x/avx2/1t");
  good.set_trials(4);
  v1::JobSpec spec = good;
  spec.set_trials(0);
  expect(submit_spec(spec), grpc::StatusCode::INVALID_ARGUMENT, "trials");
  spec = good;
  spec.set_ops(0, "matmul(m=64,n=64");
  expect(submit_spec(spec), grpc::StatusCode::INVALID_ARGUMENT, "matmul(m=64,n=64");
  spec = good;
  spec.clear_ops();
  expect(submit_spec(spec), grpc::StatusCode::INVALID_ARGUMENT, "no operators");
  spec = good;
  spec.set_tuner("magic");
  expect(submit_spec(spec), grpc::StatusCode::INVALID_ARGUMENT, "unknown tuner 'magic'");
  spec = good;
  spec.set_device_key("");
  expect(submit_spec(spec), grpc::StatusCode::INVALID_ARGUMENT, "device key");
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id("job-nope");
    v1::JobStatus reply;
    expect(tuning->GetJob(&ctx, req, &reply), grpc::StatusCode::NOT_FOUND, "job-nope");
  }
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    v1::CancelJobReply reply;
    expect(tuning->CancelJob(&ctx, req, &reply), grpc::StatusCode::INVALID_ARGUMENT, "job_id");
  }
  {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker_id("w-unknown");
    req.set_max_items(1);
    v1::LeaseReply reply;
    expect(farm->Lease(&ctx, req, &reply), grpc::StatusCode::NOT_FOUND, "register again");
  }
  {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker_id("w-unknown");
    req.set_max_items(0);
    v1::LeaseReply reply;
    expect(farm->Lease(&ctx, req, &reply), grpc::StatusCode::INVALID_ARGUMENT, "max_items");
  }
  {
    grpc::ClientContext ctx;
    v1::RegisterRequest req;
    req.set_protocol_version(7);
    v1::RegisterReply reply;
    expect(farm->Register(&ctx, req, &reply), grpc::StatusCode::FAILED_PRECONDITION, "protocol 7");
  }
  {
    grpc::ClientContext ctx;
    v1::RegisterRequest req;
    req.set_protocol_version(v1::PROTOCOL_VERSION);
    req.mutable_device()->mutable_target()->set_kind("quantum");
    v1::RegisterReply reply;
    expect(farm->Register(&ctx, req, &reply), grpc::StatusCode::INVALID_ARGUMENT, "quantum");
  }
  {
    grpc::ClientContext ctx;
    v1::ReportRequest req;
    req.set_worker_id("w-unknown");
    auto* r = req.add_results();
    r->set_item_id("i-1");
    r->mutable_result()->add_costs(std::numeric_limits<double>::quiet_NaN());
    v1::ReportReply reply;
    expect(farm->Report(&ctx, req, &reply), grpc::StatusCode::INVALID_ARGUMENT, "finite");
  }
  // Still serving, and a good job is accepted.
  EXPECT_TRUE(submit_spec(good).ok());
  testing::CommandOutput listed = client({"jobs"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("waiting"), std::string::npos) << listed.out;  // no worker of cpu/x/avx2/1t
  EXPECT_TRUE(daemon->running());
}

TEST_F(FarmProcessTest, ADaemonRefusesANonLoopbackAddressWithoutAToken) {
  testing::CommandOutput out = testing::run_ktune(
      dir_.path(), {"daemon", "--listen", "0.0.0.0:" + std::to_string(port_), "--db", db_path()});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.err.find("needs a token"), std::string::npos) << out.err;
}

TEST_F(FarmProcessTest, ACancelledJobStopsAndKeepsItsRecords) {
  keys_ = {"lab/slow"};
  auto daemon = start_daemon();
  auto a = start_worker("wA", {"--key", "lab/slow", "--noop"});
  const std::string job = submit("lab/slow", 100000, {"--tuner", "random", "--batch-size", "4"});
  ASSERT_TRUE(eventually([&] { return search_configs(job).size() >= 8; })) << daemon->log();
  testing::CommandOutput out = client({"cancel", job});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(job_state(job), "cancelled");
  std::this_thread::sleep_for(500ms);
  const size_t after_cancel = search_configs(job).size();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(search_configs(job).size(), after_cancel);  // nothing more measured
  EXPECT_GE(after_cancel, 8u);
  testing::CommandOutput again = client({"cancel", job});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already ended"), std::string::npos) << again.err;
}

TEST_F(FarmProcessTest, WithTlsClientsThatVerifyTheDaemonGetInAndPlaintextDoesNot) {
  const std::string cert = (dir_ / "cert.pem").string(), key = (dir_ / "key.pem").string();
  const int made = testing::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                                cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                                "subjectAltName=IP:127.0.0.1,DNS:localhost"},
                                        {}, dir_ / "openssl.log");
  if (made == 127) GTEST_SKIP() << "the openssl program is not installed (scripts/install-deps.sh installs it)";
  ASSERT_EQ(made, 0) << testing::read_file(dir_ / "openssl.log");
  auto daemon = start_daemon({"--tls-cert", cert, "--tls-key", key, "--token", "t"});
  testing::CommandOutput ok = client({"jobs", "--tls-ca", cert, "--token", "t"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("no jobs"), std::string::npos) << ok.out;
  testing::CommandOutput plain = client({"jobs", "--token", "t"});
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_NE(plain.err.find("UNAVAILABLE"), std::string::npos) << plain.err;
  auto w = start_worker("wTls", {"--tls-ca", cert, "--token", "t", "--noop"});
  EXPECT_TRUE(eventually([&] { return w->log().find("registered with") != std::string::npos; }, 30s)) << w->log();
}

}  // namespace
}  // namespace ktune

// --- logging (logging/log.h) and simulated workers (workers/simulated_device.h) ---

#include <regex>
#include <sstream>

namespace ktune {
namespace {

// A background ktune process with stdout and stderr in separate files.
class SplitProcess {
 public:
  SplitProcess(const std::filesystem::path& dir, const std::string& name, std::vector<std::string> args)
      : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {
    args.insert(args.begin(), kKtune);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
      dup2(open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
      setenv("KTUNE_CACHE_DIR", (dir / "cache").c_str(), 1);
      unsetenv("KTUNE_TOKEN");
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kKtune.c_str(), argv.data());
      _exit(127);
    }
  }
  ~SplitProcess() {
    if (!exited_) stop(SIGKILL);
  }
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string out() const { return testing::read_file(out_); }
  std::string err() const { return testing::read_file(err_); }

 private:
  std::filesystem::path out_, err_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Lines of text that do not start with "[YYYY-MM-DD HH:MM:SS.mmm] [level] [process] ".
std::vector<std::string> lines_not_logged(const std::string& text, const std::string& process) {
  const std::regex logged(R"(^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] \[(trace|debug|info|warning|error|critical)\] \[)" +
                          process + R"(\] \S.*$)");
  std::vector<std::string> bad;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!std::regex_match(line, logged)) bad.push_back(line);
  }
  return bad;
}

TEST_F(FarmProcessTest, WithLogLevelDebugTheDaemonAndWorkerLogTimeStampedLevelledLinesOnStderr) {
  keys_ = {"lab/log"};
  SplitProcess daemon(dir_.path(), "daemon-log",
                      {"daemon", "--listen", address_, "--db", db_path(), "--lease-timeout", "2", "--heartbeat", "0.5",
                       "--log-level", "debug"});
  ASSERT_TRUE(eventually([&] { return daemon.out().find("listening on") != std::string::npos; }, 30s)) << daemon.err();
  auto worker = start_worker("wLog", {"--key", "lab/log", "--noop", "--log-level", "debug"});
  const std::string job = submit("lab/log", 4, {"--tuner", "random"});
  ASSERT_TRUE(eventually([&] { return job_state(job) == "done"; })) << daemon.err();
  worker->kill(SIGTERM);
  EXPECT_EQ(worker->wait(), 0) << worker->log();
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.err();

  // stdout: the address line alone, for scripts; the log is on stderr.
  const std::string out = daemon.out();
  EXPECT_EQ(out.rfind("ktune daemon: listening on 127.0.0.1:" + std::to_string(port_), 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  const std::string err = daemon.err();
  for (const std::string& line : lines_not_logged(err, "daemon")) ADD_FAILURE() << "not a log line: " << line;
  for (const std::string& words : std::vector<std::string>{"] [info] [daemon] listening on 127.0.0.1:", "] [info] [daemon] worker wLog (",
                                   "registered for lab/log", "] [debug] [daemon] job " + job + " submitted by ",
                                   "] [debug] [daemon] worker wLog leased", "] [info] [daemon] SIGTERM: stopping"}) {
    EXPECT_NE(err.find(words), std::string::npos) << words << " not in:\n" << err;
  }
  const std::string wlog = worker->log();
  for (const std::string& line : lines_not_logged(wlog, "worker wLog")) ADD_FAILURE() << "not a log line: " << line;
  for (const std::string& words : std::vector<std::string>{"] [info] [worker wLog] wLog registered with " + address_,
                                   "] [debug] [worker wLog] leased", "] [info] [worker wLog] SIGTERM: stopping after the batch"}) {
    EXPECT_NE(wlog.find(words), std::string::npos) << words << " not in:\n" << wlog;
  }
}

TEST_F(FarmProcessTest, AnUnknownLogLevelIsABadInputNamingTheAcceptedOnes) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"daemon", "--listen", address_, "--db", db_path(), "--log-level", "bogus"},
        std::vector<std::string>{"worker", "--daemon", address_, "--log-level", "bogus"}}) {
    testing::CommandOutput out = testing::run_ktune(dir_.path(), args);
    EXPECT_EQ(out.exit_code, 2) << args[0] << ": " << out.err;
    EXPECT_NE(out.err.find("unknown log level 'bogus': accepted levels are trace, debug, info, warn, error, off"),
              std::string::npos)
        << out.err;
  }
  EXPECT_FALSE(std::filesystem::exists(db_path()));  // refused before anything started
}

// Two simulated workers, each holding leases longer than the lease timeout
// (8 items x 400 ms > 2 s): heartbeats keep them, every config is measured
// once, and a config re-measured at the end costs what it cost before.
TEST_F(FarmProcessTest, SimulatedWorkersCompleteAJobWithDeterministicCostsAndKeepTheirLeases) {
  keys_ = {"lab/sim"};
  auto daemon = start_daemon();
  auto a = start_worker("wA", {"--key", "lab/sim", "--simulate", "--simulate-ms", "400", "--parallel", "8"});
  auto b = start_worker("wB", {"--key", "lab/sim", "--simulate", "--simulate-ms", "400", "--parallel", "8"});
  const std::string job = submit("lab/sim", 24, {"--tuner", "random", "--batch-size", "16"});
  ASSERT_TRUE(eventually([&] { return job_state(job) == "done"; })) << daemon->log() << a->log() << b->log();
  std::map<std::string, int> configs = search_configs(job);
  EXPECT_EQ(configs.size(), 24u);
  for (const auto& [config, n] : configs) EXPECT_EQ(n, 1) << config;
  auto db = Database::open(db_path());
  std::map<std::string, double> search_cost;
  std::vector<Record> finals;
  std::set<std::string> workers;
  for (const Record& r : job_records(*db, job)) {
    if (r.result.error == MeasureError::kInvalidConfig) continue;  // answered as a real worker answers them
    EXPECT_TRUE(r.result.ok()) << r.result.error_message;
    EXPECT_GT(r.result.timestamp, 0);
    workers.insert(r.result.worker);
    const std::string config = r.template_name + "#" + std::to_string(r.config_index);
    if (r.kind == "final") {
      finals.push_back(r);
    } else {
      search_cost[config] = r.result.mean_cost();
      EXPECT_GT(r.result.run_seconds, 0.3) << config;  // the simulated time per item
    }
  }
  EXPECT_EQ(workers, (std::set<std::string>{"wA", "wB"}));
  ASSERT_FALSE(finals.empty());
  for (const Record& f : finals) {
    const std::string config = f.template_name + "#" + std::to_string(f.config_index);
    ASSERT_TRUE(search_cost.count(config)) << config;
    EXPECT_NEAR(f.result.mean_cost(), search_cost[config], search_cost[config] * 1e-9) << config;
  }
  EXPECT_EQ(daemon->log().find("expired"), std::string::npos) << daemon->log();
}

}  // namespace
}  // namespace ktune
