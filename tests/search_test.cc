// Search strategies on recorded and synthetic landscapes: the replay
// measurer answers what was measured (and says what was not), replayed runs
// are identical, and genetic search improves over its first population.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <random>
#include <string>
#include <vector>

#include "measure/local_measurer.h"
#include "schedule_space/error.h"
#include "schedule_space/templates/templates.h"
#include "tests/scratch_dir.h"
#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "tests/landscape.h"
#include "tuner/replay_measurer.h"
#include "tuner/transfer.h"
#include "tuner/tuner.h"
#include "tuner/tuning.h"
#include "tests/tuning_log_of.h"

namespace ktune {
namespace {

using testing::log_of;

// The landscape (tests/landscape.h): better configs are near each other, as
// in real spaces.
using testing::fixed_avx2_target;
using testing::synthetic_cost;

MeasureResult synthetic_result(const ConfigSpace& space, const Config& c) {
  MeasureResult r;
  r.costs = {synthetic_cost(space, c)};
  return r;
}


TuneOptions replay_options(int trials) {
  TuneOptions o;
  o.trials = trials;
  o.batch_size = 8;
  o.final_top = 0;
  o.seeds = false;
  return o;
}

TEST(ReplayMeasurer, AnswersRecordedMeasurementsAndNamesTheOthers) {
  testing::ScratchDir dir("ktune-replay-test");
  const Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  const Target target = detect_cpu_target(1);
  Task task = Task::make(w, target, matmul_cpu_template());
  auto db = std::shared_ptr<Database>(Database::open((dir.path() / "live.db").string()));

  // Three configs measured live, a fourth never.
  std::vector<Config> listed;
  std::mt19937_64 rng(11);
  while (listed.size() < 4) {
    Config c = task.space->random(rng);
    if (!task.tmpl->check(w, target, *task.space, c)) listed.push_back(c);
  }
  const Config never = listed.back();
  listed.pop_back();
  LocalMeasurerOptions lo;
  lo.cache_dir = (dir.path() / "cache").string();
  lo.runner_path = std::string(KTUNE_BIN_DIR) + "/ktune-runner";
  LocalMeasurer live(lo);
  TuneOptions o = replay_options(3);
  o.measure.repeat = 1;
  o.measure.number = 1;
  auto list = make_list_tuner(task, listed);
  tune(task, *list, live, log_of(db), o);

  auto replay = ReplayMeasurer::from_database(db);
  std::vector<MeasureInput> inputs;
  for (const Config& c : listed) inputs.push_back({w, target, task.tmpl, c});
  inputs.push_back({w, target, task.tmpl, never});
  const std::vector<MeasureResult> answers = replay->measure(inputs, {});
  ASSERT_EQ(answers.size(), 4u);
  std::map<uint64_t, double> recorded;
  for (const Record& r : db->history(w.key(), target.device_key())) recorded[r.config_index] = r.result.mean_cost();
  for (size_t i = 0; i < listed.size(); ++i) {
    ASSERT_TRUE(answers[i].ok()) << answers[i].error_message;
    EXPECT_EQ(answers[i].mean_cost(), recorded.at(listed[i].index));
    EXPECT_EQ(answers[i].worker, "replay");
  }
  EXPECT_EQ(answers[3].error, MeasureError::kNotRecorded);
  EXPECT_NE(answers[3].error_message.find("#" + std::to_string(never.index)), std::string::npos)
      << answers[3].error_message;
  EXPECT_EQ(replay->hits(), 3);
  EXPECT_EQ(replay->misses(), 1);
}

// Every proposal of a seeded search on a replayed landscape, in order.
std::vector<uint64_t> replayed_run(const std::string& tuner_name, uint64_t seed, int trials,
                                   double* best_cost = nullptr,
                                   cost_model::FeatureKind features = cost_model::FeatureKind::kItervar) {
  const Workload w = Workload::parse("matmul(m=512,n=512,k=512)");
  Task task = Task::make(w, fixed_avx2_target(2), matmul_cpu_template());
  XgbTunerOptions xgb;
  xgb.features = features;
  auto tuner = tuner_name == "xgb" ? make_xgb_tuner(task, seed, xgb) : make_tuner(tuner_name, task, seed);
  std::vector<uint64_t> proposed;
  ReplayMeasurer replay([&](const MeasureInput& in) -> std::optional<MeasureResult> {
    proposed.push_back(in.config.index);
    return synthetic_result(*task.space, in.config);
  });
  TuneSummary s = tune(task, *tuner, replay, nullptr, replay_options(trials));
  if (best_cost) *best_cost = s.best ? s.best->result.mean_cost() : INFINITY;
  return proposed;
}

TEST(ReplayMeasurer, ReplayedRunsWithOneSeedAreIdentical) {
  for (const std::string name : {"random", "ga", "xgb"}) {
    SCOPED_TRACE(name);
    const std::vector<uint64_t> a = replayed_run(name, 7, 96), b = replayed_run(name, 7, 96);
    EXPECT_EQ(a.size(), 96u);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, replayed_run(name, 8, 96)) << "another seed searched the same way";
  }
}

// On a landscape whose good configs are near each other: the model-guided
// annealing with program features beats random sampling given four times
// the trials; with knob features (the landscape's own coordinates) it
// reaches in 96 trials a config better than the best of 5000 random ones:
// the optimum region. Genetic search beats random at equal trials.
TEST(XgbTuner, FindsTheOptimumRegionOfASyntheticLandscape) {
  double xgb = INFINITY, knob = INFINITY, ga = INFINITY, random = INFINITY, random_4x = INFINITY,
         random_5000 = INFINITY;
  replayed_run("xgb", 1, 96, &xgb);
  replayed_run("xgb", 1, 96, &knob, cost_model::FeatureKind::kKnob);
  replayed_run("ga", 1, 96, &ga);
  replayed_run("random", 1, 96, &random);
  replayed_run("random", 1, 384, &random_4x);
  replayed_run("random", 2, 5000, &random_5000);
  EXPECT_LT(xgb, random_4x) << "xgb " << xgb << " s, random with 4x the trials " << random_4x << " s";
  EXPECT_LT(knob, random_5000) << "xgb (knob features) " << knob << " s, best of 5000 random " << random_5000;
  EXPECT_LT(ga, random) << "ga " << ga << " s, random " << random << " s";
}

// A GPU landscape: a rough roofline of the GPU GEMM template's configs on an
// H100-like device (132 SMs; the time is the larger of the compute time,
// slowed where a thread's register tile is small (shared-memory bound) or
// too few warps run per SM, and the global-memory time of the block tiles'
// re-reads, in whole waves of blocks). Its good configs are rare (4% of the
// space is valid, a few in 10^4 of those near the best) and its costs
// plateau (configs alike but for knobs it ignores). Learned search over the
// GPU space's program features must beat random sampling given twice the
// trials (geometric mean of the best over 6 seeds; over 10 seeds it was
// 64 us at 128 trials against 71 us for random at 256 and 66 us at 512).
double gpu_roofline(const Task& task, const Config& c) {
  const auto m = task.space->split(c, "tile_m"), n = task.space->split(c, "tile_n"), k = task.space->split(c, "tile_k");
  const double M = 1024, N = 1024, K = 1024;
  const double rows = m[1] * m[3], cols = n[1] * n[3], bm = m[1] * m[2] * m[3], bn = n[1] * n[2] * n[3];
  const double threads = m[2] * n[2] * k[1], blocks = m[0] * n[0];
  // Blocks resident per SM (threads, registers), waves of them over 132 SMs.
  const double per_sm =
      std::max(1.0, std::min({32.0, std::floor(2048 / threads), std::floor(65536 / (threads * (rows * cols + 32)))}));
  const double waves = std::ceil(blocks / (132 * per_sm));
  const double resident = std::min(per_sm, std::ceil(blocks / 132));
  // An SM's FMA rate, reached with enough warps to hide latency and enough
  // FMAs per shared-memory load.
  const double warps = resident * threads / 32, intensity = rows * cols / (rows + cols);
  const double rate = 218e9 * std::min(1.0, intensity / 4) * std::min(1.0, warps / 16);
  const double compute = waves * resident * bm * bn * K / rate;
  const double memory = (M * N * K * (1 / bm + 1 / bn) * 4) / 3e12;
  return std::max(compute, memory) * (task.space->value(c, "unroll_k") ? 1.0 : 1.15);
}

double gpu_run(const std::string& tuner_name, uint64_t seed, int trials,
               cost_model::FeatureKind features = cost_model::FeatureKind::kItervar) {
  const Workload w = Workload::parse("matmul(m=1024,n=1024,k=1024)");
  Task task = Task::make(w, cuda_target_for_arch("sm_90"), matmul_cuda_template());
  XgbTunerOptions xgb;
  xgb.features = features;
  auto tuner = tuner_name == "xgb" ? make_xgb_tuner(task, seed, xgb) : make_tuner(tuner_name, task, seed);
  ReplayMeasurer replay([&](const MeasureInput& in) -> std::optional<MeasureResult> {
    MeasureResult r;
    r.costs = {gpu_roofline(task, in.config)};
    return r;
  });
  TuneSummary s = tune(task, *tuner, replay, nullptr, replay_options(trials));
  return s.best ? s.best->result.mean_cost() : INFINITY;
}

TEST(XgbTuner, BeatsRandomSearchWithTwiceTheTrialsOnAGpuSpace) {
  double xgb = 0, random_2x = 0;
  std::string detail;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const double x = gpu_run("xgb", seed, 128), r = gpu_run("random", seed, 256);
    xgb += std::log(x) / 6, random_2x += std::log(r) / 6;
    detail += " " + std::to_string(x * 1e6) + "/" + std::to_string(r * 1e6);
  }
  EXPECT_LT(xgb, random_2x) << "best us per seed, xgb (128 trials) / random (256):" << detail;
}

// A landscape all matmuls share, defined on what the template-independent
// curve features see (a fixed mix of them): what one workload teaches about
// it holds for the next.
double shared_cost(const ir::Program& p) {
  const std::vector<float> f = cost_model::curve_features(p);
  double mix = 0;
  for (size_t i = 0; i < f.size(); ++i) mix += f[i] * std::sin(1.0 + 0.7 * static_cast<double>(i));
  return 1e-3 * std::exp(-0.05 * mix);
}

std::vector<Config> some_valid_configs(const Task& task, size_t count, uint64_t seed) {
  return testing::distinct_valid_configs(*task.tmpl, task.workload, task.target, *task.space, count, seed);
}

// Transfer warm start: trained on three other matmuls' records, the base
// model ranks a new matmul's configs far better than a model of the new
// task's own first 8 measurements, and the task model warm-started on the
// base margin keeps that lead.
TEST(Transfer, HistoryOfOtherWorkloadsRanksANewOneBetterThanItsFirstMeasurements) {
  const Target t = fixed_avx2_target(1);
  const Template& tmpl = matmul_cpu_template();
  std::vector<Record> history;
  for (const char* spec : {"matmul(m=128,n=128,k=128)", "matmul(m=256,n=512,k=128)", "matmul(m=64,n=256,k=256)"}) {
    Task task = Task::make(Workload::parse(spec), t, tmpl);
    for (const Config& c : some_valid_configs(task, 120, 21)) {
      Record r;
      r.workload_key = task.workload.key();
      r.device_key = t.device_key();
      r.template_name = tmpl.name();
      r.template_version = tmpl.version();
      r.config_index = c.index;
      r.result.costs = {shared_cost(tmpl.instantiate(task.workload, t, *task.space, c))};
      history.push_back(r);
    }
  }
  const std::shared_ptr<const TransferModel> base = TransferModel::train(history, t);
  ASSERT_TRUE(base);
  EXPECT_EQ(base->workloads(), 3u);
  EXPECT_EQ(base->records(), 360u);

  Task task = Task::make(Workload::parse("matmul(m=192,n=384,k=256)"), t, tmpl);
  const std::vector<Config> configs = some_valid_configs(task, 158, 22);
  cost_model::FeatureExtractor itervar(task.workload, t, tmpl, *task.space, cost_model::FeatureKind::kItervar);
  cost_model::FeatureExtractor curve(task.workload, t, tmpl, *task.space, cost_model::FeatureKind::kCurve);
  cost_model::Matrix own_x, test_x, own_curve, test_curve;
  std::vector<float> own_y, truth;
  for (size_t i = 0; i < configs.size(); ++i) {
    const float score = static_cast<float>(1e-3 / shared_cost(tmpl.instantiate(task.workload, t, *task.space, configs[i])));
    (i < 8 ? own_x : test_x).push_back(itervar.get(configs[i]));
    (i < 8 ? own_curve : test_curve).push_back(curve.get(configs[i]));
    (i < 8 ? own_y : truth).push_back(score);
  }
  const float top = *std::max_element(own_y.begin(), own_y.end());
  for (float& y : own_y) y /= top;
  cost_model::XgbModel own, warm;
  own.fit(own_x, own_y);
  warm.fit(own_x, own_y, base->predict(own_curve));
  const double rho_own = cost_model::spearman(own.predict(test_x), truth);
  const double rho_base = cost_model::spearman(base->predict(test_curve), truth);
  const double rho_warm = cost_model::spearman(warm.predict(test_x, base->predict(test_curve)), truth);
  EXPECT_GT(rho_base, rho_own + 0.1) << "base " << rho_base << ", own 8 measurements " << rho_own;
  EXPECT_GT(rho_warm, rho_own + 0.1) << "warm-started " << rho_warm << ", own 8 measurements " << rho_own;
}

TEST(Transfer, TooLittleUsableHistoryGivesNoBaseModel) {
  const Target t = fixed_avx2_target(1);
  Record stale;
  stale.workload_key = "matmul(m=8,n=8,k=8)";
  stale.template_name = matmul_cpu_template().name();
  stale.template_version = matmul_cpu_template().version() - 1;  // an older space
  stale.result.costs = {1e-3};
  std::vector<Record> history(40, stale);
  EXPECT_EQ(TransferModel::train(history, t), nullptr);
  EXPECT_EQ(TransferModel::train({}, t), nullptr);
}

TEST(GeneticTuner, ImprovesOverItsFirstPopulation) {
  const Workload w = Workload::parse("matmul(m=512,n=512,k=512)");
  Task task = Task::make(w, fixed_avx2_target(2), matmul_cpu_template());
  GeneticOptions options;
  options.population = 16;
  auto ga = make_genetic_tuner(task, 3, options);
  double first_population_best = INFINITY, best = INFINITY;
  int measured = 0;
  while (measured < 160) {
    std::vector<Config> batch = ga->next_batch(16);
    ASSERT_FALSE(batch.empty());
    std::vector<MeasureResult> results;
    for (const Config& c : batch) {
      EXPECT_FALSE(task.tmpl->check(w, task.target, *task.space, c).has_value()) << "invalid proposal";
      results.push_back(synthetic_result(*task.space, c));
      const double cost = results.back().mean_cost();
      if (measured < options.population) first_population_best = std::min(first_population_best, cost);
      best = std::min(best, cost);
      ++measured;
    }
    ga->update(batch, results);
  }
  EXPECT_LT(best, first_population_best * 0.8)
      << "best " << best << " s after 160 trials, first population's best " << first_population_best;
}

TEST(GeneticTuner, NeverProposesAConfigTwiceOrAnExcludedOne) {
  const Workload w = Workload::parse("matmul(m=8,n=8,k=8)");
  Task task = Task::make(w, fixed_avx2_target(1), matmul_cpu_template());
  GeneticOptions options;
  options.population = 4;
  auto ga = make_genetic_tuner(task, 5, options);
  const Config excluded = task.space->get(0);
  ga->exclude({excluded.index});
  std::set<uint64_t> seen;
  for (int round = 0; round < 30 && ga->has_next(); ++round) {
    std::vector<Config> batch = ga->next_batch(8);
    std::vector<MeasureResult> results;
    for (const Config& c : batch) {
      EXPECT_TRUE(seen.insert(c.index).second) << "config " << c.index << " proposed twice";
      EXPECT_NE(c.index, excluded.index);
      results.push_back(synthetic_result(*task.space, c));
    }
    ga->update(batch, results);
  }
  EXPECT_GT(seen.size(), 8u);
}

TEST(GeneticTuner, RejectsBadOptions) {
  const Workload w = Workload::parse("matmul(m=8,n=8,k=8)");
  Task task = Task::make(w, fixed_avx2_target(1), matmul_cpu_template());
  EXPECT_THROW(make_genetic_tuner(task, 1, {.population = 1}), Error);
  EXPECT_THROW(make_genetic_tuner(task, 1, {.population = 8, .mutation = 1.5}), Error);
}

}  // namespace
}  // namespace ktune
