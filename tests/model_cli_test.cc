// `ktune tasks` and `ktune tune model.onnx` end to end: the real executable,
// a model file built with libonnx, real measurements, a real SQLite file.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "db/database.h"
#include "tests/ktune_command.h"
#include "tests/onnx_models.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

using testing::OnnxModelBuilder;

// Two identical small convs (one task, weight 2) and a dense layer.
OnnxModelBuilder small_model() {
  OnnxModelBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.weight("w1", {4, 4, 3, 3});
  b.weight("w2", {4, 4, 3, 3});
  b.weight("wf", {10, 256});
  b.weight("bf", {10});
  auto* c1 = b.node("Conv", {"x", "w1"}, {"c1"}, "conv1");
  OnnxModelBuilder::ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto* c2 = b.node("Conv", {"r1", "w2"}, {"c2"}, "conv2");
  OnnxModelBuilder::ints(c2, "pads", {1, 1, 1, 1});
  b.node("Flatten", {"c2"}, {"f"});
  auto* fc = b.node("Gemm", {"f", "wf", "bf"}, {"y"}, "fc");
  OnnxModelBuilder::integer(fc, "transB", 1);
  b.output("y");
  return b;
}

class ModelCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "small.onnx", std::ios::binary) << small_model().bytes();
    std::ofstream(dir_ / "mixed.onnx", std::ios::binary) << testing::mixed_model().bytes();
  }
  testing::CommandOutput ktune(std::vector<std::string> args) { return testing::run_ktune(dir_.path(), std::move(args)); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> tune_args(int trials) {
    return {"tune", path("small.onnx"), "--trials", std::to_string(trials), "--threads", "1", "--db", path("t.db"),
            "--no-baseline", "--batch-size", "4", "--final-top", "1", "--repeat", "1", "--tuner", "random"};
  }
  // Search records of the model's runs, per (workload, template, config).
  std::map<std::string, int> search_records() {
    auto db = Database::open(path("t.db"));
    std::map<std::string, int> out;
    for (const std::string w : {"conv2d(n=1,c=4,h=8,w=8,k=4,r=3,s=3,stride=1,pad=1)", "dense(batch=1,in=256,out=10,bias=1)"}) {
      for (const Record& r : db->history(Workload::parse(w).key(), device_key())) {
        if (r.kind == "search" && r.job == "model small.onnx") ++out[r.workload_key + r.template_name + std::to_string(r.config_index)];
      }
    }
    return out;
  }
  int total(const std::map<std::string, int>& m) {
    int n = 0;
    for (const auto& [k, v] : m) n += v;
    return n;
  }
  std::string device_key() {
    testing::CommandOutput out = ktune({"space", "--op", "matmul(m=8,n=8,k=8)", "--threads", "1", "--format", "json"});
    return nlohmann::json::parse(out.out).at("device_key").get<std::string>();
  }

  testing::ScratchDir dir_{"ktune-model-cli"};
};

TEST_F(ModelCliTest, TasksListsTheWorkloadsWeightsAndWhatIsNotTunable) {
  testing::CommandOutput out = ktune({"tasks", path("mixed.onnx"), "--format", "json"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  nlohmann::json j = nlohmann::json::parse(out.out);
  ASSERT_EQ(j["tasks"].size(), 9u);
  EXPECT_EQ(j["tasks"][1]["weight"], 2);
  EXPECT_EQ(j["tasks"][1]["op"], "conv2d");
  EXPECT_EQ(j["tasks"][1]["fields"]["pad"], nlohmann::json({1, 1, 1, 1}));
  EXPECT_GT(j["tasks"][1]["flops"].get<double>(), 0);
  bool grouped = false;
  for (const auto& n : j["not_tunable"]) grouped = grouped || (n["op"] == "Conv (group=2)" && n["count"] == 1);
  EXPECT_TRUE(grouped) << j["not_tunable"].dump();
  testing::CommandOutput text = ktune({"tasks", path("mixed.onnx")});
  EXPECT_NE(text.out.find("9 tasks"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Conv (group=2) x1"), std::string::npos) << text.out;

  std::ofstream(dir_ / "bad.onnx") << "not a model";
  testing::CommandOutput bad = ktune({"tasks", path("bad.onnx")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not an ONNX model"), std::string::npos) << bad.err;
  testing::CommandOutput shape = ktune({"tasks", path("mixed.onnx"), "--input-shape", "x=1x3x0x16"});
  EXPECT_EQ(shape.exit_code, 2);
  EXPECT_NE(shape.err.find("not a positive integer"), std::string::npos) << shape.err;
}

TEST_F(ModelCliTest, TunesAModelWithinItsBudgetAndARerunResumes) {
  testing::CommandOutput out = ktune(tune_args(24));
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.out.find("conv2d(n=1,c=4,h=8,w=8,k=4"), std::string::npos) << out.out;
  EXPECT_NE(out.out.find("estimated operator time"), std::string::npos) << out.out;
  EXPECT_NE(out.out.find("not tuned: Relu x1; Flatten x1;"), std::string::npos) << out.out;
  std::map<std::string, int> first = search_records();
  EXPECT_EQ(total(first), 24);
  for (const auto& [config, n] : first) EXPECT_EQ(n, 1) << config;
  // The same command again: nothing left to do, nothing measured twice.
  testing::CommandOutput again = ktune(tune_args(24));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("24 trials done by an earlier run"), std::string::npos) << again.err;
  EXPECT_EQ(search_records(), first);
  // A larger budget goes on from there.
  ASSERT_EQ(ktune(tune_args(32)).exit_code, 0);
  std::map<std::string, int> more = search_records();
  EXPECT_EQ(total(more), 32);
  for (const auto& [config, n] : more) EXPECT_EQ(n, 1) << config;
  // With the vendor libraries timed (this build's), the tuned kernels are
  // timed in the same rounds.
  testing::CommandOutput json = ktune({"tune", path("small.onnx"), "--trials", "32", "--threads", "1", "--db",
                                       path("t.db"), "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j["tasks"].size(), 2u);
  EXPECT_EQ(j["tasks"][0]["weight"], 2);
  EXPECT_GT(j["tasks"][0]["gflops"].get<double>(), 0);
  EXPECT_GT(j["estimated_total_s"].get<double>(), 0);
  for (const auto& task : j["tasks"]) {
    if (task["baseline_s"].is_null()) continue;  // no library for it in this build
    EXPECT_GT(task["tuned_side_by_side_s"].get<double>(), 0) << task.dump();
  }
  if (!j["vendor_total_s"].is_null()) {
    EXPECT_GT(j["tuned_side_by_side_total_s"].get<double>(), 0) << j.dump();
  }
  // The report of the model: its tasks with their weights.
  testing::CommandOutput report = ktune({"report", "--db", path("t.db"), "--model", path("small.onnx"), "--out",
                                         path("r.html")});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.out.find("(2 tasks)"), std::string::npos) << report.out;
  const std::string html = testing::read_file(dir_ / "r.html");
  EXPECT_NE(html.find("small.onnx"), std::string::npos);
  EXPECT_NE(html.find(Workload::parse("dense(batch=1,in=256,out=10,bias=1)").key()), std::string::npos);
}

TEST_F(ModelCliTest, AnInterruptedRunResumesWithoutMeasuringAnythingTwice) {
  std::vector<std::string> args = tune_args(40);
  args.insert(args.begin(), std::string(KTUNE_BIN_DIR) + "/ktune");
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    setenv("KTUNE_CACHE_DIR", (dir_ / "cache").c_str(), 1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < until) {
    if (std::filesystem::exists(dir_ / "t.db") && total(search_records()) >= 10) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGINT);  // Ctrl-C
  int status = 0;
  waitpid(pid, &status, 0);
  const int before = total(search_records());
  ASSERT_GE(before, 10);
  ASSERT_LT(before, 40) << "the run finished before it could be interrupted";
  testing::CommandOutput resumed = ktune(tune_args(40));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::map<std::string, int> after = search_records();
  EXPECT_EQ(total(after), 40);
  for (const auto& [config, n] : after) EXPECT_EQ(n, 1) << config;
}

TEST_F(ModelCliTest, AModelOnACudaTargetNeedsADevice) {
  testing::CommandOutput out = ktune({"tune", path("small.onnx"), "--target", "cuda:7", "--db", path("t.db")});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_TRUE(out.err.find("no CUDA device") != std::string::npos || out.err.find("no device cuda:7") != std::string::npos)
      << out.err;
}

TEST_F(ModelCliTest, ModelAndOpTogetherOrNeitherAreRefused) {
  testing::CommandOutput both = ktune({"tune", path("small.onnx"), "--op", "matmul(m=8,n=8,k=8)"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
  testing::CommandOutput neither = ktune({"tune", "--trials", "4"});
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find("give a model file or at least one --op"), std::string::npos) << neither.err;
}

}  // namespace
}  // namespace ktune
