// The simulated device of `ktune worker --simulate` (workers/simulated_device.h):
// deterministic costs, invalid configs refused as a real worker refuses them,
// and a landscape with the structure of a real one for the search to learn.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "schedule_space/error.h"
#include "tests/landscape.h"
#include "workers/simulated_device.h"

namespace ktune {
namespace {

using testing::distinct_valid_configs;
using testing::fixed_avx2_target;

struct Landscape {
  Workload workload;
  Target target;
  const Template* tmpl;
  ConfigSpace space;

  Landscape(const std::string& op, int threads)
      : workload(Workload::parse(op)),
        target(fixed_avx2_target(threads)),
        tmpl(templates_for(workload, TargetKind::kCpu).front()),
        space(tmpl->space(workload, target)) {}

  MeasureInput input(const Config& c) const { return {workload, target, tmpl, c}; }
  double cost(const Config& c) const { return simulated_cost(input(c), space); }
  std::vector<double> sorted_costs(size_t n, uint64_t seed) const {
    std::vector<double> out;
    for (const Config& c : distinct_valid_configs(*tmpl, workload, target, space, n, seed)) out.push_back(cost(c));
    std::sort(out.begin(), out.end());
    return out;
  }
};

const char* kMatmul = "matmul(m=512,n=512,k=512)";
const char* kConv = "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)";
const char* kDeepConv = "conv2d(n=1,c=256,h=14,w=14,k=256,r=3,s=3,stride=1,pad=1)";  // ResNet-50 stage 3

TEST(SimulatedDevice, TheSameCandidateAlwaysCostsTheSameAndDifferentOnesDiffer) {
  Landscape l(kMatmul, 2);
  std::vector<Config> configs = distinct_valid_configs(*l.tmpl, l.workload, l.target, l.space, 60, 7);
  std::set<double> costs;
  for (const Config& c : configs) {
    const double a = l.cost(c);
    EXPECT_EQ(a, l.cost(c));
    // A fresh space of the same template gives the same cost.
    EXPECT_EQ(a, simulated_cost(l.input(c), l.tmpl->space(l.workload, l.target)));
    costs.insert(a);
  }
  EXPECT_EQ(costs.size(), configs.size());
}

TEST(SimulatedDevice, CostsArePlausibleSecondsForTheWork) {
  for (const char* op : {kMatmul, kConv}) {
    Landscape l(op, 2);
    const std::vector<double> costs = l.sorted_costs(100, 3);
    // Two avx2 cores at 3 GHz: at most 2 x 2 x 8 x 2 x 3e9 = 192 GFLOP/s.
    const double peak = 192e9;
    EXPECT_GT(costs.front(), l.workload.flops() / peak) << op;
    EXPECT_LT(costs.back(), 10.0) << op;
    for (double c : costs) EXPECT_TRUE(std::isfinite(c) && c > 0) << op;
  }
}

TEST(SimulatedDevice, AConfigTheTemplateRejectsIsAnInvalidConfigWithItsReason) {
  Landscape l(kMatmul, 2);
  std::mt19937_64 rng(11);
  std::optional<Config> bad;
  while (!bad) {
    Config c = l.space.random(rng);
    if (l.tmpl->check(l.workload, l.target, l.space, c)) bad = c;
  }
  const std::string reason = *l.tmpl->check(l.workload, l.target, l.space, *bad);
  MeasureResult r = simulate(l.input(*bad), l.space, MeasureOptions{});
  EXPECT_EQ(r.error, MeasureError::kInvalidConfig);
  EXPECT_EQ(r.error_message, reason);
  EXPECT_TRUE(r.costs.empty());
  EXPECT_GT(r.timestamp, 0);
  EXPECT_THROW(l.cost(*bad), Error);

  // A GPU template on a CPU target, as LocalMeasurer says it.
  const Template& gpu = *templates_for(l.workload, TargetKind::kCuda).front();
  MeasureResult wrong = simulate({l.workload, l.target, &gpu, Config{}});
  EXPECT_EQ(wrong.error, MeasureError::kInvalidConfig);
  EXPECT_NE(wrong.error_message.find("cuda targets, not cpu"), std::string::npos) << wrong.error_message;
}

TEST(SimulatedDevice, AResultHasItsRepeatsAndIsCutShortWhenHopelessAsAMeasurementIs) {
  Landscape l(kConv, 2);
  const Config c = distinct_valid_configs(*l.tmpl, l.workload, l.target, l.space, 1, 5).front();
  MeasureOptions o;
  o.repeat = 4;
  MeasureResult r = simulate(l.input(c), o);
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.costs.size(), 4u);
  EXPECT_DOUBLE_EQ(r.mean_cost(), l.cost(c));
  EXPECT_GT(r.timestamp, 0);
  o.best_so_far_s = l.cost(c) / 100;
  MeasureResult cut = simulate(l.input(c), o);
  EXPECT_EQ(cut.costs.size(), 1u);
  EXPECT_EQ(cut.error_message.rfind("cut short", 0), 0u) << cut.error_message;
}

// What makes the landscape worth searching, on an 8-thread device: good
// configs are rare and much better than typical ones, the templates'
// analytical seeds are good, and neighbouring configs cost alike (a model can
// learn it, annealing can walk it).
TEST(SimulatedDevice, TheLandscapeHasRareGoodConfigsNearEachOtherThatTheSeedsFind) {
  for (const char* op : {kMatmul, kDeepConv}) {
    Landscape l(op, 8);
    const std::vector<double> costs = l.sorted_costs(200, 1);
    const double best = costs.front(), p10 = costs[20], median = costs[100], p90 = costs[180];
    EXPECT_GE(median / best, 3.0) << op << ": best " << best << " s, median " << median << " s";
    EXPECT_GE(p10 / best, 1.25) << op << ": the top 1% should stand out of the top 10%";
    EXPECT_GE(p90 / p10, 5.0) << op << ": good and bad configs should be far apart";

    std::vector<Config> seeds = l.tmpl->seed_configs(l.workload, l.target, l.space);
    ASSERT_FALSE(seeds.empty()) << op;
    EXPECT_LT(l.cost(seeds.front()), p10) << op << ": the analytical seed is in the top 10%";

    // Neighbours are closer in cost than random pairs.
    std::vector<Config> sample = distinct_valid_configs(*l.tmpl, l.workload, l.target, l.space, 100, 2);
    std::vector<double> near, far;
    for (size_t i = 0; i < sample.size(); ++i) {
      for (const Config& n : l.space.neighbours(sample[i])) {
        if (l.tmpl->check(l.workload, l.target, l.space, n)) continue;
        near.push_back(std::abs(std::log(l.cost(n) / l.cost(sample[i]))));
        break;
      }
      far.push_back(std::abs(std::log(l.cost(sample[(i + 1) % sample.size()]) / l.cost(sample[i]))));
    }
    std::sort(near.begin(), near.end());
    std::sort(far.begin(), far.end());
    ASSERT_GE(near.size(), 50u);
    EXPECT_LT(near[near.size() / 2], far[far.size() / 2] / 2) << op;
  }
}

// The costs follow from the program's features: the tuner's cost model,
// trained on some configs as the tuner trains it (scores: throughput
// relative to the best), ranks unseen ones well.
TEST(SimulatedDevice, TheCostModelLearnsTheLandscapeFromProgramFeatures) {
  for (const char* op : {kMatmul, kDeepConv}) {
    Landscape l(op, 8);
    cost_model::FeatureExtractor features(l.workload, l.target, *l.tmpl, l.space, cost_model::FeatureKind::kItervar);
    const std::vector<Config> configs = distinct_valid_configs(*l.tmpl, l.workload, l.target, l.space, 400, 9);
    const size_t train = 300;
    std::vector<double> costs;
    for (const Config& c : configs) costs.push_back(l.cost(c));
    const double best = *std::min_element(costs.begin(), costs.begin() + train);
    cost_model::Matrix x, unseen;
    std::vector<float> y, unseen_scores;
    for (size_t i = 0; i < configs.size(); ++i) {
      (i < train ? x : unseen).push_back(features.get(configs[i]));
      (i < train ? y : unseen_scores).push_back(static_cast<float>(best / costs[i]));
    }
    cost_model::XgbModel model;
    model.fit(x, y);
    EXPECT_GT(cost_model::spearman(model.predict(unseen), unseen_scores), 0.7) << op;
  }
}

TEST(SimulatedDevice, MoreThreadsMakeAParallelConfigFasterAndCacheSizesMatter) {
  Landscape one(kMatmul, 1), four(kMatmul, 4);
  const std::vector<Config> seeds4 = four.tmpl->seed_configs(four.workload, four.target, four.space);
  ASSERT_FALSE(seeds4.empty());
  const std::vector<Config> seeds1 = one.tmpl->seed_configs(one.workload, one.target, one.space);
  ASSERT_FALSE(seeds1.empty());
  EXPECT_LT(four.cost(seeds4.front()) * 2, one.cost(seeds1.front()));

  // The same config with a tiny L2 and L3 costs more.
  Landscape small(kMatmul, 1);
  small.target.cpu.l2_bytes = 16 * 1024;
  small.target.cpu.l3_bytes = 64 * 1024;
  EXPECT_GT(small.cost(seeds1.front()), one.cost(seeds1.front()) * 1.15);
}

TEST(SimulatedDevice, AGpuTemplateOnACompileOnlyTargetGetsACost) {
  const Workload w = Workload::parse(kMatmul);
  const Target t = cuda_target_for_arch("sm_80");
  const Template& tmpl = *templates_for(w, TargetKind::kCuda).front();
  const ConfigSpace space = tmpl.space(w, t);
  std::vector<Config> seeds = tmpl.seed_configs(w, t, space);
  std::vector<Config> configs = distinct_valid_configs(tmpl, w, t, space, 20, 4);
  configs.insert(configs.end(), seeds.begin(), seeds.end());
  for (const Config& c : configs) {
    const double s = simulated_cost({w, t, &tmpl, c}, space);
    EXPECT_TRUE(std::isfinite(s) && s > 0 && s < 10) << space.describe(c);
  }
}

}  // namespace
}  // namespace ktune
