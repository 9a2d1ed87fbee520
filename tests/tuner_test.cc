// Search strategies and the tuning loop, with real measurement (generated
// code compiled and run in the sandboxed runner) and a real SQLite file.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "measure/local_measurer.h"
#include "schedule_space/error.h"
#include "schedule_space/templates/templates.h"
#include "tuner/tuner.h"
#include "tuner/tuning.h"
#include "tests/tuning_log_of.h"

#include "tests/scratch_dir.h"

namespace ktune {
namespace {

using testing::log_of;

namespace fs = std::filesystem;

// A test-only template for matmul whose single knob picks how the kernel
// behaves: correct, crashing, hanging or wrong. Everything after it — codegen,
// compiler, runner, database — is the real path.
class FaultyMatmulTemplate : public Template {
 public:
  enum Mode { kCorrect = 0, kCrash = 1, kHang = 2, kWrong = 3, kInvalid = 4 };
  std::string name() const override { return "test_faulty_matmul"; }
  int version() const override { return 1; }
  OpKind op() const override { return OpKind::kMatmul; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }
  ConfigSpace space(const Workload&, const Target&) const override {
    ConfigSpace s;
    s.add_choice("mode", {kCorrect, kCrash, kHang, kWrong, kInvalid});
    return s;
  }
  std::optional<std::string> check(const Workload&, const Target&, const ConfigSpace& space,
                                   const Config& c) const override {
    if (space.value(c, "mode") == kInvalid) return "mode 4 is invalid by design";
    return std::nullopt;
  }
  ir::Program instantiate(const Workload& w, const Target&, const ConfigSpace& space,
                          const Config& c) const override {
    using namespace ir;
    const MatmulShape& s = w.matmul();
    int64_t mode = space.value(c, "mode");
    Buffer a = make_buffer("A", {s.m, s.k}), b = make_buffer("B", {s.k, s.n});
    Buffer out = make_buffer("C", {s.m, s.n});
    Expr i = var("i"), j = var("j"), k = var("k");
    Expr value = load(a, {i, k}) * load(b, {k, j});
    Stmt init = store(out, {i, j}, float_imm(mode == kWrong ? 1.0f : 0.0f));
    Stmt update = accumulate(out, {i, j}, value);
    if (mode == kCrash) update = store(out, {i * int_imm(1LL << 40), j}, value);
    Stmt reduce = for_loop("k", s.k, LoopKind::kSerial, update);
    if (mode == kHang) reduce = for_loop("spin", 1LL << 50, LoopKind::kSerial, reduce);
    Program p;
    p.name = "faulty";
    p.params = {a, b, out};
    p.body = for_loop("i", s.m, LoopKind::kSerial,
                      for_loop("j", s.n, LoopKind::kSerial, seq({init, reduce})));
    return p;
  }
};

class TunerTest : public ::testing::Test {
 protected:
  LocalMeasurer make_measurer() {
    LocalMeasurerOptions o;
    o.cache_dir = (dir_ / "cache").string();
    o.runner_path = std::string(KTUNE_BIN_DIR) + "/ktune-runner";
    return LocalMeasurer(o);
  }
  TuneOptions fast_options(int trials) {
    TuneOptions o;
    o.trials = trials;
    o.batch_size = 4;
    o.final_top = 2;
    o.final_repeat = 2;
    o.measure.repeat = 1;
    o.measure.number = 1;
    o.measure.run_timeout_s = 5;
    return o;
  }

  ktune::testing::ScratchDir dir_{"ktune-tuner-test"};
  Target target_ = detect_cpu_target(1);
};

const FaultyMatmulTemplate kFaulty;

std::set<uint64_t> indices_of(const std::vector<Config>& configs) {
  std::set<uint64_t> out;
  for (const Config& c : configs) out.insert(c.index);
  return out;
}

TEST_F(TunerTest, RandomTunerProposesEachValidConfigOnceThenStops) {
  Task task = Task::make(Workload::parse("matmul(m=8,n=8,k=8)"), target_, kFaulty);
  auto tuner = make_random_tuner(task, 7);
  std::vector<Config> first = tuner->next_batch(2);
  std::vector<Config> rest = tuner->next_batch(10);
  EXPECT_EQ(first.size(), 2u);
  EXPECT_EQ(rest.size(), 2u);  // 4 valid configs in all; the invalid one is never proposed
  std::set<uint64_t> all = indices_of(first);
  for (const Config& c : rest) EXPECT_TRUE(all.insert(c.index).second) << "repeated " << c.index;
  EXPECT_EQ(all, (std::set<uint64_t>{0, 1, 2, 3}));
  EXPECT_FALSE(tuner->has_next());
  EXPECT_TRUE(tuner->next_batch(4).empty());
}

TEST_F(TunerTest, RandomTunerOnAHugeSpaceNeverRepeats) {
  Workload w = Workload::parse("conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)");
  Task task = Task::make(w, target_, *templates_for(OpKind::kConv2d, TargetKind::kCpu)[0]);
  auto tuner = make_random_tuner(task, 1);
  std::set<uint64_t> seen;
  for (int b = 0; b < 20; ++b) {
    for (const Config& c : tuner->next_batch(16)) {
      EXPECT_TRUE(seen.insert(c.index).second);
      EXPECT_FALSE(task.tmpl->check(w, target_, *task.space, c).has_value());
    }
  }
  EXPECT_EQ(seen.size(), 320u);
}

TEST_F(TunerTest, GridTunerWalksIndicesInOrderAndHonoursExclusions) {
  Task task = Task::make(Workload::parse("matmul(m=8,n=8,k=8)"), target_, kFaulty);
  auto tuner = make_grid_tuner(task);
  tuner->exclude({1});
  std::vector<Config> batch = tuner->next_batch(10);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].index, 0u);
  EXPECT_EQ(batch[1].index, 2u);
  EXPECT_EQ(batch[2].index, 3u);
  EXPECT_FALSE(tuner->has_next());
}

TEST_F(TunerTest, UnknownTunerNameIsAClearError) {
  Task task = Task::make(Workload::parse("matmul(m=8,n=8,k=8)"), target_, kFaulty);
  try {
    make_tuner("annealing", task, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("random, grid"), std::string::npos) << e.what();
  }
}

TEST_F(TunerTest, CrashingHangingAndWrongKernelsBecomeErrorsWhileTuningContinues) {
  Task task = Task::make(Workload::parse("matmul(m=8,n=8,k=8)"), target_, kFaulty);
  auto db = Database::open((dir_ / "t.db").string());
  LocalMeasurer measurer = make_measurer();
  auto tuner = make_grid_tuner(task);
  TuneOptions options = fast_options(10);
  options.measure.run_timeout_s = 2;
  TuneSummary s = tune(task, *tuner, measurer, log_of(db), options);

  EXPECT_EQ(s.trials, 4);
  EXPECT_EQ(s.errors, 3);
  std::set<MeasureError> errors;
  for (auto [e, n] : s.error_counts) errors.insert(e);
  EXPECT_EQ(errors, (std::set<MeasureError>{MeasureError::kRuntimeError, MeasureError::kRunTimeout,
                                            MeasureError::kWrongAnswer}));
  ASSERT_TRUE(s.best.has_value());
  EXPECT_EQ(s.best->config_index, 0u);  // the correct kernel
  EXPECT_EQ(s.best->kind, "final");

  std::optional<Record> stored = db->best(s.workload_key, s.device_key);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->id, s.best->id);
  // Every trial is stored, with its own error code, plus the re-measurement.
  std::vector<Record> history = db->history(s.workload_key, s.device_key);
  std::map<uint64_t, MeasureError> by_config;
  for (const Record& r : history) {
    if (r.kind == "search") by_config[r.config_index] = r.result.error;
  }
  EXPECT_EQ(by_config[0], MeasureError::kNone);
  EXPECT_EQ(by_config[1], MeasureError::kRuntimeError);
  EXPECT_EQ(by_config[2], MeasureError::kRunTimeout);
  EXPECT_EQ(by_config[3], MeasureError::kWrongAnswer);
}

TEST_F(TunerTest, NoValidCandidateReportsWhy) {
  Task task = Task::make(Workload::parse("matmul(m=8,n=8,k=8)"), target_, kFaulty);
  LocalMeasurer measurer = make_measurer();
  auto tuner = make_grid_tuner(task);
  tuner->exclude({0, 2});  // leave only the crashing and the wrong kernel
  TuneSummary s = tune(task, *tuner, measurer, nullptr, fast_options(10));
  EXPECT_EQ(s.trials, 2);
  EXPECT_FALSE(s.best.has_value());
  EXPECT_NE(s.first_error.find("runtime_error"), std::string::npos) << s.first_error;
}

TEST_F(TunerTest, RealTemplateFindsAValidKernelAndRerunsNeverRemeasure) {
  Workload w = Workload::parse("matmul(m=32,n=32,k=32)");
  Task task = Task::make(w, target_, *templates_for(OpKind::kMatmul, TargetKind::kCpu)[0]);
  auto db = Database::open((dir_ / "t.db").string());
  LocalMeasurer measurer = make_measurer();
  TuneOptions options = fast_options(8);

  auto first = make_random_tuner(task, 3);
  TuneSummary s1 = tune(task, *first, measurer, log_of(db), options);
  ASSERT_TRUE(s1.best.has_value()) << s1.first_error;
  EXPECT_EQ(s1.trials, 8);
  EXPECT_GT(s1.best->gflops(), 0.0);

  // Same seed, same database: everything measured before is skipped.
  auto second = make_random_tuner(task, 3);
  TuneSummary s2 = tune(task, *second, measurer, log_of(db), options);
  EXPECT_EQ(s2.skipped_already_measured, 8);  // distinct configs
  std::map<uint64_t, int> searched;
  for (const Record& r : db->history(w.key(), target_.device_key())) {
    if (r.kind == "search") ++searched[r.config_index];
  }
  EXPECT_EQ(searched.size(), 16u);
  for (auto [index, count] : searched) EXPECT_EQ(count, 1) << "config " << index << " measured twice";
  ASSERT_TRUE(s2.best.has_value());
  EXPECT_EQ(db->best(w.key(), target_.device_key())->id, s2.best->id);
}

// With no finalists (--final-top 0) the best measured candidate is the
// answer, recorded as the best, with no re-measurement.
TEST_F(TunerTest, NoFinalRemeasurementTakesTheBestMeasured) {
  Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  Task task = Task::make(w, target_, *templates_for(OpKind::kMatmul, TargetKind::kCpu)[0]);
  auto db = Database::open((dir_ / "t.db").string());
  LocalMeasurer measurer = make_measurer();
  TuneOptions options = fast_options(6);
  options.final_top = 0;
  auto tuner = make_random_tuner(task, 5);
  TuneSummary s = tune(task, *tuner, measurer, log_of(db), options);
  ASSERT_TRUE(s.best.has_value()) << s.first_error;
  const std::vector<Record> history = db->history(w.key(), target_.device_key());
  double fastest = std::numeric_limits<double>::infinity();
  for (const Record& r : history) {
    EXPECT_EQ(r.kind, "search");
    if (r.result.ok()) fastest = std::min(fastest, r.result.mean_cost());
  }
  EXPECT_EQ(s.best->result.mean_cost(), fastest);
  EXPECT_EQ(db->best(w.key(), target_.device_key())->id, s.best->id);
}

// The template's seeds are measured first, count as trials and are never
// proposed again by the search; --no-seeds (options.seeds = false) leaves
// the search on its own.
TEST_F(TunerTest, SeedConfigsAreMeasuredFirstAndNeverAgain) {
  Workload w = Workload::parse("matmul(m=32,n=48,k=32)");
  Task task = Task::make(w, target_, matmul_cpu_template());
  const std::vector<Config> seeds = task.tmpl->seed_configs(w, target_, *task.space);
  ASSERT_GE(seeds.size(), 2u);
  auto db = Database::open((dir_ / "seeds.db").string());
  LocalMeasurer measurer = make_measurer();
  const int trials = static_cast<int>(seeds.size()) + 4;
  auto tuner = make_random_tuner(task, 5);
  TuneSummary s = tune(task, *tuner, measurer, log_of(db), fast_options(trials));
  ASSERT_TRUE(s.best.has_value()) << s.first_error;
  EXPECT_EQ(s.trials, trials);
  std::vector<uint64_t> searched;
  for (const Record& r : db->history(w.key(), target_.device_key())) {
    if (r.kind == "search") searched.push_back(r.config_index);
  }
  std::reverse(searched.begin(), searched.end());  // history is newest first
  ASSERT_EQ(searched.size(), static_cast<size_t>(trials));
  for (size_t i = 0; i < seeds.size(); ++i) EXPECT_EQ(searched[i], seeds[i].index) << "seed " << i;
  EXPECT_EQ(std::set<uint64_t>(searched.begin(), searched.end()).size(), searched.size());

  auto blind_db = Database::open((dir_ / "blind.db").string());
  TuneOptions blind = fast_options(4);
  blind.seeds = false;
  auto random = make_random_tuner(task, 11);
  tune(task, *random, measurer, log_of(blind_db), blind);
  const std::set<uint64_t> seed_set = indices_of(seeds);
  for (const Record& r : blind_db->history(w.key(), target_.device_key())) {
    if (r.kind == "search") {
      EXPECT_EQ(seed_set.count(r.config_index), 0u) << "a seed was measured";
    }
  }
}

// `ktune tune --config`: exactly the listed configs, in order, invalid ones skipped.
TEST_F(TunerTest, ListTunerProposesExactlyItsConfigs) {
  Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  Task task = Task::make(w, target_, matmul_cpu_template());
  std::vector<Config> listed;
  std::mt19937_64 rng(3);
  while (listed.size() < 3) {
    Config c = task.space->random(rng);
    if (!task.tmpl->check(w, target_, *task.space, c)) listed.push_back(c);
  }
  auto tuner = make_list_tuner(task, listed);
  std::vector<Config> got = tuner->next_batch(2);
  std::vector<Config> rest = tuner->next_batch(5);
  got.insert(got.end(), rest.begin(), rest.end());
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[i].index, listed[i].index);
  EXPECT_FALSE(tuner->has_next());
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// A measurer that answers 1 ms for every input but the cancelled ones (as
// FarmMeasurer does for a cancelled job), streaming results one by one.
class CancellingMeasurer : public Measurer {
 public:
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions&) override {
    std::vector<MeasureResult> out(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (++calls_ > answer_) {
        out[i].error = MeasureError::kCancelled;
      } else {
        out[i].costs = {1e-3};
      }
    }
    return out;
  }
  int answer_ = 1 << 30;  // answered items before cancelling the rest
  int calls_ = 0;
};

// A stopped run (a cancelled job, a daemon stopping) neither stores nor
// learns from what was never measured, and re-measures nothing.
TEST_F(TunerTest, CancelledResultsAreNotRecordedAndStopEndsTheRun) {
  Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  Task task = Task::make(w, target_, *templates_for(OpKind::kMatmul, TargetKind::kCpu)[0]);
  auto db = Database::open((dir_ / "t.db").string());
  CancellingMeasurer measurer;
  measurer.answer_ = 6;
  TuneOptions options = fast_options(100);
  bool stop = false;
  options.stop = [&] { return stop; };
  auto tuner = make_random_tuner(task, 3);
  int batches = 0;
  TuneSummary s = tune(task, *tuner, measurer, log_of(db), options, [&](const TuneProgress&) {
    if (++batches == 2) stop = true;  // after the second batch: 4 answered + 2 answered, 2 cancelled
  });
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.trials, 6);
  EXPECT_EQ(db->counts(w.key()).total, 6);  // no cancelled rows, no finals
  for (const Record& r : db->history(w.key(), target_.device_key())) {
    EXPECT_EQ(r.kind, "search");
    EXPECT_TRUE(r.result.ok());
  }
  EXPECT_FALSE(db->best(w.key(), target_.device_key()).has_value() &&
               db->best(w.key(), target_.device_key())->kind == "final");
}

}  // namespace
}  // namespace ktune
