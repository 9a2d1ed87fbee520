// The ktune command end to end: the real executable, a real SQLite file,
// real generated kernels.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "schedule_space/target.h"
#include "tests/ktune_command.h"
#include "tests/scratch_dir.h"

namespace {

namespace fs = std::filesystem;

using ktune::testing::CommandOutput;
using ktune::testing::read_file;

class CliTest : public ::testing::Test {
 protected:

  CommandOutput ktune(std::vector<std::string> args) {
    return ktune::testing::run_ktune(dir_.path(), std::move(args));
  }

  std::string db() const { return (dir_ / "k.db").string(); }

  ktune::testing::ScratchDir dir_{"ktune-cli-test"};
};

const char* kSmallMatmul = "matmul(m=24,n=40,k=16)";

TEST_F(CliTest, TuneStoresABestThatBestPrints) {
  CommandOutput tune = ktune({"tune", "--op", kSmallMatmul, "--trials", "6", "--db", db(),
                              "--threads", "1", "--repeat", "1", "--final-top", "2", "--format", "json"});
  ASSERT_EQ(tune.exit_code, 0) << tune.err;
  nlohmann::json summary = nlohmann::json::parse(tune.out);
  ASSERT_EQ(summary.size(), 1u);
  EXPECT_EQ(summary[0]["workload"], "matmul(m=24,n=40,k=16)");
  EXPECT_EQ(summary[0]["trials"], 6);
  EXPECT_GT(summary[0]["best"]["gflops"].get<double>(), 0.0);
  // Progress lines go to stderr when it is not a terminal.
  EXPECT_NE(tune.err.find("6/6 trials"), std::string::npos) << tune.err;

  CommandOutput best = ktune({"best", "--op", kSmallMatmul, "--db", db(), "--threads", "1",
                              "--format", "json"});
  ASSERT_EQ(best.exit_code, 0) << best.err;
  nlohmann::json b = nlohmann::json::parse(best.out);
  EXPECT_EQ(b[0]["config_index"], summary[0]["best"]["config_index"]);
  EXPECT_EQ(b[0]["kind"], "final");

  EXPECT_GE(b[0]["spread"].get<double>(), 0.0);
  CommandOutput text = ktune({"best", "--op", kSmallMatmul, "--db", db(), "--threads", "1"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("GFLOP/s"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("10 repeats, spread"), std::string::npos) << text.out;  // the interleaved finals
}

TEST_F(CliTest, TuneTwiceResumesWithoutRemeasuring) {
  std::vector<std::string> args = {"tune", "--op", kSmallMatmul, "--trials", "4", "--db", db(),
                                   "--threads", "1", "--repeat", "1", "--final-top", "1", "--format", "json"};
  ASSERT_EQ(ktune(args).exit_code, 0);
  CommandOutput again = ktune(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)[0]["skipped_already_measured"], 4);
}

TEST_F(CliTest, SpaceOfResNetConvHoldsAMillionConfigs) {
  CommandOutput r = ktune({"space", "--op", "conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)",
                           "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GE(j["size"].get<double>(), 1e6);
  EXPECT_FALSE(j["knobs"].empty());

  CommandOutput text = ktune({"space", "--op", "matmul(m=64,n=64,k=64)", "--config", "0", "--code"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("total:"), std::string::npos);
  EXPECT_NE(text.out.find("config #0"), std::string::npos);
  // The same config named by its text, as `ktune space` printed it.
  const size_t at = text.out.find("config #0: ") + std::string("config #0: ").size();
  const std::string config_text = text.out.substr(at, text.out.find('\n', at) - at);
  CommandOutput by_text = ktune({"space", "--op", "matmul(m=64,n=64,k=64)", "--config", config_text});
  ASSERT_EQ(by_text.exit_code, 0) << by_text.err;
  EXPECT_NE(by_text.out.find("config #0: " + config_text), std::string::npos) << by_text.out;
  CommandOutput bad = ktune({"space", "--op", "matmul(m=64,n=64,k=64)", "--config", "tile_m=[1,64] bogus"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bogus"), std::string::npos) << bad.err;
}

TEST_F(CliTest, BadOpSpecIsAOneLineErrorNamingTheProblem) {
  CommandOutput r = ktune({"tune", "--op", "matmul(m=0,n=4,k=4)", "--db", db()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("m"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db())) << "a bad spec must not create a database";

  CommandOutput unknown = ktune({"space", "--op", "softmax(n=4)"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("softmax"), std::string::npos) << unknown.err;
}

// "0 threads" is not a way to say "all cores": leaving the flag out is.
TEST_F(CliTest, ThreadsBelowOneAreRefusedAndNoFlagMeansAllCores) {
  for (const char* bad : {"0", "-2"}) {
    CommandOutput r = ktune({"tune", "--op", kSmallMatmul, "--trials", "2", "--threads", bad, "--db", db()});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("--threads: must be a whole number of threads >= 1, got '" + std::string(bad) + "'"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(db())) << "a refused flag must not create a database";
    CommandOutput worker = ktune({"worker", "--daemon", "127.0.0.1:1", "--threads", bad});
    EXPECT_EQ(worker.exit_code, 2) << worker.err;
  }
  CommandOutput all = ktune({"space", "--op", kSmallMatmul, "--format", "json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const std::string key = nlohmann::json::parse(all.out).at("device_key");
  EXPECT_EQ(key.substr(key.rfind('/')), "/" + std::to_string(ktune::online_cores()) + "t") << key;
}

TEST_F(CliTest, NonDatabaseFileIsRefusedAndLeftUnchanged) {
  fs::path notes = dir_ / "notes.txt";
  std::ofstream(notes) << "these are my notes, not a database\n";
  std::string before = read_file(notes);
  CommandOutput r = ktune({"tune", "--op", kSmallMatmul, "--trials", "2", "--db", notes.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a ktune database"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(notes), before);
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (const char* cmd : {"tune", "space", "best"}) {
    CommandOutput r = ktune({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("--op"), std::string::npos) << cmd;
  }
  CommandOutput none = ktune({});
  EXPECT_NE(none.exit_code, 0);
}

}  // namespace
