// The daemon's limits with real processes on loopback: a flood of client
// calls, more jobs and measurement items than it holds, more workers than it
// keeps. Past a limit a call gets RESOURCE_EXHAUSTED naming the daemon flag
// that raises it; the daemon keeps answering and its memory stays bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "db/database.h"
#include "proto/ktune.grpc.pb.h"
#include "schedule_space/workload.h"
#include "tests/farm_fixture.h"
#include "workers/client.h"

namespace ktune {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::eventually;

const std::string kOp = "matmul(m=16,n=16,k=16)";

// The resident memory of a process (VmRSS), in KiB; -1 if unreadable.
int64_t resident_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

class DaemonLimitsTest : public testing::FarmFixture {
 protected:
  DaemonLimitsTest() : FarmFixture("ktune_limits") {}

  v1::JobSpec spec(const std::string& device_key, int trials) {
    v1::JobSpec s;
    s.add_ops(kOp);
    s.set_device_key(device_key);
    s.set_trials(trials);
    s.set_tuner("random");
    s.set_final_top(0);
    return s;
  }
  grpc::Status submit(v1::Tuning::Stub& stub, const v1::JobSpec& s, std::string* id = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    v1::SubmitRequest req;
    *req.mutable_spec() = s;
    v1::SubmitReply reply;
    grpc::Status status = stub.Submit(&ctx, req, &reply);
    if (id) *id = reply.job_id();
    return status;
  }
  grpc::Status get_job(v1::Tuning::Stub& stub, const std::string& id, v1::JobStatus* reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    v1::GetJobRequest req;
    req.set_job_id(id);
    return stub.GetJob(&ctx, req, reply);
  }
  grpc::Status list_jobs(v1::Tuning::Stub& stub, v1::ListJobsReply* reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    return stub.ListJobs(&ctx, v1::ListJobsRequest(), reply);
  }
};

// Several clients at once, a few hundred calls: submissions (past --max-jobs),
// status and list calls (past --max-calls), a request over --max-request-mb.
// Every call is answered, ok or with the limit's error; afterwards the daemon
// answers as before, holds exactly --max-jobs jobs, and stays small.
TEST_F(DaemonLimitsTest, AFloodOfClientCallsIsAnsweredAndTheDaemonStaysSmall) {
  auto daemon = start_daemon({"--max-jobs", "8", "--max-calls", "4", "--max-request-mb", "1"});
  auto channel = make_channel(address_);
  auto stub = v1::Tuning::NewStub(channel);
  std::string first;
  ASSERT_TRUE(submit(*stub, spec("lab/nobody", 10), &first).ok());  // no worker: it waits, unfinished

  constexpr int kClients = 8, kCallsEach = 40;
  std::mutex mu;
  std::vector<std::string> unexpected;
  std::map<std::string, int> refusals;  // the flag each RESOURCE_EXHAUSTED named
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto own = v1::Tuning::NewStub(make_channel(address_));
      for (int i = 0; i < kCallsEach; ++i) {
        grpc::Status s;
        switch ((c + i) % 3) {
          case 0: s = submit(*own, spec("lab/nobody", 10)); break;
          case 1: {
            v1::JobStatus j;
            s = get_job(*own, first, &j);
            break;
          }
          default: {
            v1::ListJobsReply jobs;
            s = list_jobs(*own, &jobs);
          }
        }
        std::lock_guard lock(mu);
        if (s.ok()) {
          ++ok;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                   s.error_message().find("--max-") != std::string::npos) {
          const size_t at = s.error_message().find("--max-");
          ++refusals[s.error_message().substr(at, s.error_message().find_first_of(" )", at) - at)];
        } else {
          unexpected.push_back(status_text(s));
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_TRUE(unexpected.empty()) << unexpected.size() << " calls failed otherwise, first: " << unexpected.front();
  EXPECT_EQ(ok + refusals["--max-jobs"] + refusals["--max-calls"], kClients * kCallsEach);
  EXPECT_GT(refusals["--max-jobs"], 0);
  EXPECT_GT(ok, 0);

  // A request over --max-request-mb: refused by the transport, nothing kept.
  v1::JobSpec huge = spec("lab/nobody", 10);
  huge.add_ops(std::string(2 << 20, 'x'));
  grpc::Status too_big = submit(*stub, huge);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status_text(too_big);

  // Still answering, at exactly --max-jobs unfinished jobs.
  std::string more;
  for (int i = 0; i < 8; ++i) {
    grpc::Status s = submit(*stub, spec("lab/nobody", 10));
    if (s.ok()) continue;
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status_text(s);
    more = s.error_message();
    break;
  }
  EXPECT_THAT(more, HasSubstr("8 unfinished jobs (its --max-jobs limit)"));
  v1::ListJobsReply jobs;
  ASSERT_TRUE(list_jobs(*stub, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 8);
  v1::JobStatus status;
  ASSERT_TRUE(get_job(*stub, first, &status).ok());
  EXPECT_EQ(status.state(), "waiting");
  const int64_t rss = resident_kib(daemon->pid());
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, 512 * 1024) << "the daemon holds " << rss << " KiB";

  // Cancelling one makes room for one.
  testing::CommandOutput cancelled = client({"cancel", first});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_TRUE(submit(*stub, spec("lab/nobody", 10)).ok());
  daemon->kill(SIGTERM);
  EXPECT_EQ(daemon->wait(), 0) << daemon->log();
}

// With every worker of a device key gone, a job's items pile up to
// --max-queued-items (and a batch) and stop there: the job waits, a new
// submission is refused naming the flag. A worker that comes back drains them; the job
// ends with all its trials, and submissions are taken again.
TEST_F(DaemonLimitsTest, PastTheItemsLimitAJobWaitsAndNewJobsAreRefused) {
  // Less than a batch: the job's second batch must wait.
  auto daemon = start_daemon({"--max-queued-items", "2"});
  auto gone = start_worker("wGone", {"--simulate", "--key", "lab/sim"});
  ASSERT_TRUE(eventually([&] { return client({"workers"}).out.find("wGone") != std::string::npos; }, 60s))
      << daemon->log() << gone->log();
  gone->kill(SIGKILL);

  auto stub = v1::Tuning::NewStub(make_channel(address_));
  std::string job;
  ASSERT_TRUE(submit(*stub, spec("lab/sim", 40), &job).ok());
  // The job's next batch waits for room (the daemon says so).
  ASSERT_TRUE(eventually([&] { return daemon->log().find("waits: the farm holds") != std::string::npos; }))
      << daemon->log();
  testing::CommandOutput refused =
      client({"submit", "--op", kOp, "--device-key", "lab/sim", "--trials", "4"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(refused.err, HasSubstr("--max-queued-items"));

  auto back = start_worker("wBack", {"--simulate", "--simulate-ms", "0", "--key", "lab/sim"});
  ASSERT_TRUE(eventually([&] {
    v1::JobStatus j;
    return get_job(*stub, job, &j).ok() && j.state() == "done";
  })) << daemon->log() << back->log();
  {
    auto db = Database::open(db_path());
    int search = 0;
    for (const Record& r : db->history(Workload::parse(kOp).key(), "lab/sim")) search += r.job == job && r.kind == "search";
    EXPECT_EQ(search, 40);
  }
  EXPECT_TRUE(submit(*stub, spec("lab/sim", 4)).ok());
}

// --max-workers 2: a third worker is told to wait (it retries) until one of
// the two is lost; then the lost one is forgotten and the third takes its
// place.
TEST_F(DaemonLimitsTest, PastTheWorkersLimitALostWorkerMakesRoom) {
  auto daemon = start_daemon({"--max-workers", "2"});
  auto a = start_worker("wA", {"--noop", "--key", "lab/k"});
  auto b = start_worker("wB", {"--noop", "--key", "lab/k"});
  ASSERT_TRUE(eventually([&] {
    const std::string listed = client({"workers"}).out;
    return listed.find("wA") != std::string::npos && listed.find("wB") != std::string::npos;
  }, 60s)) << daemon->log();
  auto c = start_worker("wC", {"--noop", "--key", "lab/k"});
  ASSERT_TRUE(eventually([&] { return c->log().find("--max-workers") != std::string::npos; }, 60s)) << c->log();
  EXPECT_THAT(c->log(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_TRUE(c->running());
  a->kill(SIGKILL);
  ASSERT_TRUE(eventually([&] { return client({"workers"}).out.find("wC") != std::string::npos; }, 60s))
      << daemon->log() << c->log();
  const std::string listed = client({"workers"}).out;
  EXPECT_EQ(listed.find("wA"), std::string::npos) << listed;
  EXPECT_NE(listed.find("wB"), std::string::npos) << listed;
}

}  // namespace
}  // namespace ktune
