// The daemon's own overhead (issue 5): items per second through the device
// farm and the latency of one item, with workers that measure nothing.
//
//   ktune-farm-bench [--workers "1 2 4 8"] [--items N] [--jobs J] [--batch B] [--parallel P]
//
// In this process: the daemon's DeviceFarm and gRPC server on a loopback
// port (the same code as `ktune daemon`). Out of it: N real `ktune worker
// --noop` processes, which lease, "measure" (a fixed 1 ms result, at once)
// and report over gRPC. J submitter threads (as J concurrent jobs) push
// batches of B items through the farm with FarmMeasurer, as the tuning loop
// does, storing every result in the SQLite file at once as the tuning loop
// does, and wait for each batch. Latency is per item, from its submission to
// its result reaching the submitter: lease, report and delivery included;
// under load (the batch's queueing included) and one item at a time (the
// dispatch latency of an idle farm).
// Prints a markdown table.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "db/database.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "service/jobs.h"
#include "service/server.h"
#include "tuner/tuner.h"
#include "workers/farm_measurer.h"

using namespace ktune;
using Clock = std::chrono::steady_clock;

namespace {

std::string ktune_path() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  return self.substr(0, self.rfind('/') + 1) + "ktune";
}

pid_t spawn_worker(const std::string& ktune, const std::string& address, int i, int parallel) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::string name = "noop-" + std::to_string(i), par = std::to_string(parallel);
    std::vector<std::string> args = {ktune, "worker", "--daemon", address, "--noop", "--key", "bench/noop",
                                     "--name", name, "--parallel", par};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(ktune.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> worker_counts = {1, 2, 4, 8};
  int items = 20000, jobs = 4, batch = 16, parallel = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--workers") {
      worker_counts.clear();
      std::istringstream in(value);
      for (int n; in >> n;) worker_counts.push_back(n);
    } else if (flag == "--items") {
      items = std::stoi(value);
    } else if (flag == "--jobs") {
      jobs = std::stoi(value);
    } else if (flag == "--batch") {
      batch = std::stoi(value);
    } else if (flag == "--parallel") {
      parallel = std::stoi(value);
    } else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  char dir_template[] = "/tmp/ktune-farm-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  auto db = Database::open(dir + "/farm.db");
  FarmOptions farm_options;
  farm_options.lease_timeout_s = 10;
  DeviceFarm farm(farm_options);
  JobManager manager(*db, farm);
  ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  DaemonServer server(*db, farm, manager, server_options);
  const std::string address = "127.0.0.1:" + std::to_string(server.port());

  // The items: one small workload's configs (the workers never build them).
  Target target;
  target.key = "bench/noop";
  const Workload w = Workload::parse("matmul(m=64,n=64,k=64)");
  const Task task = Task::make(w, target, *templates_for(w, TargetKind::kCpu).front());

  std::cout << "| workers | items | items/s | batch wait p50 / p99 ms | dispatch p50 / p99 / max ms |\n"
               "| --- | --- | --- | --- | --- |\n";
  const std::string ktune = ktune_path();
  for (int n : worker_counts) {
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) pids.push_back(spawn_worker(ktune, address, i, parallel));
    while (farm.live_workers("bench/noop") < n) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // Runs `total` items through the farm from `submitters` threads in
    // batches of `size`; returns the seconds it took and every item's latency.
    auto run = [&](int total, int submitters, int size, std::vector<double>& all) {
      std::atomic<int> next{0};
      std::vector<std::vector<double>> latencies(static_cast<size_t>(submitters));
      const auto start = Clock::now();
      std::vector<std::thread> threads;
      for (int j = 0; j < submitters; ++j) {
        threads.emplace_back([&, j] {
          FarmMeasurer m(farm, "bench-job-" + std::to_string(j), "bench/noop");
          while (true) {
            const int first = next.fetch_add(size);
            if (first >= total) break;
            std::vector<MeasureInput> inputs;
            for (int k = first; k < std::min(total, first + size); ++k) {
              inputs.push_back(
                  MeasureInput{w, target, task.tmpl, task.space->get(static_cast<uint64_t>(k) % task.space->size())});
            }
            const auto t0 = Clock::now();
            m.measure_each(inputs, MeasureOptions{}, [&](size_t i, const MeasureResult& result) {
              // Stored at once, one transaction per record, as the tuning loop does.
              std::vector<Record> one(1);
              one[0].workload_key = w.key();
              one[0].device_key = "bench/noop";
              one[0].template_name = task.tmpl->name();
              one[0].template_version = task.tmpl->version();
              one[0].config_index = inputs[i].config.index;
              one[0].result = result;
              one[0].flops = w.flops();
              one[0].job = "bench";
              db->insert(one);
              latencies[static_cast<size_t>(j)].push_back(
                  std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            });
          }
        });
      }
      for (auto& t : threads) t.join();
      for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    std::vector<double> loaded, single;
    const double seconds = run(items, jobs, batch, loaded);
    run(std::min(items, 2000), 1, 1, single);
    char line[256];
    std::snprintf(line, sizeof line, "| %d | %zu | %.0f | %.2f / %.2f | %.2f / %.2f / %.2f |\n", n, loaded.size(),
                  static_cast<double>(loaded.size()) / seconds, percentile(loaded, 0.5), percentile(loaded, 0.99),
                  percentile(single, 0.5), percentile(single, 0.99), percentile(single, 1.0));
    std::cout << line << std::flush;
    for (pid_t p : pids) kill(p, SIGKILL);
    for (pid_t p : pids) waitpid(p, nullptr, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // Their registrations stay (as lost workers); the next round waits for its own.
    while (farm.live_workers("bench/noop") > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "\nitems/s and batch wait: " << jobs << " concurrent submitters (jobs), batches of " << batch
            << "; an item's wait runs from its batch's submission to its result. Dispatch: one item at a time, "
               "from submission to result (lease, measure nothing, report, deliver). Workers lease "
            << parallel << " item(s) at a time.\n";
  manager.shutdown();
  farm.shutdown();
  server.shutdown();
  std::string rm = dir + "/farm.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((rm + suffix).c_str());
  rmdir(dir.c_str());
  return 0;
}
