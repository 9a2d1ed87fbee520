// `ktune worker`: one device's worker in the farm.
//
// Registers with the daemon (describing its device), then loops: lease a
// batch of items, build and time them with a LocalMeasurer (heartbeating
// while busy), report the results. When the daemon goes away it retries
// with backoff, and registers again when a restarted daemon no longer knows
// it. On stop it finishes the batch in hand, reports it, and returns.
#pragma once

#include <atomic>
#include <string>

#include "measure/local_measurer.h"
#include "schedule_space/target.h"
#include "workers/client.h"

namespace ktune {

struct WorkerOptions {
  std::string daemon;   // HOST:PORT
  std::string token;
  ClientTls tls;
  std::string name;     // empty: host name and pid
  Target target;        // the device, CPU or CUDA (its key may be set by --key)
  int parallel = 1;     // items leased (and built in parallel) at a time
  // Answer every item at once with a fixed 1 ms result, measuring nothing:
  // the farm benchmark's way to time the daemon alone.
  bool noop = false;
  // Measure nothing, but answer like a device would: each item's candidate
  // is rebuilt and checked as for a real measurement, then, after sleeping
  // simulate_ms (items one after another), gets the deterministic cost of
  // workers/simulated_device.h. For scaling benchmarks of the farm and the
  // search without the hardware.
  bool simulate = false;
  double simulate_ms = 300;
  LocalMeasurerOptions measurer;
  double max_backoff_s = 5;
};

// Runs until stop is set. Returns 0, or 2 when the daemon refuses the
// worker for good (wrong token, incompatible protocol, bad description),
// after logging why. Logs its events (registered, daemon unreachable,
// registering again) through spdlog (logging/log.h).
int run_worker(const WorkerOptions& options, const std::atomic<bool>& stop);

}  // namespace ktune
