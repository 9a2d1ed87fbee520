#include "workers/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "proto/ktune.grpc.pb.h"
#include "measure/cuda_measurer.h"
#include "schedule_space/config_resolver.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "workers/convert.h"
#include "workers/simulated_device.h"

namespace ktune {

namespace {

constexpr double kRpcTimeoutS = 10;

bool fatal(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
         s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
         s.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
}

MeasureResult failed(MeasureError e, const std::string& message) {
  MeasureResult r;
  r.error = e;
  r.error_message = message;
  r.timestamp = static_cast<int64_t>(std::time(nullptr));
  return r;
}

// Measures leased items: rebuilds each candidate from its wire form with this
// build's templates, then measures runs of items with the same options
// together (built in parallel, timed one at a time). Simulated: the same
// rebuild, then one item after another, each after options.simulate_ms.
class ItemMeasurer {
 public:
  ItemMeasurer(const WorkerOptions& options, const std::string& name) : options_(options), name_(name) {
    if (options.noop || options.simulate) return;
    LocalMeasurerOptions m = options.measurer;
    m.worker_name = name;
    local_ = make_measurer(options.target, m);
  }

  std::vector<MeasureResult> measure(const std::vector<v1::MeasureItem>& items) {
    std::vector<MeasureResult> out(items.size());
    if (options_.noop) {
      for (MeasureResult& r : out) {
        r.costs = {1e-3};
        r.worker = name_;
        r.timestamp = static_cast<int64_t>(std::time(nullptr));
      }
      return out;
    }
    std::vector<std::optional<MeasureInput>> inputs(items.size());
    std::vector<std::shared_ptr<const ConfigSpace>> spaces(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      try {
        inputs[i] = input(items[i], spaces[i]);
      } catch (const Error& e) {
        out[i] = failed(MeasureError::kInvalidConfig, std::string("worker cannot build this item: ") + e.what());
      }
    }
    if (options_.simulate) {
      for (size_t i = 0; i < items.size(); ++i) {
        if (inputs[i]) out[i] = simulate_one(*inputs[i], *spaces[i], wire::from_proto(items[i].options()));
        out[i].worker = name_;
      }
      return out;
    }
    size_t i = 0;
    while (i < items.size()) {
      if (!inputs[i]) {
        ++i;
        continue;
      }
      // A run of items with the same options.
      const std::string key = items[i].options().SerializeAsString();
      std::vector<size_t> run;
      for (size_t j = i; j < items.size() && inputs[j] && items[j].options().SerializeAsString() == key; ++j) {
        run.push_back(j);
      }
      std::vector<MeasureInput> batch;
      for (size_t j : run) batch.push_back(*inputs[j]);
      std::vector<MeasureResult> results = local_->measure(batch, wire::from_proto(items[i].options()));
      for (size_t k = 0; k < run.size() && k < results.size(); ++k) out[run[k]] = std::move(results[k]);
      i = run.back() + 1;
    }
    for (MeasureResult& r : out) {
      if (r.worker.empty()) r.worker = name_;
    }
    return out;
  }

 private:
  // A valid candidate takes simulate_ms, like a measurement; one the
  // template rejects is answered at once, as a real worker answers it.
  MeasureResult simulate_one(const MeasureInput& in, const ConfigSpace& space, const MeasureOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    MeasureResult r = simulate(in, space, options);
    if (r.error != MeasureError::kNone) return r;
    std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<int64_t>(options_.simulate_ms * 1000)));
    r.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.timestamp = static_cast<int64_t>(std::time(nullptr));
    return r;
  }

  // The item's candidate, rebuilt as this build's template makes it; space:
  // the config space its config indexes.
  MeasureInput input(const v1::MeasureItem& item, std::shared_ptr<const ConfigSpace>& space) {
    Workload w = Workload::parse(item.workload_key());
    const Template& tmpl = resolve_template(item.template_name(), item.template_version(), w).get();
    Target t = wire::from_proto(item.target());
    const std::string cache_key = item.workload_key() + "|" + item.template_name() + "|" + item.target().SerializeAsString();
    auto it = spaces_.find(cache_key);
    if (it == spaces_.end()) {
      if (spaces_.size() > 64) spaces_.clear();
      it = spaces_.emplace(cache_key, std::make_shared<const ConfigSpace>(tmpl.space(w, t))).first;
    }
    space = it->second;
    return MeasureInput{w, t, &tmpl, config_at(*space, item.config_index())};
  }

  const WorkerOptions& options_;
  std::string name_;
  std::unique_ptr<Measurer> local_;  // LocalMeasurer, or CudaMeasurer for a GPU worker
  std::map<std::string, std::shared_ptr<const ConfigSpace>> spaces_;
};

class Worker {
 public:
  Worker(const WorkerOptions& options, const std::atomic<bool>& stop)
      : options_(options),
        stop_(stop),
        name_(options.name.empty() ? wire::host_name() + "-" + std::to_string(getpid()) : options.name),
        stub_(v1::Farm::NewStub(make_channel(options.daemon, options.tls))),
        measurer_(options, name_) {}

  int run() {
    double backoff = 0.1;
    bool said_unreachable = false;
    auto wait_backoff = [&] {
      sleep_unless_stopped(backoff);
      backoff = std::min(options_.max_backoff_s, backoff * 2);
    };
    while (!stop_) {
      if (worker_id_.empty()) {
        grpc::Status s = register_once();
        if (!s.ok()) {
          if (fatal(s)) {
            spdlog::error("the daemon refused this worker: {}", status_text(s));
            return 2;
          }
          if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            spdlog::warn("daemon {} cannot take this worker now ({}); retrying", options_.daemon, status_text(s));
          } else if (!said_unreachable) {
            spdlog::warn("daemon {} unreachable ({}); retrying", options_.daemon, status_text(s));
          } else {
            spdlog::debug("daemon {} still unreachable ({}); retrying in {} s", options_.daemon, status_text(s), backoff);
          }
          said_unreachable = true;
          wait_backoff();
          continue;
        }
        spdlog::info("{} registered with {} as {} for {} (heartbeat every {} s)", name_, options_.daemon, worker_id_,
                     options_.target.device_key(), heartbeat_s_);
        said_unreachable = false;
        backoff = 0.1;
      }
      std::vector<v1::MeasureItem> items;
      grpc::Status s = lease(items);
      if (!s.ok()) {
        if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
          spdlog::info("the daemon no longer knows this worker (restarted?); registering again");
          worker_id_.clear();
          continue;
        }
        if (fatal(s)) {
          spdlog::error("the daemon refused this worker: {}", status_text(s));
          return 2;
        }
        if (!said_unreachable) {
          spdlog::warn("lost the daemon {} ({}); retrying", options_.daemon, status_text(s));
        } else {
          spdlog::debug("daemon {} still unreachable ({}); retrying in {} s", options_.daemon, status_text(s), backoff);
        }
        said_unreachable = true;
        wait_backoff();
        continue;
      }
      if (said_unreachable) spdlog::info("daemon {} reachable again", options_.daemon);
      said_unreachable = false;
      backoff = 0.1;
      if (items.empty()) continue;
      spdlog::debug("leased {} items", items.size());
      measure_and_report(items);
    }
    return 0;
  }

 private:
  void sleep_unless_stopped(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  grpc::Status register_once() {
    v1::RegisterRequest req;
    req.set_protocol_version(v1::PROTOCOL_VERSION);
    req.set_worker_name(name_);
    req.set_parallel(options_.parallel);
    *req.mutable_device() = wire::device_info(options_.target);
    v1::RegisterReply reply;
    grpc::ClientContext ctx;
    prepare_context(ctx, options_.token, kRpcTimeoutS);
    grpc::Status s = stub_->Register(&ctx, req, &reply);
    if (s.ok()) {
      worker_id_ = reply.worker_id();
      heartbeat_s_ = reply.heartbeat_s() > 0 ? reply.heartbeat_s() : 2;
    }
    return s;
  }

  grpc::Status lease(std::vector<v1::MeasureItem>& items) {
    v1::LeaseRequest req;
    req.set_worker_id(worker_id_);
    req.set_max_items(std::max(1, options_.parallel));
    req.set_wait_ms(1000);
    v1::LeaseReply reply;
    grpc::ClientContext ctx;
    prepare_context(ctx, options_.token, kRpcTimeoutS);
    grpc::Status s = stub_->Lease(&ctx, req, &reply);
    if (s.ok()) items.assign(reply.items().begin(), reply.items().end());
    return s;
  }

  void measure_and_report(const std::vector<v1::MeasureItem>& items) {
    std::set<std::string> abandoned;  // the daemon no longer wants them
    std::mutex mu;
    std::condition_variable cv;
    bool busy = !options_.noop;
    std::thread heartbeat;
    if (busy) {
      heartbeat = std::thread([&] {
        std::unique_lock lock(mu);
        while (busy) {
          cv.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(heartbeat_s_ * 1000)));
          if (!busy) break;
          lock.unlock();
          v1::HeartbeatRequest req;
          req.set_worker_id(worker_id_);
          for (const auto& item : items) req.add_item_ids(item.item_id());
          v1::HeartbeatReply reply;
          grpc::ClientContext ctx;
          prepare_context(ctx, options_.token, kRpcTimeoutS);
          grpc::Status s = stub_->Heartbeat(&ctx, req, &reply);
          lock.lock();
          if (s.ok()) abandoned.insert(reply.cancelled_item_ids().begin(), reply.cancelled_item_ids().end());
        }
      });
    }
    std::vector<MeasureResult> results = measurer_.measure(items);
    {
      std::lock_guard lock(mu);
      busy = false;
    }
    cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();

    v1::ReportRequest req;
    req.set_worker_id(worker_id_);
    for (size_t i = 0; i < items.size(); ++i) {
      if (abandoned.count(items[i].item_id())) continue;
      v1::ItemResult* r = req.add_results();
      r->set_item_id(items[i].item_id());
      *r->mutable_result() = wire::to_proto(results[i]);
    }
    if (req.results_size() == 0) return;
    // Report, retrying while the daemon is away (a restarted one will not
    // know the items, and says so).
    double backoff = 0.1;
    for (int attempt = 0; attempt < 30; ++attempt) {
      v1::ReportReply reply;
      grpc::ClientContext ctx;
      prepare_context(ctx, options_.token, kRpcTimeoutS);
      grpc::Status s = stub_->Report(&ctx, req, &reply);
      if (s.ok()) {
        spdlog::debug("reported {} results ({} accepted)", req.results_size(), reply.accepted());
        if (reply.unknown() > 0) spdlog::info("{} results were no longer wanted", reply.unknown());
        return;
      }
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {  // restarted daemon: unknown worker
        spdlog::info("the daemon no longer knows this worker; dropping {} results and registering again",
                     req.results_size());
        worker_id_.clear();
        return;
      }
      if (fatal(s)) {
        spdlog::error("report refused: {}", status_text(s));
        return;
      }
      if (stop_ && attempt >= 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(backoff * 1000)));
      backoff = std::min(options_.max_backoff_s, backoff * 2);
    }
    spdlog::warn("could not report {} results; dropped", req.results_size());
  }

  const WorkerOptions& options_;
  const std::atomic<bool>& stop_;
  std::string name_;
  std::unique_ptr<v1::Farm::Stub> stub_;
  ItemMeasurer measurer_;
  std::string worker_id_;
  double heartbeat_s_ = 2;
};

}  // namespace

int run_worker(const WorkerOptions& options, const std::atomic<bool>& stop) {
  if (options.daemon.empty()) throw Error("worker: --daemon HOST:PORT is required");
  if (options.parallel < 1) throw Error("worker: --parallel must be >= 1");
  Worker w(options, stop);
  return w.run();
}

}  // namespace ktune
