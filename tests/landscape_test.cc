// The landscape benchmark's replay (tuner/landscape.h): a recorded
// landscape file is read whole or refused with the line that is wrong; a
// replayed comparison is identical run to run; strategies search the
// recorded sample alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "tests/landscape.h"
#include "tests/scratch_dir.h"
#include "tuner/landscape.h"

namespace ktune {
namespace {

using testing::distinct_valid_configs;
using testing::fixed_avx2_target;
using testing::synthetic_cost;

const char* kWorkloads[] = {"matmul(m=256,n=256,k=256)", "matmul(m=64,n=512,k=128)", "dense(batch=1,in=512,out=256)"};

// A landscapes file of three workloads: 200 valid configs of each with the
// synthetic cost (near configs cost alike), one of them failed.
std::string landscapes_text() {
  const Target t = fixed_avx2_target(1);
  DeviceDescription d;
  d.target = t;
  std::string text = nlohmann::json{{"format", "ktune-landscapes"}, {"version", 1},
                                    {"device", nlohmann::json::parse(d.to_json_text())}}
                         .dump() +
                     "\n";
  for (const char* key : kWorkloads) {
    const Workload w = Workload::parse(key);
    const Template& tmpl = *templates_for(w, t.kind).front();
    const ConfigSpace space = tmpl.space(w, t);
    nlohmann::json configs = nlohmann::json::array();
    bool failed = false;
    for (const Config& c : distinct_valid_configs(tmpl, w, t, space, 200, 7)) {
      if (!failed) {
        configs.push_back({c.index, nullptr, static_cast<int>(MeasureError::kWrongAnswer)});
        failed = true;
        continue;
      }
      configs.push_back({c.index, synthetic_cost(space, c), 0});
    }
    text += nlohmann::json{{"workload", w.key()}, {"template", tmpl.name()}, {"version", tmpl.version()},
                           {"configs", configs}}
                .dump() +
            "\n";
  }
  return text;
}

TEST(Landscape, AFileIsReadWhole) {
  const LandscapeSet set = LandscapeSet::parse(landscapes_text());
  EXPECT_EQ(set.device.target.device_key(), fixed_avx2_target(1).device_key());
  ASSERT_EQ(set.landscapes.size(), 3u);
  for (const Landscape& l : set.landscapes) {
    EXPECT_EQ(l.configs.size(), 200u);
    EXPECT_EQ(l.valid(), 199u);
    EXPECT_LE(l.top_seconds(0), l.top_seconds(0.01));
    EXPECT_LE(l.top_seconds(0.01), l.top_seconds(0.5));
  }
}

TEST(Landscape, RandomSamplingsExactMedianIsTheTrialByWhichHalfTheRunsHit) {
  Landscape l;
  for (int i = 0; i < 4; ++i) l.configs.push_back({static_cast<uint64_t>(i), 1.0 + i, MeasureError::kNone});
  // One target in four: no hit in 2 draws with probability 3/4 * 2/3 = 1/2.
  EXPECT_EQ(l.random_median_trials(1.0), 2);
  EXPECT_EQ(l.random_median_trials(4.0), 1);  // every config
  EXPECT_TRUE(std::isnan(l.random_median_trials(0.5)));
  Landscape big;
  for (int i = 0; i < 400; ++i) big.configs.push_back({static_cast<uint64_t>(i), 1.0 + i, MeasureError::kNone});
  // Four targets in 400: 1 - (1 - 4/400)^t crosses 1/2 near t = 400 (1 - 2^(-1/4)).
  EXPECT_NEAR(big.random_median_trials(big.top_seconds(0.01)), 400 * (1 - std::pow(2.0, -0.25)), 2);
}

TEST(Landscape, AGzipFileIsReadAsAPlainOne) {
  testing::ScratchDir dir("landscape");
  const std::string plain = (dir / "l.jsonl").string();
  std::ofstream(plain) << landscapes_text();
  EXPECT_EQ(LandscapeSet::load(plain).landscapes.size(), 3u);
  EXPECT_THROW(LandscapeSet::load((dir / "missing.jsonl.gz").string()), Error);
}

TEST(Landscape, ABadFileIsRefusedNamingTheLine) {
  auto message = [](const std::string& text) {
    try {
      LandscapeSet::parse(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("{\"format\":\"other\",\"version\":1}\n").find("line 1: not a ktune landscapes file"),
            std::string::npos);
  const std::string good = landscapes_text();
  const std::string header = good.substr(0, good.find('\n') + 1);
  EXPECT_NE(message(header + "{not json\n").find("line 2: not JSON"), std::string::npos);
  EXPECT_NE(message(header + "{\"workload\":\"matmul(m=8,n=8,k=8)\",\"template\":\"x\",\"version\":1,"
                             "\"configs\":[[1,-2.0,0]]}\n")
                .find("line 2: a valid config's seconds must be positive"),
            std::string::npos);
  EXPECT_NE(message("").find("empty"), std::string::npos);
}

TEST(Landscape, AReplayedComparisonIsIdenticalRunToRun) {
  const LandscapeSet set = LandscapeSet::parse(landscapes_text());
  for (const char* strategy : {"random", "xgb", "xgb+transfer"}) {
    ReplayOptions o;
    o.strategy = strategy;
    o.trials = 60;
    o.seed = 3;
    const ReplayRun a = replay(set, 0, o), b = replay(set, 0, o);
    ASSERT_EQ(a.best_so_far.size(), 60u) << strategy;
    EXPECT_EQ(a.best_so_far, b.best_so_far) << strategy;
    o.seed = 4;
    EXPECT_NE(replay(set, 0, o).best_so_far, a.best_so_far) << strategy << ": another seed, another run";
  }
}

TEST(Landscape, AStrategySearchesTheRecordedSampleAloneAndStopsAtItsBest) {
  const LandscapeSet set = LandscapeSet::parse(landscapes_text());
  const Landscape& l = set.landscapes[1];
  std::set<double> recorded;
  for (const LandscapeConfig& c : l.configs) {
    if (c.ok()) recorded.insert(c.seconds);
  }
  for (const char* strategy : {"random", "xgb"}) {
    ReplayOptions o;
    o.strategy = strategy;
    o.trials = 1000;  // more than the sample: it ends when the sample does
    const ReplayRun all = replay(set, 1, o);
    EXPECT_EQ(all.best_so_far.size(), l.configs.size()) << strategy;
    EXPECT_EQ(all.best_so_far.back(), l.top_seconds(0)) << strategy;
    for (double s : all.best_so_far) {
      if (std::isfinite(s)) {
        EXPECT_TRUE(recorded.count(s)) << strategy;
      }
    }
    o.stop_at = l.top_seconds(0);
    // It stops after the batch that found the best (16 configs).
    const ReplayRun stopped = replay(set, 1, o);
    const int found = stopped.trials_to(l.top_seconds(0));
    EXPECT_GT(found, 0) << strategy;
    EXPECT_LT(static_cast<int>(stopped.best_so_far.size()), found + o.batch_size) << strategy;
  }
  ReplayOptions bad;
  bad.strategy = "annealing";
  EXPECT_THROW(replay(set, 0, bad), Error);
}

TEST(Landscape, TheModelFindsTheTopOfASmoothLandscapeSoonerThanRandom) {
  // Near configs cost alike here, so a model that learns anything must beat
  // random sampling of the same sample (median over three seeds).
  const LandscapeSet set = LandscapeSet::parse(landscapes_text());
  const Landscape& l = set.landscapes[0];
  std::vector<int> random, xgb;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    ReplayOptions o;
    o.trials = 200;
    o.seed = seed;
    o.stop_at = l.top_seconds(0.02);
    o.strategy = "random";
    random.push_back(replay(set, 0, o).trials_to(l.top_seconds(0.02)));
    o.strategy = "xgb";
    xgb.push_back(replay(set, 0, o).trials_to(l.top_seconds(0.02)));
  }
  std::sort(random.begin(), random.end());
  std::sort(xgb.begin(), xgb.end());
  EXPECT_LT(xgb[1], random[1]);
  EXPECT_GT(top_k_recall(set, 0, cost_model::FeatureKind::kKnob, 5, 1), 0.0);
}

// The committed landscapes (bench/landscapes/) replay on this build: a
// template's new version makes its recorded kernels someone else's, and the
// benchmark refuses them; its units are recorded again with
// LANDSCAPE_ONLY=... bench/landscape_record.sh.
TEST(Landscape, TheCommittedLandscapesReplayOnThisBuild) {
  const LandscapeSet set = LandscapeSet::load(std::string(KTUNE_SOURCE_DIR) + "/bench/landscapes/landscapes.jsonl.gz");
  ASSERT_GE(set.landscapes.size(), 12u);
  for (size_t i = 0; i < set.landscapes.size(); ++i) {
    SCOPED_TRACE(set.landscapes[i].workload_key + " " + set.landscapes[i].template_name);
    ReplayOptions o;
    o.strategy = "random";
    o.trials = 3;
    EXPECT_NO_THROW(replay(set, i, o));
  }
}

}  // namespace
}  // namespace ktune
