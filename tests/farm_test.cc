// The device farm in-process: leases, heartbeats, expiry, exactly-once
// results, routing by device key and fairness between jobs. (The same farm
// over gRPC with real daemon and worker processes: farm_process_test.cc.)
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "workers/convert.h"
#include "workers/device_farm.h"

namespace ktune {
namespace {

using namespace std::chrono_literals;

v1::RegisterRequest registration(const std::string& name, const std::string& key) {
  v1::RegisterRequest r;
  r.set_protocol_version(v1::PROTOCOL_VERSION);
  r.set_worker_name(name);
  Target t;
  t.cpu.model = "test";
  t.cpu.isa = "avx2";
  t.key = key;
  *r.mutable_device()->mutable_target() = wire::to_proto(t);
  return r;
}

std::vector<v1::MeasureItem> items(int n) {
  std::vector<v1::MeasureItem> out(n);
  for (int i = 0; i < n; ++i) out[i].set_config_index(i);
  return out;
}

v1::ItemResult ok_result(const std::string& id, double cost) {
  v1::ItemResult r;
  r.set_item_id(id);
  r.mutable_result()->add_costs(cost);
  return r;
}

// Results delivered per item index.
struct Collected {
  std::mutex mu;
  std::map<int, std::vector<MeasureResult>> by_item;
  std::vector<DeviceFarm::OnResult> callbacks(int n) {
    std::vector<DeviceFarm::OnResult> out;
    for (int i = 0; i < n; ++i) {
      out.push_back([this, i](const MeasureResult& r) {
        std::lock_guard lock(mu);
        by_item[i].push_back(r);
      });
    }
    return out;
  }
  size_t count(int i) {
    std::lock_guard lock(mu);
    return by_item[i].size();
  }
};

TEST(DeviceFarmTest, LeasedItemsReportedTwiceGetExactlyOneResult) {
  DeviceFarm farm;
  const std::string w = farm.register_worker(registration("a", "cpu/test/avx2/1t")).worker_id();
  Collected got;
  farm.submit("job", "cpu/test/avx2/1t", items(3), got.callbacks(3));
  std::vector<v1::MeasureItem> leased = farm.lease(w, 10, 0ms);
  ASSERT_EQ(leased.size(), 3u);
  EXPECT_EQ(leased[1].config_index(), 1u);
  v1::ReportReply first = farm.report(w, {ok_result(leased[0].item_id(), 1e-3), ok_result(leased[1].item_id(), 2e-3)});
  EXPECT_EQ(first.accepted(), 2);
  v1::ReportReply again = farm.report(w, {ok_result(leased[0].item_id(), 5e-3), ok_result("i-nonsense", 1)});
  EXPECT_EQ(again.accepted(), 0);
  EXPECT_EQ(again.duplicates(), 1);
  EXPECT_EQ(again.unknown(), 1);
  EXPECT_EQ(got.count(0), 1u);
  EXPECT_DOUBLE_EQ(got.by_item[0][0].costs.at(0), 1e-3);  // the first report wins
  EXPECT_EQ(got.by_item[0][0].worker, "a");
  EXPECT_EQ(got.count(2), 0u);
  EXPECT_EQ(farm.stats().completed, 2);
}

TEST(DeviceFarmTest, AnExpiredLeaseIsRequeuedAndALateReportStillCountsOnce) {
  FarmOptions o;
  o.lease_timeout_s = 0.2;
  DeviceFarm farm(o);
  const std::string a = farm.register_worker(registration("a", "k")).worker_id();
  const std::string b = farm.register_worker(registration("b", "k")).worker_id();
  Collected got;
  farm.submit("job", "k", items(1), got.callbacks(1));
  std::vector<v1::MeasureItem> first = farm.lease(a, 1, 0ms);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(farm.lease(b, 1, 0ms).empty());  // leased to a
  std::this_thread::sleep_for(300ms);
  farm.expire();
  std::vector<v1::MeasureItem> second = farm.lease(b, 1, 1000ms);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].item_id(), first[0].item_id());
  // a's heartbeat learns it lost the item.
  EXPECT_EQ(farm.heartbeat(a, {first[0].item_id()}), std::vector<std::string>{first[0].item_id()});
  // a reports late anyway: the measurement is real and first, so it is kept...
  EXPECT_EQ(farm.report(a, {ok_result(first[0].item_id(), 1e-3)}).accepted(), 1);
  // ...and b's report is the duplicate.
  EXPECT_EQ(farm.report(b, {ok_result(second[0].item_id(), 2e-3)}).duplicates(), 1);
  EXPECT_EQ(got.count(0), 1u);
  EXPECT_EQ(farm.stats().requeued, 1);
}

TEST(DeviceFarmTest, HeartbeatsKeepALeaseAlive) {
  FarmOptions o;
  o.lease_timeout_s = 0.3;
  DeviceFarm farm(o);
  const std::string a = farm.register_worker(registration("a", "k")).worker_id();
  Collected got;
  farm.submit("job", "k", items(1), got.callbacks(1));
  std::vector<v1::MeasureItem> leased = farm.lease(a, 1, 0ms);
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(farm.heartbeat(a, {leased[0].item_id()}).empty());
    farm.expire();
  }
  EXPECT_EQ(farm.stats().requeued, 0);
  EXPECT_EQ(farm.report(a, {ok_result(leased[0].item_id(), 1e-3)}).accepted(), 1);
}

TEST(DeviceFarmTest, AnItemLostMaxAttemptsTimesIsRecordedAsDeviceLost) {
  FarmOptions o;
  o.lease_timeout_s = 0.05;
  o.max_attempts = 2;
  DeviceFarm farm(o);
  const std::string a = farm.register_worker(registration("a", "k")).worker_id();
  Collected got;
  farm.submit("job", "k", items(1), got.callbacks(1));
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSERT_EQ(farm.lease(a, 1, 2000ms).size(), 1u) << attempt;
    std::this_thread::sleep_for(100ms);
    farm.expire();
  }
  ASSERT_EQ(got.count(0), 1u);
  EXPECT_EQ(got.by_item[0][0].error, MeasureError::kDeviceLost);
  EXPECT_NE(got.by_item[0][0].error_message.find("expired 2 times"), std::string::npos)
      << got.by_item[0][0].error_message;
  EXPECT_TRUE(farm.lease(a, 1, 0ms).empty());
}

TEST(DeviceFarmTest, ItemsGoOnlyToWorkersOfTheirDeviceKey) {
  DeviceFarm farm;
  const std::string a = farm.register_worker(registration("a", "key/A")).worker_id();
  const std::string b = farm.register_worker(registration("b", "key/B")).worker_id();
  Collected got;
  farm.submit("job-a", "key/A", items(2), got.callbacks(2));
  EXPECT_TRUE(farm.lease(b, 10, 50ms).empty());
  EXPECT_EQ(farm.lease(a, 10, 0ms).size(), 2u);
  EXPECT_EQ(farm.live_workers("key/A"), 1);
  EXPECT_EQ(farm.live_workers("key/C"), 0);
  ASSERT_TRUE(farm.device("key/B").has_value());
  EXPECT_EQ(farm.device("key/B")->target().device_key(), "key/B");
}

TEST(DeviceFarmTest, ConcurrentJobsShareTheWorkersRoundRobin) {
  DeviceFarm farm;
  const std::string w = farm.register_worker(registration("a", "k")).worker_id();
  Collected one, two;
  farm.submit("job-1", "k", items(4), one.callbacks(4));
  farm.submit("job-2", "k", items(4), two.callbacks(4));
  std::vector<std::string> order;
  for (int i = 0; i < 8; ++i) {
    std::vector<v1::MeasureItem> got = farm.lease(w, 1, 0ms);
    ASSERT_EQ(got.size(), 1u);
    order.push_back(got[0].job_id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{"job-1", "job-2", "job-1", "job-2", "job-1", "job-2", "job-1", "job-2"}));
}

TEST(DeviceFarmTest, ALongPollWakesWhenWorkArrives) {
  DeviceFarm farm;
  const std::string w = farm.register_worker(registration("a", "k")).worker_id();
  Collected got;
  std::thread later([&] {
    std::this_thread::sleep_for(100ms);
    farm.submit("job", "k", items(1), got.callbacks(1));
  });
  std::vector<v1::MeasureItem> leased = farm.lease(w, 1, 10000ms);
  later.join();
  EXPECT_EQ(leased.size(), 1u);
}

TEST(DeviceFarmTest, WithdrawnItemsAreNeitherLeasedNorDelivered) {
  DeviceFarm farm;
  const std::string w = farm.register_worker(registration("a", "k")).worker_id();
  Collected got;
  std::vector<std::string> ids = farm.submit("job", "k", items(2), got.callbacks(2));
  farm.withdraw({ids[0]});
  std::vector<v1::MeasureItem> leased = farm.lease(w, 10, 0ms);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].item_id(), ids[1]);
  EXPECT_EQ(farm.report(w, {ok_result(ids[0], 1e-3)}).accepted(), 0);
  EXPECT_EQ(got.count(0), 0u);
}

TEST(DeviceFarmTest, RefusesAnotherProtocolVersionAndAnUnknownWorker) {
  DeviceFarm farm;
  v1::RegisterRequest r = registration("a", "k");
  r.set_protocol_version(99);
  try {
    farm.register_worker(r);
    FAIL() << "accepted protocol 99";
  } catch (const FarmError& e) {
    EXPECT_EQ(e.code, FarmError::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("protocol 99"), std::string::npos) << e.what();
  }
  r = registration("a", "k");
  r.mutable_device()->mutable_target()->mutable_cpu()->set_threads(0);
  EXPECT_THROW(farm.register_worker(r), FarmError);
  try {
    farm.lease("w-unknown", 1, 0ms);
    FAIL() << "leased to an unknown worker";
  } catch (const FarmError& e) {
    EXPECT_EQ(e.code, FarmError::kNotFound);
    EXPECT_NE(std::string(e.what()).find("register again"), std::string::npos);
  }
}

TEST(WireTest, TargetAndResultsRoundTrip) {
  Target t;
  t.cpu.model = "amd-epyc";
  t.cpu.isa = "avx512";
  t.cpu.vector_lanes = 16;
  t.cpu.threads = 2;
  t.cpu.flags = {"-O3", "-mavx512f"};
  Target back = wire::from_proto(wire::to_proto(t));
  EXPECT_EQ(back.device_key(), "cpu/amd-epyc/avx512/2t");
  EXPECT_EQ(back.cpu.flags, t.cpu.flags);
  EXPECT_EQ(back.cpu.vector_lanes, 16);
  t.key = "lab/rack-3";
  EXPECT_EQ(wire::from_proto(wire::to_proto(t)).device_key(), "lab/rack-3");

  MeasureResult r;
  r.costs = {1e-3, 2e-3};
  r.worker = "w";
  EXPECT_EQ(wire::from_proto(wire::to_proto(r)).costs, r.costs);
  v1::MeasureResult bad;
  bad.set_error(1234);
  EXPECT_EQ(wire::from_proto(bad).error, MeasureError::kRuntimeError);
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// GPU workers: their device travels whole, and the farm keys them by it.
TEST(WireTest, CudaTargetsRoundTripAndRegisterUnderTheirDeviceKey) {
  Target gpu = cuda_target_for_arch("sm_90");
  gpu.cuda.ordinal = 3;
  gpu.cuda.shared_bytes_per_block = 49152;
  const Target back = wire::from_proto(wire::to_proto(gpu));
  EXPECT_EQ(back.kind, TargetKind::kCuda);
  EXPECT_EQ(back.device_key(), "cuda/nvidia-h100/sm_90");
  EXPECT_EQ(back.cuda.ordinal, 3);
  EXPECT_EQ(back.cuda.sm_count, 132);
  EXPECT_EQ(back.cuda.shared_bytes_per_block, 49152);
  v1::Target broken = wire::to_proto(gpu);
  broken.mutable_cuda()->set_max_threads_per_block(0);
  EXPECT_THROW(wire::from_proto(broken), Error);

  DeviceFarm farm;
  v1::RegisterRequest r;
  r.set_protocol_version(v1::PROTOCOL_VERSION);
  r.set_worker_name("gpu0");
  *r.mutable_device()->mutable_target() = wire::to_proto(gpu);
  const std::string id = farm.register_worker(r).worker_id();
  EXPECT_EQ(farm.live_workers("cuda/nvidia-h100/sm_90"), 1);
  std::vector<v1::MeasureItem> items(1);
  farm.submit("job", "cpu/x/avx2/1t", items, {[](const MeasureResult&) {}});
  EXPECT_TRUE(farm.lease(id, 1, std::chrono::milliseconds(0)).empty());  // a CPU job's item: not for the GPU
}

}  // namespace
}  // namespace ktune
