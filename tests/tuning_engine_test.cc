// The tuning engine (tuner/tuning.h) on both kinds of measurer it serves: one
// that times on this machine, a batch at a time (the local `ktune tune`),
// and one that measures elsewhere with many candidates in flight (a farm).
// Both answer from a synthetic landscape, so the tests are about the
// engine's bookkeeping: budgets, resuming, overlap, finals. The farm itself
// is tested with real processes in farm_model_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "schedule_space/error.h"
#include "tests/job_records.h"
#include "tests/landscape.h"
#include "tests/scratch_dir.h"
#include "tuner/tuning.h"

namespace ktune {
namespace {

using testing::synthetic_cost;
using testing::total;

MeasureResult synthetic(const MeasureInput& in) {
  MeasureResult r;
  const ConfigSpace space = in.tmpl->space(in.workload, in.target);
  if (auto why = in.tmpl->check(in.workload, in.target, space, in.config)) {
    r.error = MeasureError::kInvalidConfig;
    r.error_message = *why;
    return r;
  }
  r.costs = {synthetic_cost(space, in.config) * in.workload.flops() / 1e6};
  r.worker = "synthetic";
  return r;
}

// Times "here": one batch at a time.
class LocalLike : public Measurer {
 public:
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions&) override {
    std::vector<MeasureResult> out;
    for (const MeasureInput& in : inputs) out.push_back(synthetic(in));
    return out;
  }
};

// Measures "elsewhere": submit() returns at once, a thread answers each
// candidate after a short delay; it notes what was in flight together.
class FarmLike : public Measurer {
 public:
  explicit FarmLike(int slots) : slots_(slots), thread_([this] { loop(); }) {}
  ~FarmLike() override {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions&) override {
    std::vector<MeasureResult> out;
    for (const MeasureInput& in : inputs) out.push_back(synthetic(in));
    return out;
  }
  void submit(const std::vector<MeasureInput>& inputs, const MeasureOptions&,
              std::function<void(size_t, const MeasureResult&)> on_result) override {
    auto cb = std::make_shared<std::function<void(size_t, const MeasureResult&)>>(std::move(on_result));
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < inputs.size(); ++i) queue_.push_back(Item{inputs[i], i, cb});
    note_locked();
    cv_.notify_all();
  }
  void cancel() override {
    std::deque<Item> items;
    {
      std::lock_guard lock(mu_);
      items.swap(queue_);
    }
    for (Item& item : items) {
      MeasureResult r;
      r.error = MeasureError::kCancelled;
      (*item.on_result)(item.index, r);
    }
  }
  int parallel_slots() const override { return slots_; }

  size_t max_in_flight() {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }
  size_t max_workloads_in_flight() {
    std::lock_guard lock(mu_);
    return max_workloads_;
  }

 private:
  struct Item {
    MeasureInput input;
    size_t index;
    std::shared_ptr<std::function<void(size_t, const MeasureResult&)>> on_result;
  };
  void note_locked() {
    max_in_flight_ = std::max(max_in_flight_, queue_.size());
    std::set<std::string> workloads;
    for (const Item& item : queue_) workloads.insert(item.input.workload.key());
    max_workloads_ = std::max(max_workloads_, workloads.size());
  }
  void loop() {
    while (true) {
      Item item;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
        if (done_) return;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      (*item.on_result)(item.index, synthetic(item.input));
    }
  }
  int slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool done_ = false;
  size_t max_in_flight_ = 0, max_workloads_ = 0;
  std::thread thread_;
};

class TuningEngineTest : public ::testing::Test {
 protected:
  TuningRequest model_request(int trials) {
    TuningRequest r;
    r.tasks = {TuningTask{Workload::parse("matmul(m=64,n=64,k=64)"), 3},
               TuningTask{Workload::parse("dense(batch=1,in=256,out=64)"), 1},
               TuningTask{Workload::parse("conv2d(n=1,c=16,h=14,w=14,k=16,r=1,s=1)"), 2}};  // two templates
    r.target = testing::fixed_avx2_target(1);
    r.budget = Budget::kModel;
    r.options.trials = trials;
    r.options.batch_size = 8;
    r.options.final_top = 2;
    r.options.job = "model test";
    r.tuner = "xgb";
    return r;
  }
  std::map<std::string, int> search_records(const std::string& job) { return testing::job_search_records(path(), job); }
  std::string path() const { return (dir_ / "t.db").string(); }

  ktune::testing::ScratchDir dir_{"ktune-engine-test"};
};

TEST_F(TuningEngineTest, AModelSpendsExactlyItsBudgetWhetherMeasuredHereOrOnAFarm) {
  for (bool farm : {false, true}) {
    SCOPED_TRACE(farm ? "farm" : "local");
    std::filesystem::remove(path());
    auto db = Database::open(path());
    DatabaseLog log(*db);
    TuningRequest request = model_request(96);
    LocalLike local;
    FarmLike remote(8);
    Measurer& m = farm ? static_cast<Measurer&>(remote) : local;
    TuningResult result = tune(request, m, &log);
    EXPECT_FALSE(result.stopped);
    EXPECT_EQ(result.trials, 96);
    std::map<std::string, int> records = search_records("model test");
    EXPECT_EQ(total(records), 96);
    for (const auto& [config, n] : records) EXPECT_EQ(n, 1) << config;
    ASSERT_EQ(result.workloads.size(), 3u);
    // The warm-up went where the time is: the task holding the most of the
    // untuned model's time got the most trials; every task got some.
    const WorkloadResult* heaviest = &result.workloads.front();
    const WorkloadResult* most_trials = heaviest;
    for (const WorkloadResult& w : result.workloads) {
      if (w.weight * w.default_s > heaviest->weight * heaviest->default_s) heaviest = &w;
      if (w.trials > most_trials->trials) most_trials = &w;
    }
    EXPECT_EQ(heaviest, most_trials);
    for (const WorkloadResult& w : result.workloads) {
      EXPECT_GE(w.trials, 2) << w.workload.key();  // a quarter of the warm-up, at least
      EXPECT_TRUE(std::isfinite(w.default_s)) << w.workload.key();
      EXPECT_TRUE(std::isfinite(w.best_s)) << w.workload.key();
      EXPECT_LE(w.best_s, w.default_s);
      ASSERT_TRUE(w.best.has_value());
      EXPECT_EQ(w.best->kind, "final");  // the re-measured winner is marked
      std::optional<Record> marked = db->best(w.workload.key(), request.target.device_key());
      ASSERT_TRUE(marked.has_value());
      EXPECT_EQ(marked->id, w.best->id);
    }
    EXPECT_EQ(result.workloads[2].templates.size(), 2u);  // the 1x1 conv: both templates tuned
    EXPECT_GT(result.workloads[2].templates[1].trials, 0);
    EXPECT_GT(result.estimated_s(), 0);
    EXPECT_LT(result.estimated_s(), result.untuned_s());
    if (farm) {
      // Several tasks' candidates, and more than a batch, in flight at once.
      EXPECT_GE(remote.max_workloads_in_flight(), 2u);
      EXPECT_GT(result.max_in_flight, request.options.batch_size);
    } else {
      EXPECT_LE(result.max_in_flight, request.options.batch_size);
    }
  }
}

// Found by ThreadSanitizer (scripts/sanitize.sh tsan: pthread_cond_signal
// in Engine::push against pthread_cond_destroy in ~Engine): the measurer's
// thread delivered the last result and notified after unlocking, when the
// engine could already have taken it, ended and been destroyed. Each run here
// ends on a result from the measurer's thread; under TSan a notify outside
// the lock is reported.
TEST_F(TuningEngineTest, ARunEndingOnAResultFromTheMeasurersThreadOutlivesItsNotification) {
  for (int run = 0; run < 5; ++run) {
    std::filesystem::remove(path());
    auto db = Database::open(path());
    DatabaseLog log(*db);
    FarmLike remote(4);
    TuningRequest request = model_request(16);
    request.options.final_top = 0;
    const TuningResult result = tune(request, remote, &log);
    EXPECT_EQ(result.trials, 16) << "run " << run;
  }
}

TEST_F(TuningEngineTest, AStoppedFarmRunLosesNothingAndItsJobResumesWithoutMeasuringAnythingTwice) {
  TuningRequest request = model_request(96);
  std::atomic<int> seen{0};
  {
    auto db = Database::open(path());
    DatabaseLog log(*db);
    FarmLike farm(8);
    TuningRequest first = request;
    first.options.stop = [&] { return seen.load() >= 30; };
    class Count : public TuningObserver {
     public:
      explicit Count(std::atomic<int>& n) : n_(n) {}
      void progress(const TuningProgress& p) override { n_ = p.trials; }
      std::atomic<int>& n_;
    } count(seen);
    TuningResult r = tune(first, farm, &log, &count);
    EXPECT_TRUE(r.stopped);
    EXPECT_GE(r.trials, 30);
    EXPECT_LT(r.trials, 96);
    EXPECT_EQ(total(search_records("model test")), r.trials);  // every measured one stored, no cancelled one
    for (const WorkloadResult& w : r.workloads) EXPECT_FALSE(w.best.has_value());  // nothing decided
  }
  auto db = Database::open(path());
  DatabaseLog log(*db);
  FarmLike farm(8);
  TuningResult again = tune(request, farm, &log);
  EXPECT_FALSE(again.stopped);
  EXPECT_EQ(again.trials_before + again.trials, 96);
  std::map<std::string, int> records = search_records("model test");
  EXPECT_EQ(total(records), 96);
  for (const auto& [config, n] : records) EXPECT_EQ(n, 1) << config;
}

TEST_F(TuningEngineTest, OperatorsKeepTheirOwnBudgetsAndOverlapOnAFarm) {
  auto db = Database::open(path());
  DatabaseLog log(*db);
  TuningRequest request = model_request(0);
  request.budget = Budget::kPerWorkload;
  request.options.trials = 20;
  request.options.job = "ops";
  FarmLike farm(8);
  TuningResult result = tune(request, farm, &log);
  EXPECT_EQ(result.trials, 60);
  std::map<std::string, int> per_workload;
  for (const auto& [config, n] : search_records("ops")) {
    EXPECT_EQ(n, 1) << config;
    per_workload[config.substr(0, config.find('|'))] += n;
  }
  for (const TuningTask& t : request.tasks) EXPECT_EQ(per_workload[t.workload.key()], 20) << t.workload.key();
  EXPECT_GE(farm.max_workloads_in_flight(), 2u);
  // The 1x1 conv's two templates share its 20 trials evenly.
  EXPECT_EQ(result.workloads[2].templates[0].trials, 10);
  EXPECT_EQ(result.workloads[2].templates[1].trials, 10);
}

// Times "here" with one unlucky measurement: the first time the untuned
// default (the first seed) is measured it looks three times slower than it
// is. Notes the order of the final re-measurements.
class UnluckyDefault : public LocalLike {
 public:
  explicit UnluckyDefault(uint64_t default_index) : default_(default_index) {}
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& o) override {
    std::vector<MeasureResult> out;
    for (const MeasureInput& in : inputs) {
      MeasureResult r = synthetic(in);
      // The default is the fastest config of all, truly.
      if (in.config.index == default_) r.costs = {1e-9};
      if (in.config.index == default_ && !seen_default_) {
        seen_default_ = true;
        r.costs = {1.0};
      }
      r.costs.assign(static_cast<size_t>(o.repeat), r.costs.front());
      if (o.repeat > 1) final_order_.push_back(in.config.index);  // the search measures once
      out.push_back(r);
    }
    return out;
  }
  std::vector<uint64_t> final_order_;

 private:
  uint64_t default_;
  bool seen_default_ = false;
};

TEST_F(TuningEngineTest, TheFinalsInterleaveTheFinalistsAndTheDefaultSoAWinnerIsNeverSlowerThanIt) {
  auto db = Database::open(path());
  DatabaseLog log(*db);
  TuningRequest request = model_request(0);
  request.tasks.resize(1);  // matmul: one template
  request.budget = Budget::kPerWorkload;
  request.options.trials = 24;
  request.options.final_top = 2;
  request.options.final_repeat = 6;
  request.options.measure.repeat = 1;
  request.options.job = "finals";
  const Task first = Task::make(request.tasks[0].workload, request.target,
                                *templates_to_tune(request.tasks[0].workload, "", TargetKind::kCpu).front());
  const uint64_t default_index = default_config(first).index;
  UnluckyDefault measurer(default_index);
  TuningResult result = tune(request, measurer, &log);
  const WorkloadResult& w = result.workloads.front();
  // The search saw the default as slow; the finals measured it again, and it won.
  ASSERT_TRUE(w.best.has_value());
  EXPECT_EQ(w.best->config_index, default_index);
  EXPECT_EQ(w.best->kind, "final");
  EXPECT_EQ(db->best(w.workload.key(), request.target.device_key())->config_index, default_index);
  // Three finalists (the top two and the default), three rounds of two
  // repeats, each round in another order; one record each with all six costs.
  ASSERT_EQ(measurer.final_order_.size(), 9u);
  EXPECT_NE(std::vector<uint64_t>(measurer.final_order_.begin(), measurer.final_order_.begin() + 3),
            std::vector<uint64_t>(measurer.final_order_.begin() + 3, measurer.final_order_.begin() + 6));
  int finals = 0;
  for (const Record& r : db->records("", {})) {
    if (r.kind != "final") continue;
    ++finals;
    EXPECT_EQ(r.result.costs.size(), 6u);
  }
  EXPECT_EQ(finals, 3);
}

// A measurer on which one template of an operator is far slower than the
// other (as a 1x1 conv's GEMM template is on small planes, or its direct
// template on large ones).
class OneTemplateBehind : public LocalLike {
 public:
  explicit OneTemplateBehind(std::string slow) : slow_(std::move(slow)) {}
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions&) override {
    std::vector<MeasureResult> out;
    for (const MeasureInput& in : inputs) {
      MeasureResult r = synthetic(in);
      if (in.tmpl->name() == slow_) {
        for (double& c : r.costs) c *= 3;
      }
      out.push_back(r);
    }
    return out;
  }

 private:
  std::string slow_;
};

TEST_F(TuningEngineTest, AfterTheWarmupAModelsTaskSpendsMostOfItsTrialsOnItsTemplateAhead) {
  for (const char* slow : {"conv2d_1x1_cpu_gemm", "conv2d_cpu_nchwc"}) {
    SCOPED_TRACE(slow);
    std::filesystem::remove(path());
    auto db = Database::open(path());
    DatabaseLog log(*db);
    TuningRequest request = model_request(0);
    request.tasks = {request.tasks[2]};  // the 1x1 conv: two templates
    request.options.trials = 40;
    request.options.seeds = false;  // the search alone decides
    OneTemplateBehind measurer(slow);
    TuningResult result = tune(request, measurer, &log);
    ASSERT_EQ(result.workloads.size(), 1u);
    const WorkloadResult& w = result.workloads.front();
    ASSERT_EQ(w.templates.size(), 2u);
    const TuneSummary& behind = w.templates[0].template_name == slow ? w.templates[0] : w.templates[1];
    const TuneSummary& ahead = &behind == &w.templates[0] ? w.templates[1] : w.templates[0];
    EXPECT_EQ(result.trials, 40);
    EXPECT_GE(behind.trials, 6) << "every third allocation still goes to the template behind";
    EXPECT_GT(ahead.trials, 2 * behind.trials - 6) << ahead.trials << " against " << behind.trials;
    ASSERT_TRUE(w.best.has_value());
    EXPECT_NE(w.best->template_name, slow);
  }
}

// The default measured in a fast spell of the machine during the search,
// then at its true speed in the finals, where another config wins.
class LuckyDefault : public LocalLike {
 public:
  explicit LuckyDefault(uint64_t default_index) : default_(default_index) {}
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& o) override {
    std::vector<MeasureResult> out;
    for (const MeasureInput& in : inputs) {
      MeasureResult r = synthetic(in);
      if (in.config.index == default_) r.costs = {o.repeat > 1 ? 1.0 : 1e-9};
      r.costs.assign(static_cast<size_t>(o.repeat), r.costs.front());
      out.push_back(r);
    }
    return out;
  }

 private:
  uint64_t default_;
};

TEST_F(TuningEngineTest, AModelTasksUntunedTimeComesFromTheRoundsItsWinnerWonIn) {
  auto db = Database::open(path());
  DatabaseLog log(*db);
  TuningRequest request = model_request(16);
  request.tasks.resize(1);  // matmul: one template
  request.options.measure.repeat = 1;
  request.options.final_repeat = 4;
  const Task first = Task::make(request.tasks[0].workload, request.target,
                                *templates_to_tune(request.tasks[0].workload, "", TargetKind::kCpu).front());
  LuckyDefault measurer(default_config(first).index);
  TuningResult result = tune(request, measurer, &log);
  const WorkloadResult& w = result.workloads.front();
  ASSERT_TRUE(w.best.has_value());
  EXPECT_NE(w.best->config_index, default_config(first).index);
  // Not the search's 1 ns: the tuned best is never reported slower than the untuned default.
  EXPECT_DOUBLE_EQ(w.default_s, 1.0);
  EXPECT_LE(w.best_s, w.default_s);
  EXPECT_LT(result.estimated_s(), result.untuned_s());
}

TEST_F(TuningEngineTest, ABadRequestIsRefusedBeforeAnythingIsMeasured) {
  auto db = Database::open(path());
  DatabaseLog log(*db);
  LocalLike local;
  TuningRequest request = model_request(32);
  request.tuner = "annealing";
  EXPECT_THROW(tune(request, local, &log), Error);
  request = model_request(32);
  request.configs = {"tile_m=[1,64]"};
  EXPECT_THROW(tune(request, local, &log), Error);  // configs name one workload's space
  request.tasks.resize(1);
  request.configs = {"not a config"};
  EXPECT_THROW(tune(request, local, &log), Error);
  request = model_request(32);
  request.tasks.clear();
  EXPECT_THROW(tune(request, local, &log), Error);
  EXPECT_EQ(db->counts().total, 0);
}

}  // namespace
}  // namespace ktune
