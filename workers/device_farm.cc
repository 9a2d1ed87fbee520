#include "workers/device_farm.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <random>

#include "workers/convert.h"

namespace ktune {

namespace {

constexpr size_t kRememberDone = 100000;  // completed ids kept to recognize duplicate reports

std::string random_hex(int digits) {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < digits; ++i) s += hex[rng() % 16];
  return s;
}

}  // namespace

DeviceFarm::DeviceFarm(FarmOptions options) : options_(options), instance_(random_hex(8)) {
  if (!(options_.lease_timeout_s > 0) || !(options_.heartbeat_s > 0) || options_.max_attempts < 1) {
    throw Error("device farm: lease timeout and heartbeat must be > 0 s and max attempts >= 1");
  }
  if (options_.worker_lost_s <= 0) options_.worker_lost_s = 2 * options_.lease_timeout_s;
  reaper_ = std::thread([this] {
    const auto period = std::chrono::duration<double>(std::min(0.25, options_.lease_timeout_s / 4));
    std::unique_lock lock(mu_);
    while (!shutdown_) {
      reaper_cv_.wait_for(lock, period);
      if (shutdown_) break;
      lock.unlock();
      expire();
      lock.lock();
    }
  });
}

DeviceFarm::~DeviceFarm() {
  shutdown();
  if (reaper_.joinable()) reaper_.join();
}

void DeviceFarm::shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  work_.notify_all();
  room_.notify_all();
  reaper_cv_.notify_all();
}

v1::RegisterReply DeviceFarm::register_worker(const v1::RegisterRequest& request) {
  if (request.protocol_version() != v1::PROTOCOL_VERSION) {
    throw FarmError(FarmError::kFailedPrecondition,
                    "worker speaks farm protocol " + std::to_string(request.protocol_version()) +
                        ", this daemon speaks " + std::to_string(v1::PROTOCOL_VERSION) +
                        ": run the same ktune version on the daemon and its workers");
  }
  Target target;
  try {
    target = wire::from_proto(request.device().target());
  } catch (const Error& e) {
    throw FarmError(FarmError::kInvalidArgument, std::string("worker's device description: ") + e.what());
  }
  if (request.parallel() > kMaxWorkerParallel) {
    throw FarmError(FarmError::kInvalidArgument, "worker asks to lease " + std::to_string(request.parallel()) +
                                                     " items at a time; at most " +
                                                     std::to_string(kMaxWorkerParallel));
  }
  const std::string key = target.device_key();
  std::unique_lock lock(mu_);
  make_room_for_worker_locked();
  Worker w;
  w.status.set_worker_id("w-" + instance_ + "-" + std::to_string(++next_worker_));
  w.status.set_worker_name(request.worker_name());
  w.status.set_device_key(key);
  w.status.set_host(request.device().host());
  w.device = request.device();
  w.device.mutable_target()->set_device_key(key);
  w.last_seen = Clock::now();
  w.parallel = std::max(1, request.parallel());
  devices_[key] = w.device;
  v1::RegisterReply reply;
  reply.set_worker_id(w.status.worker_id());
  reply.set_lease_timeout_s(options_.lease_timeout_s);
  reply.set_heartbeat_s(options_.heartbeat_s);
  reply.set_protocol_version(v1::PROTOCOL_VERSION);
  workers_.emplace(w.status.worker_id(), std::move(w));
  lock.unlock();
  spdlog::info("worker {} ({}) registered for {} from host {}, {} items at a time", request.worker_name(),
               reply.worker_id(), key, request.device().host(), request.parallel());
  return reply;
}

void DeviceFarm::make_room_for_worker_locked() {
  if (static_cast<int>(workers_.size()) < options_.max_workers) return;
  const auto now = Clock::now();
  auto oldest = workers_.end();
  for (auto it = workers_.begin(); it != workers_.end(); ++it) {
    const Worker& w = it->second;
    if (!lost(w, now) || !w.in_flight.empty() || w.leasing > 0) continue;
    if (oldest == workers_.end() || w.last_seen < oldest->second.last_seen) oldest = it;
  }
  if (oldest == workers_.end()) {
    throw FarmError(FarmError::kResourceExhausted,
                    "the daemon already has " + std::to_string(workers_.size()) +
                        " workers registered, none of them lost (its --max-workers limit): restart it with a "
                        "larger --max-workers");
  }
  spdlog::info("forgetting lost worker {} ({}) to make room for a new one (--max-workers {})",
               oldest->second.status.worker_name(), oldest->first, options_.max_workers);
  workers_.erase(oldest);
}

DeviceFarm::Worker& DeviceFarm::worker_locked(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    throw FarmError(FarmError::kNotFound, "unknown worker id '" + worker_id + "': register again");
  }
  it->second.last_seen = Clock::now();
  if (it->second.said_lost) {
    it->second.said_lost = false;
    spdlog::info("worker {} ({}) is back", it->second.status.worker_name(), worker_id);
  }
  return it->second;
}

std::optional<std::string> DeviceFarm::pop_locked(const std::string& device_key) {
  auto q = queues_.find(device_key);
  if (q == queues_.end()) return std::nullopt;
  auto& by_job = q->second.by_job;
  while (!by_job.empty()) {
    // The next job after the one served last, wrapping around.
    auto job = by_job.upper_bound(q->second.last_job);
    if (job == by_job.end()) job = by_job.begin();
    q->second.last_job = job->first;
    std::deque<std::string>& ids = job->second;
    while (!ids.empty()) {
      std::string id = std::move(ids.front());
      ids.pop_front();
      auto it = items_.find(id);
      if (it != items_.end() && it->second.worker.empty()) {
        if (ids.empty()) by_job.erase(job);
        return id;
      }
    }
    by_job.erase(job);
  }
  return std::nullopt;
}

std::vector<v1::MeasureItem> DeviceFarm::lease(const std::string& worker_id, int max_items,
                                               std::chrono::milliseconds wait) {
  std::vector<v1::MeasureItem> out;
  const auto until = Clock::now() + std::min(wait, std::chrono::milliseconds(30000));
  std::unique_lock lock(mu_);
  // A worker is only forgotten while no lease() of it waits: the reference
  // stays valid.
  Worker& w = worker_locked(worker_id);
  ++w.leasing;
  const std::string key = w.status.device_key();
  max_items = std::max(1, max_items);
  auto take = [&] {
    while (static_cast<int>(out.size()) < max_items && !shutdown_) {
      std::optional<std::string> id = pop_locked(key);
      if (!id) break;
      Item& item = items_.at(*id);
      item.worker = worker_id;
      item.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(options_.lease_timeout_s));
      ++item.attempts;
      ++stats_.leased;
      w.in_flight.insert(*id);
      out.push_back(item.msg);
    }
  };
  take();
  while (out.empty() && !shutdown_ && work_.wait_until(lock, until) == std::cv_status::no_timeout) take();
  take();  // work may have come with the timeout
  w.last_seen = Clock::now();
  --w.leasing;
  const std::string name = w.status.worker_name();
  lock.unlock();
  if (!out.empty()) spdlog::debug("worker {} leased {} items", name, out.size());
  return out;
}

std::vector<std::string> DeviceFarm::heartbeat(const std::string& worker_id, const std::vector<std::string>& item_ids) {
  std::lock_guard lock(mu_);
  Worker& w = worker_locked(worker_id);
  std::vector<std::string> cancelled;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options_.lease_timeout_s));
  for (const std::string& id : item_ids) {
    auto it = items_.find(id);
    if (it == items_.end() || it->second.worker != worker_id) {
      cancelled.push_back(id);
      w.in_flight.erase(id);
      continue;
    }
    it->second.deadline = deadline;
  }
  return cancelled;
}

void DeviceFarm::remember_done_locked(const std::string& item_id) {
  done_.insert(item_id);
  done_order_.push_back(item_id);
  if (done_order_.size() > kRememberDone) {
    done_.erase(done_order_.front());
    done_order_.pop_front();
  }
}

void DeviceFarm::complete_locked(std::unordered_map<std::string, Item>::iterator it, MeasureResult result,
                                 Delivery& deliver) {
  Item& item = it->second;
  if (!item.worker.empty()) {
    auto w = workers_.find(item.worker);
    if (w != workers_.end()) w->second.in_flight.erase(it->first);
  }
  ++stats_.completed;
  remember_done_locked(it->first);
  deliver.emplace_back(std::move(item.on_result), std::move(result));
  items_.erase(it);
  room_.notify_all();
}

void DeviceFarm::deliver(Delivery& d) {
  for (auto& [callback, result] : d) {
    if (callback) callback(result);
  }
  d.clear();
}

v1::ReportReply DeviceFarm::report(const std::string& worker_id, const std::vector<v1::ItemResult>& results) {
  v1::ReportReply reply;
  Delivery d;
  std::string name;
  {
    std::lock_guard lock(mu_);
    Worker& w = worker_locked(worker_id);
    for (const v1::ItemResult& r : results) {
      w.in_flight.erase(r.item_id());
      auto it = items_.find(r.item_id());
      if (it == items_.end()) {
        if (done_.count(r.item_id())) {
          reply.set_duplicates(reply.duplicates() + 1);
          ++stats_.duplicates;
        } else {
          reply.set_unknown(reply.unknown() + 1);
          ++stats_.unknown;
        }
        continue;
      }
      MeasureResult result = wire::from_proto(r.result());
      if (result.worker.empty()) result.worker = w.status.worker_name();
      w.status.set_items_done(w.status.items_done() + 1);
      complete_locked(it, std::move(result), d);
      reply.set_accepted(reply.accepted() + 1);
    }
    name = w.status.worker_name();
  }
  spdlog::debug("worker {} reported {} results: {} accepted, {} duplicates, {} unknown", name, results.size(),
                reply.accepted(), reply.duplicates(), reply.unknown());
  deliver(d);
  return reply;
}

std::vector<std::string> DeviceFarm::submit(const std::string& job, const std::string& device_key,
                                            std::vector<v1::MeasureItem> items, std::vector<OnResult> on_result,
                                            const std::function<bool()>& stop) {
  if (on_result.size() != items.size()) throw Error("device farm: one result callback per item");
  std::vector<std::string> ids;
  {
    std::unique_lock lock(mu_);
    // Memory stays bounded: past max_items a job waits (its batch may go
    // over by itself, at most a batch).
    bool said = false;
    while (static_cast<int64_t>(items_.size()) >= options_.max_items && !shutdown_) {
      if (stop && stop()) return ids;
      if (!said) {
        said = true;
        spdlog::info("job {} waits: the farm holds {} measurement items (--max-queued-items {})", job, items_.size(),
                     options_.max_items);
      }
      room_.wait_for(lock, std::chrono::milliseconds(100));
    }
    std::deque<std::string>& q = queues_[device_key].by_job[job];
    for (size_t i = 0; i < items.size(); ++i) {
      std::string id = "i-" + instance_ + "-" + std::to_string(++next_item_);
      items[i].set_item_id(id);
      items[i].set_job_id(job);
      Item item;
      item.msg = std::move(items[i]);
      item.job = job;
      item.device_key = device_key;
      item.on_result = std::move(on_result[i]);
      items_.emplace(id, std::move(item));
      q.push_back(id);
      ids.push_back(std::move(id));
      ++stats_.submitted;
    }
  }
  spdlog::debug("job {} queued {} items for {}", job, ids.size(), device_key);
  work_.notify_all();
  return ids;
}

void DeviceFarm::withdraw(const std::vector<std::string>& item_ids) {
  std::lock_guard lock(mu_);
  for (const std::string& id : item_ids) {
    auto it = items_.find(id);
    if (it == items_.end()) continue;
    if (!it->second.worker.empty()) {
      auto w = workers_.find(it->second.worker);
      if (w != workers_.end()) w->second.in_flight.erase(id);
    }
    remember_done_locked(id);  // a late report of it is a duplicate, not a mystery
    items_.erase(it);          // its queue entry is pruned when reached
  }
  room_.notify_all();
}

bool DeviceFarm::queue_full() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(items_.size()) >= options_.max_items;
}

int64_t DeviceFarm::items() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(items_.size());
}

void DeviceFarm::expire() {
  Delivery d;
  bool requeued = false;
  // What to log, written outside the lock.
  std::vector<std::string> lost_workers, lost_items;
  std::map<std::string, int> requeued_by_worker;  // worker name -> expired leases requeued
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    for (auto& [id, w] : workers_) {
      if (w.said_lost || !lost(w, now)) continue;
      w.said_lost = true;
      lost_workers.push_back("worker " + w.status.worker_name() + " (" + id + ") lost: no heartbeat for " +
                             std::to_string(static_cast<int>(std::chrono::duration<double>(now - w.last_seen).count())) +
                             " s, " + std::to_string(w.in_flight.size()) + " items in flight");
    }
    std::vector<std::string> expired;
    for (auto& [id, item] : items_) {
      if (!item.worker.empty() && item.deadline < now) expired.push_back(id);
    }
    for (const std::string& id : expired) {
      auto it = items_.find(id);
      Item& item = it->second;
      const std::string holder = item.worker;
      auto w = workers_.find(holder);
      const std::string holder_name = w != workers_.end() ? w->second.status.worker_name() : holder;
      if (w != workers_.end()) w->second.in_flight.erase(id);
      if (item.attempts >= options_.max_attempts) {
        MeasureResult lost;
        lost.error = MeasureError::kDeviceLost;
        lost.error_message = "lease expired " + std::to_string(item.attempts) + " times (last on worker " +
                             holder_name + "): no worker finished it";
        lost.worker = holder_name;
        lost.timestamp = static_cast<int64_t>(std::time(nullptr));
        lost_items.push_back("item " + id + " of job " + item.job + " recorded as device_lost: " + lost.error_message);
        ++stats_.lost;
        complete_locked(it, std::move(lost), d);
        continue;
      }
      item.worker.clear();
      queues_[item.device_key].by_job[item.job].push_front(id);
      ++stats_.requeued;
      ++requeued_by_worker[holder_name];
      requeued = true;
    }
  }
  for (const std::string& line : lost_workers) spdlog::warn("{}", line);
  for (const auto& [name, n] : requeued_by_worker) {
    spdlog::warn("{} expired lease{} of worker {} (no heartbeat for {} s): requeued", n, n == 1 ? "" : "s", name,
                 options_.lease_timeout_s);
  }
  for (const std::string& line : lost_items) spdlog::error("{}", line);
  if (requeued) work_.notify_all();
  deliver(d);
}

bool DeviceFarm::lost(const Worker& w, Clock::time_point now) const {
  return std::chrono::duration<double>(now - w.last_seen).count() > options_.worker_lost_s;
}

std::optional<v1::DeviceInfo> DeviceFarm::device(const std::string& device_key) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(device_key);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

int DeviceFarm::live_workers(const std::string& device_key) const {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  int n = 0;
  for (const auto& [id, w] : workers_) n += w.status.device_key() == device_key && !lost(w, now);
  return n;
}

int DeviceFarm::slots(const std::string& device_key) const {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  int n = 0;
  for (const auto& [id, w] : workers_) {
    if (w.status.device_key() == device_key && !lost(w, now)) n += w.parallel;
  }
  return n;
}

std::vector<v1::WorkerStatus> DeviceFarm::workers() const {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  std::vector<v1::WorkerStatus> out;
  for (const auto& [id, w] : workers_) {
    v1::WorkerStatus s = w.status;
    s.set_in_flight(static_cast<int32_t>(w.in_flight.size()));
    s.set_last_heartbeat_s_ago(std::chrono::duration<double>(now - w.last_seen).count());
    s.set_state(lost(w, now) ? "lost" : w.in_flight.empty() ? "idle" : "busy");
    out.push_back(std::move(s));
  }
  return out;
}

FarmStats DeviceFarm::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace ktune
