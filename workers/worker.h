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
  LocalMeasurerOptions measurer;
  double max_backoff_s = 5;
};

// Runs until stop is set. Returns 0, or 2 when the daemon refuses the
// worker for good (wrong token, incompatible protocol, bad description),
// after saying why on stderr.
int run_worker(const WorkerOptions& options, const std::atomic<bool>& stop);

}  // namespace ktune
