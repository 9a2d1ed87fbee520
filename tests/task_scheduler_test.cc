// The task scheduler on synthetic tasks whose best time falls with trials.
#include <gtest/gtest.h>

#include <cmath>

#include "schedule_space/error.h"
#include "tuner/task_scheduler.h"

namespace ktune {
namespace {

// best time after n trials: the floor plus a part that shrinks as 1/sqrt(n).
double curve(double floor, int n) { return floor * (1 + 2 / std::sqrt(std::max(1, n))); }

// Runs the scheduler to the end on tasks with these floors; returns trials per task.
std::vector<int> drive(TaskScheduler& s, const std::vector<double>& floors) {
  while (auto a = s.next()) {
    const int n = s.trials(a->task) + a->trials;
    s.record(a->task, a->trials, curve(floors[a->task], n));
  }
  std::vector<int> out;
  for (size_t i = 0; i < s.size(); ++i) out.push_back(s.trials(i));
  return out;
}

TEST(TaskSchedulerTest, WarmsUpEveryTaskThenFavoursTheLargerWeightTimesTime) {
  TaskSchedulerOptions o;
  o.trials = 400;
  o.warmup = 16;
  o.chunk = 16;
  // Task 0: 3 occurrences of a 10 ms operator; task 1: one 1 ms operator; task 2: one 10 ms.
  TaskScheduler s({3, 1, 1}, o);
  auto first = s.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->task, 0u);
  EXPECT_EQ(first->trials, 16);
  std::vector<int> trials = drive(s, {10e-3, 1e-3, 10e-3});
  EXPECT_EQ(trials[0] + trials[1] + trials[2], 400);  // the budget, exactly
  for (int t : trials) EXPECT_GE(t, 16);                // everyone warmed up
  EXPECT_GT(trials[0], trials[2]);                      // same time, 3x the weight
  EXPECT_GT(trials[2], trials[1]);                      // same weight, 10x the time
  EXPECT_FALSE(s.next().has_value());
}

TEST(TaskSchedulerTest, HonoursCapsExhaustionAndAResumedState) {
  TaskSchedulerOptions o;
  o.trials = 100;
  o.warmup = 8;
  o.chunk = 8;
  o.task_cap = 30;
  TaskScheduler s({10, 1}, o);
  std::vector<int> trials = drive(s, {1e-3, 1e-3});
  EXPECT_EQ(trials[0], 30);  // capped
  EXPECT_EQ(trials[1], 30);  // the rest of the budget cannot go anywhere
  TaskScheduler resumed({1, 1}, o);
  resumed.set_state(0, 60, 1e-3);  // an earlier run did 60 trials
  resumed.exhausted(1);
  EXPECT_FALSE(resumed.next().has_value());  // task 0 is over its cap, task 1 has nothing left
  TaskSchedulerOptions open = o;
  open.task_cap = 0;
  TaskScheduler again({1, 1}, open);
  again.set_state(0, 60, 1e-3);
  trials = drive(again, {1e-3, 1e-3});
  EXPECT_EQ(trials[0] + trials[1], 100);
  EXPECT_GE(trials[1], 8);
}

TEST(TaskSchedulerTest, ATaskWithNothingValidYetGoesFirstAndBadOptionsAreRefused) {
  TaskSchedulerOptions o;
  o.trials = 64;
  o.warmup = 4;
  TaskScheduler s({1, 1}, o);
  s.set_state(0, 4, 1e-3);
  s.set_state(1, 4, std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.next()->task, 1u);
  EXPECT_DOUBLE_EQ(s.estimated_total(), 1e-3);
  EXPECT_THROW(TaskScheduler({1, 0}, o), Error);
  o.chunk = 0;
  EXPECT_THROW(TaskScheduler({1}, o), Error);
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// At a small budget the warm-up goes where the time is: after each task's
// untuned default, a task that holds most of the model's estimated time gets
// most of the warm-up; every task still gets a few trials.
TEST(TaskSchedulerTest, AWeightedWarmupGivesMostToTheTasksThatHoldMostOfTheTime) {
  TaskSchedulerOptions o;
  o.trials = 3 * 12;  // 12 trials per task on average, all of it warm-up
  o.warmup = 12;
  o.chunk = 12;
  o.weighted_warmup = true;
  TaskScheduler s({1, 1, 4}, o);
  // The defaults measured: task 0 takes 10 ms, task 1 1 ms, task 2 4 x 1 ms.
  s.record(0, 1, 10e-3);
  s.record(1, 1, 1e-3);
  s.record(2, 1, 1e-3);
  EXPECT_GT(s.warmup_target(0), s.warmup_target(2));
  EXPECT_GT(s.warmup_target(2), s.warmup_target(1));
  EXPECT_GE(s.warmup_target(1), 3);  // a quarter of the warm-up at least
  EXPECT_EQ(s.next()->task, 0u);     // the heaviest first
  std::vector<int> trials = drive(s, {10e-3, 1e-3, 1e-3});
  EXPECT_EQ(trials[0] + trials[1] + trials[2], 36);
  EXPECT_GT(trials[0], trials[2]);
  EXPECT_GT(trials[2], trials[1]);
  EXPECT_GE(trials[1], 3);
}

// A task with two templates warms up with its default and a first seed of
// each template however small its share of the time: a template never tried
// cannot win (a model's depthwise convs once ended on their default's template
// after 2 trials while the other template was 2x faster).
TEST(TaskSchedulerTest, AWarmupGivesATaskAtLeastItsMinimumHoweverSmallItsShare) {
  TaskSchedulerOptions o;
  o.trials = 3 * 8;
  o.warmup = 8;
  o.chunk = 8;
  o.weighted_warmup = true;
  TaskScheduler s({1, 1, 1}, o);
  s.set_min_warmup(2, 3);  // the default and one seed of each of two templates
  s.record(0, 1, 100e-3);
  s.record(1, 1, 100e-3);
  s.record(2, 1, 0.1e-3);
  EXPECT_LT(std::max(1, o.warmup / 4), 3);  // without the minimum it would get less
  EXPECT_EQ(s.warmup_target(2), 3);
  const std::vector<int> trials = drive(s, {100e-3, 100e-3, 0.1e-3});
  EXPECT_GE(trials[2], 3);
  // A minimum above the warm-up is held to the warm-up.
  TaskScheduler capped({1}, o);
  capped.set_min_warmup(0, 50);
  EXPECT_EQ(capped.warmup_target(0), o.warmup);
}

}  // namespace
}  // namespace ktune
