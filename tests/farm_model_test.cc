// Whole models tuned on a farm, with real processes on loopback: `ktune
// submit model.onnx` to a real daemon, real (and simulated) workers, the
// daemon killed mid-job, `ktune pull` into a local database.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "db/database.h"
#include "db/jsonl.h"
#include "schedule_space/workload.h"
#include "tests/farm_fixture.h"
#include "tests/job_records.h"
#include "tests/onnx_models.h"

namespace ktune {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::OnnxModelBuilder;
using testing::total;

// Two identical 3x3 convs (one task, weight 2), a 1x1 conv (two templates)
// and a dense layer: three tasks.
OnnxModelBuilder cnn() {
  OnnxModelBuilder b;
  b.input("x", {1, 8, 8, 8});
  b.weight("w1", {8, 8, 3, 3});
  b.weight("w2", {8, 8, 3, 3});
  b.weight("w3", {16, 8, 1, 1});
  b.weight("wf", {10, 1024});
  auto* c1 = b.node("Conv", {"x", "w1"}, {"c1"}, "conv1");
  OnnxModelBuilder::ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto* c2 = b.node("Conv", {"r1", "w2"}, {"c2"}, "conv2");
  OnnxModelBuilder::ints(c2, "pads", {1, 1, 1, 1});
  b.node("Conv", {"c2", "w3"}, {"c3"}, "conv3");
  b.node("Flatten", {"c3"}, {"f"});
  auto* fc = b.node("Gemm", {"f", "wf"}, {"y"}, "fc");
  OnnxModelBuilder::integer(fc, "transB", 1);
  b.output("y");
  return b;
}

class FarmModelTest : public testing::FarmFixture {
 protected:
  FarmModelTest() : FarmFixture("ktune_farm_model") {
    std::ofstream(dir_ / "cnn.onnx", std::ios::binary) << cnn().bytes();
  }
  std::string model() const { return (dir_ / "cnn.onnx").string(); }

  std::string submit_model(const std::string& key, int trials, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"submit", model(), "--device-key", key, "--trials", std::to_string(trials)};
    args.insert(args.end(), extra.begin(), extra.end());
    testing::CommandOutput out = client(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    std::string id = out.out.substr(0, out.out.find('\n'));
    EXPECT_EQ(id.rfind("job-", 0), 0u) << out.out << out.err;
    return id;
  }
  std::string job_state(const std::string& id) {
    auto db = Database::open(db_path());
    std::optional<JobRow> row = db->job(id);
    return row ? row->state : "";
  }
  nlohmann::json job_json(const std::string& id) {
    testing::CommandOutput out = client({"job", id, "--format", "json"});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return nlohmann::json::parse(out.out);
  }
  static std::map<std::string, int> search_configs(const std::string& path, const std::string& job) {
    return testing::job_search_records(path, job);
  }
  static std::string job_log(const std::string& path, const std::string& job) {
    auto db = Database::open(path);
    RecordFilter filter;
    filter.job = job;
    std::ostringstream out;
    export_jsonl(*db, filter, out);
    return out.str();
  }
};

TEST_F(FarmModelTest, AModelJobOnTwoWorkersSpendsExactlyItsBudgetAndShowsTheModelsTime) {
  const std::string key = device_key();
  auto daemon = start_daemon();
  auto a = start_worker("wA");
  auto b = start_worker("wB");
  const std::string job = submit_model(key, 30, {"--wait"});
  ASSERT_EQ(job_state(job), "done") << daemon->log();
  std::map<std::string, int> configs = search_configs(db_path(), job);
  EXPECT_EQ(total(configs), 30);  // the budget, exactly
  std::set<std::string> workloads;
  for (const auto& [config, n] : configs) {
    EXPECT_EQ(n, 1) << config;
    workloads.insert(config.substr(0, config.find('|')));
  }
  EXPECT_EQ(workloads.size(), 3u);  // every task was tuned
  auto db = Database::open(db_path());
  std::set<std::string> workers;
  int finals = 0;
  for (const Record& r : db->records(key, {})) {
    if (r.job != job) continue;
    workers.insert(r.result.worker);
    finals += r.kind == "final";
  }
  EXPECT_EQ(workers, (std::set<std::string>{"wA", "wB"}));
  EXPECT_GT(finals, 0);
  for (const std::string& w : workloads) EXPECT_TRUE(db->best(w, key).has_value()) << w;
  // What `ktune job` shows: every task, and the model's time now and untuned.
  nlohmann::json j = job_json(job);
  EXPECT_EQ(j["kind"], "model");
  EXPECT_EQ(j["trials_done"], 30);
  EXPECT_EQ(j["trials_total"], 30);
  ASSERT_EQ(j["tasks"].size(), 3u);
  EXPECT_EQ(j["tasks"][0]["weight"], 2);
  EXPECT_GT(j["estimated_s"].get<double>(), 0);
  EXPECT_GE(j["untuned_s"].get<double>(), j["estimated_s"].get<double>());
  testing::CommandOutput text = client({"job", job});
  EXPECT_NE(text.out.find("model cnn.onnx: estimated operator time"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("30/30 trials"), std::string::npos) << text.out;
}

TEST_F(FarmModelTest, ADaemonKilledMidModelJobResumesWithItsExactBudgetAndNoConfigMeasuredTwice) {
  const std::string key = "sim/model-resume";
  auto daemon = start_daemon();
  auto a = start_worker("wA", {"--simulate", "--simulate-ms", "40", "--key", key});
  auto b = start_worker("wB", {"--simulate", "--simulate-ms", "40", "--key", key});
  const std::string job = submit_model(key, 120);
  ASSERT_TRUE(eventually([&] { return total(search_configs(db_path(), job)) >= 30; })) << daemon->log();
  daemon->kill(SIGKILL);
  const std::string before = job_log(db_path(), job);
  const int done_before = total(search_configs(db_path(), job));
  ASSERT_LT(done_before, 120) << "the job ended before the daemon was killed";
  daemon = start_daemon();
  ASSERT_TRUE(eventually([&] { return job_state(job) == "done"; })) << daemon->log() << a->log();
  std::map<std::string, int> configs = search_configs(db_path(), job);
  EXPECT_EQ(total(configs), 120);
  for (const auto& [config, n] : configs) EXPECT_EQ(n, 1) << config;
  // Everything stored before the kill is still there, unchanged.
  const std::string after = job_log(db_path(), job);
  std::istringstream lines(before);
  for (std::string line; std::getline(lines, line);) {
    // A record marked best later differs in its mark only.
    const std::string unmarked = line.substr(0, line.find("\"marked_best\""));
    EXPECT_NE(after.find(unmarked), std::string::npos) << line;
  }
  EXPECT_NE(daemon->log().find("resuming"), std::string::npos) << daemon->log();
}

TEST_F(FarmModelTest, SeveralTasksAreMeasuredAtOnceAndPulledRecordsEqualTheDaemons) {
  const std::string key = "sim/model-overlap";
  auto daemon = start_daemon();
  std::vector<std::unique_ptr<testing::Process>> workers;
  for (int i = 0; i < 4; ++i) {
    workers.push_back(start_worker("w" + std::to_string(i), {"--simulate", "--simulate-ms", "100", "--key", key}));
  }
  ASSERT_TRUE(eventually([&] {
    testing::CommandOutput out = client({"workers", "--format", "json"});
    return out.exit_code == 0 && nlohmann::json::parse(out.out).size() == 4;
  }, 30s));
  const std::string job = submit_model(key, 96);
  size_t most_tasks = 0;
  int most_in_flight = 0;
  ASSERT_TRUE(eventually([&] {
    nlohmann::json j = job_json(job);
    size_t tasks = 0;
    for (const auto& t : j["tasks"]) tasks += t.value("in_flight", 0) > 0;
    most_tasks = std::max(most_tasks, tasks);
    most_in_flight = std::max(most_in_flight, j.value("in_flight", 0));
    return j["state"] == "done";
  })) << daemon->log();
  EXPECT_GE(most_tasks, 2u);        // candidates of more than one task in flight at once
  EXPECT_GT(most_in_flight, 4);     // more than the workers hold: the next ones wait
  EXPECT_EQ(total(search_configs(db_path(), job)), 96);
  // A client pulls the job's records into its own database: the same records.
  const std::string local = (dir_ / "laptop.db").string();
  testing::CommandOutput pulled = client({"pull", "--job", job, "--db", local});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_NE(pulled.out.find("new"), std::string::npos) << pulled.out;
  EXPECT_EQ(job_log(local, job), job_log(db_path(), job));
  // Again: nothing new.
  testing::CommandOutput again = client({"pull", "--job", job, "--db", local, "--format", "json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["imported"], 0);
  // The laptop has what it needs to export: a best per task.
  testing::CommandOutput best = testing::run_ktune(dir_.path(), {"best", "--db", local, "--device-key", key});
  EXPECT_EQ(best.exit_code, 0) << best.err;
  EXPECT_NE(best.out.find("dense(batch=1,in=1024,out=10"), std::string::npos) << best.out;
  // A device key's records, and bad requests.
  testing::CommandOutput by_key = client({"pull", "--device-key", key, "--db", (dir_ / "all.db").string()});
  EXPECT_EQ(by_key.exit_code, 0) << by_key.err;
  testing::CommandOutput unknown = client({"pull", "--job", "job-nope", "--db", local});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no job 'job-nope'"), std::string::npos) << unknown.err;
  testing::CommandOutput neither = client({"pull", "--db", local});
  EXPECT_EQ(neither.exit_code, 2);
}

TEST_F(FarmModelTest, ACancelledModelJobStopsKeepingItsRecordsAndABadModelIsRefused) {
  const std::string key = "sim/model-cancel";
  auto daemon = start_daemon();
  auto a = start_worker("wA", {"--simulate", "--simulate-ms", "50", "--key", key});
  const std::string job = submit_model(key, 400);
  ASSERT_TRUE(eventually([&] { return total(search_configs(db_path(), job)) >= 10; })) << daemon->log();
  testing::CommandOutput cancelled = client({"cancel", job});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(job_state(job), "cancelled");
  const int kept = total(search_configs(db_path(), job));
  std::this_thread::sleep_for(1s);
  EXPECT_LE(total(search_configs(db_path(), job)) - kept, 4);  // at most what a worker had in hand
  EXPECT_LT(total(search_configs(db_path(), job)), 400);
  // Bad input: named, refused before any network, nothing submitted.
  std::ofstream(dir_ / "bad.onnx") << "not a model";
  testing::CommandOutput bad = client({"submit", (dir_ / "bad.onnx").string(), "--device-key", key, "--trials", "8"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.onnx"), std::string::npos) << bad.err;
  testing::CommandOutput both = client({"submit", model(), "--op", "matmul(m=8,n=8,k=8)", "--device-key", key,
                                        "--trials", "8"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
  auto db = Database::open(db_path());
  EXPECT_EQ(db->jobs().size(), 1u);
}

}  // namespace
}  // namespace ktune
