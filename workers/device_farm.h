// DeviceFarm: the daemon's side of the device farm.
//
// Measurement items wait in one queue per device key (within it, one queue
// per job, served round robin so concurrent jobs share the workers fairly).
// A registered worker leases items of its device key with a deadline;
// heartbeats extend it; an item whose lease expires goes back to the front
// of its queue, and after max_attempts leases it completes as a device_lost
// error. The first report of an item completes it; a late or duplicated
// report is counted and dropped, so every item has exactly one result.
// Thread-safe; result callbacks run outside the farm's lock. Logs workers
// registered, lost and back, expired leases and device_lost items through
// spdlog (logging/log.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "measure/measure.h"
#include "proto/ktune.pb.h"
#include "schedule_space/error.h"

namespace ktune {

// A refused farm or daemon request; the gRPC layer maps code to a status.
class FarmError : public Error {
 public:
  enum Code { kInvalidArgument, kNotFound, kFailedPrecondition, kUnavailable, kResourceExhausted };
  FarmError(Code code, const std::string& what) : Error(what), code(code) {}
  Code code;
};

struct FarmOptions {
  double lease_timeout_s = 10;  // an item not heartbeaten for this long is requeued
  double heartbeat_s = 2;       // what workers are told to use (< lease_timeout_s)
  int max_attempts = 3;         // leases of one item before it is recorded as device_lost
  // A worker not heard from for this long is "lost" (listed, not counted
  // as live); 0: 2 x lease_timeout_s.
  double worker_lost_s = 0;
  // Registered workers kept at most: at the limit, the longest-lost idle
  // worker is forgotten to make room (it registers again if it comes back);
  // with none lost, registering is refused (kResourceExhausted).
  int max_workers = 256;
  // Measurement items held at most (queued or leased, over all jobs): a
  // job's submit waits for room; queue_full() tells the daemon to refuse
  // new jobs meanwhile.
  int max_items = 20000;
};

// Items one worker may lease at a time (RegisterRequest.parallel).
inline constexpr int kMaxWorkerParallel = 256;

struct FarmStats {
  int64_t submitted = 0;
  int64_t leased = 0;     // leases handed out (an item leased twice counts twice)
  int64_t completed = 0;  // items with their one result
  int64_t duplicates = 0; // reports of items already completed
  int64_t unknown = 0;    // reports of items never submitted or withdrawn
  int64_t requeued = 0;   // expired leases put back in the queue
  int64_t lost = 0;       // items completed as device_lost
};

class DeviceFarm {
 public:
  using OnResult = std::function<void(const MeasureResult&)>;

  explicit DeviceFarm(FarmOptions options = {});
  ~DeviceFarm();  // shutdown()
  DeviceFarm(const DeviceFarm&) = delete;
  DeviceFarm& operator=(const DeviceFarm&) = delete;

  // --- the worker side (the Farm service) ---
  // Throws FarmError: kFailedPrecondition for another protocol version,
  // kInvalidArgument for a device description that does not parse.
  v1::RegisterReply register_worker(const v1::RegisterRequest& request);
  // Up to max_items items of the worker's device key, waiting up to wait for
  // the first. Throws FarmError(kNotFound) for an unknown worker id (a
  // restarted daemon: register again).
  std::vector<v1::MeasureItem> lease(const std::string& worker_id, int max_items, std::chrono::milliseconds wait);
  // Extends the leases of the worker's items; returns the ids it should
  // abandon (completed, withdrawn or leased to another worker).
  std::vector<std::string> heartbeat(const std::string& worker_id, const std::vector<std::string>& item_ids);
  v1::ReportReply report(const std::string& worker_id, const std::vector<v1::ItemResult>& results);

  // --- the job side (FarmMeasurer) ---
  // Queues items (their item_id is set here) for device_key; on_result[i]
  // is called exactly once with item i's result, unless it is withdrawn.
  // While the farm holds max_items items or more, waits for room first;
  // if stop() turns true meanwhile, queues nothing and returns no ids
  // (after shutdown(), it does not wait).
  std::vector<std::string> submit(const std::string& job, const std::string& device_key,
                                  std::vector<v1::MeasureItem> items, std::vector<OnResult> on_result,
                                  const std::function<bool()>& stop = {});
  // Whether the farm holds max_items items or more (submit would wait).
  bool queue_full() const;
  // Items submitted and not completed (queued or leased).
  int64_t items() const;
  // Forgets items not completed yet: no result will be delivered for them.
  void withdraw(const std::vector<std::string>& item_ids);

  // The newest description a live or past worker gave of device_key.
  std::optional<v1::DeviceInfo> device(const std::string& device_key) const;
  int live_workers(const std::string& device_key) const;
  // Items the live workers of device_key lease at a time, all together.
  int slots(const std::string& device_key) const;
  std::vector<v1::WorkerStatus> workers() const;
  FarmStats stats() const;
  const FarmOptions& options() const { return options_; }

  // Requeues or fails expired leases now (a background thread also does,
  // several times per lease timeout).
  void expire();
  // Wakes every waiting lease (they return nothing) and stops the reaper.
  void shutdown();

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    v1::MeasureItem msg;
    std::string job;
    std::string device_key;
    OnResult on_result;
    int attempts = 0;          // leases so far
    std::string worker;        // holder while leased; empty while queued
    Clock::time_point deadline;
  };
  struct Worker {
    v1::WorkerStatus status;   // worker_id, name, device key, host, items_done
    v1::DeviceInfo device;
    Clock::time_point last_seen;
    std::set<std::string> in_flight;
    bool said_lost = false;    // logged as lost, not heard from since
    int parallel = 1;          // items it leases at a time
    int leasing = 0;           // lease() calls waiting: it is not forgotten meanwhile
  };
  struct Queue {
    std::map<std::string, std::deque<std::string>> by_job;  // item ids, lazily pruned
    std::string last_job;      // round robin: served last
  };
  using Delivery = std::vector<std::pair<OnResult, MeasureResult>>;

  Worker& worker_locked(const std::string& worker_id);  // throws kNotFound
  std::optional<std::string> pop_locked(const std::string& device_key);
  void complete_locked(std::unordered_map<std::string, Item>::iterator it, MeasureResult result,
                       Delivery& deliver);
  void remember_done_locked(const std::string& item_id);
  static void deliver(Delivery& d);
  bool lost(const Worker& w, Clock::time_point now) const;
  // Makes room for one more worker under max_workers (forgets the
  // longest-lost idle one); throws kResourceExhausted if none can go.
  void make_room_for_worker_locked();

  FarmOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_;  // items queued, or shutdown
  std::condition_variable room_;  // items completed or withdrawn, or shutdown
  std::condition_variable reaper_cv_;
  bool shutdown_ = false;
  std::unordered_map<std::string, Item> items_;  // submitted, not completed
  std::map<std::string, Queue> queues_;          // by device key
  std::map<std::string, Worker> workers_;        // by worker id
  std::map<std::string, v1::DeviceInfo> devices_;
  std::set<std::string> done_;                   // recently completed ids (duplicate reports)
  std::deque<std::string> done_order_;
  FarmStats stats_;
  uint64_t next_item_ = 0;
  uint64_t next_worker_ = 0;
  std::string instance_;  // distinguishes ids across daemon restarts
  std::thread reaper_;
};

}  // namespace ktune
