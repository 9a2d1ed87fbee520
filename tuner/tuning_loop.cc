// The tuning loop: propose, measure, record, learn; then re-measure the top
// candidates and mark the re-measured best.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "schedule_space/error.h"
#include "tuner/tuner.h"

namespace ktune {

namespace {

Record make_record(const Task& task, const Config& config, const MeasureResult& result,
                   const std::string& kind, const std::string& job) {
  Record r;
  r.workload_key = task.workload.key();
  r.device_key = task.target.device_key();
  r.template_name = task.tmpl->name();
  r.template_version = task.tmpl->version();
  r.config_index = config.index;
  r.config_text = task.space->describe(config);
  r.result = result;
  r.flops = task.workload.flops();
  r.kind = kind;
  r.job = job;
  r.tool_version = tool_version();
  r.build_flags = task.target.cpu.compiler;
  for (const std::string& flag : task.target.cpu.flags) r.build_flags += " " + flag;
  return r;
}

std::vector<MeasureInput> make_inputs(const Task& task, const std::vector<Config>& configs) {
  std::vector<MeasureInput> inputs;
  inputs.reserve(configs.size());
  for (const Config& c : configs) {
    inputs.push_back(MeasureInput{task.workload, task.target, task.tmpl, c});
  }
  return inputs;
}

// Measures configs and stores each record (when there is a database) as
// soon as its result is known; returns the records, ids filled in, in the
// order of configs, without the cancelled ones (never measured).
std::vector<Record> measure_and_record(const Task& task, Measurer& measurer, Database* db,
                                       const std::vector<Config>& configs,
                                       const MeasureOptions& options, const std::string& kind,
                                       const std::string& job) {
  std::vector<std::optional<Record>> stored(configs.size());
  auto store = [&](size_t i, const MeasureResult& result) {
    if (i >= configs.size() || stored[i] || result.error == MeasureError::kCancelled) return;
    std::vector<Record> one = {make_record(task, configs[i], result, kind, job)};
    if (db) db->insert(one);
    stored[i] = std::move(one[0]);
  };
  std::vector<MeasureResult> results = measurer.measure_each(make_inputs(task, configs), options, store);
  if (results.size() != configs.size()) {
    throw Error("measurer returned " + std::to_string(results.size()) + " results for " +
                std::to_string(configs.size()) + " inputs");
  }
  std::vector<Record> records;
  records.reserve(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    store(i, results[i]);  // a result the measurer did not stream
    if (stored[i]) records.push_back(std::move(*stored[i]));
  }
  return records;
}

// The fastest distinct configs among records, best first.
std::vector<uint64_t> top_configs(const std::vector<Record>& records, int n) {
  std::map<uint64_t, double> best_cost;
  for (const Record& r : records) {
    if (!r.result.ok()) continue;
    double cost = r.result.mean_cost();
    auto [it, inserted] = best_cost.emplace(r.config_index, cost);
    if (!inserted) it->second = std::min(it->second, cost);
  }
  std::vector<std::pair<double, uint64_t>> ranked;
  for (auto [index, cost] : best_cost) ranked.emplace_back(cost, index);
  std::sort(ranked.begin(), ranked.end());
  std::vector<uint64_t> top;
  for (int i = 0; i < n && i < static_cast<int>(ranked.size()); ++i) top.push_back(ranked[i].second);
  return top;
}

}  // namespace

int even_share(int total, size_t parts, size_t i) {
  const int n = static_cast<int>(parts);
  return total / n + (static_cast<int>(i) < total % n ? 1 : 0);
}

bool is_current(const Record& r) {
  try {
    return find_template(r.template_name).version() == r.template_version;
  } catch (const Error&) {
    return false;  // a template this build no longer has
  }
}

TuneSummary tune(const Task& task, Tuner& tuner, Measurer& measurer, Database* db,
                 const TuneOptions& options,
                 const std::function<void(const TuneProgress&)>& on_progress) {
  if (options.trials < 0) throw Error("trials must be >= 0, got " + std::to_string(options.trials));
  if (options.batch_size <= 0) {
    throw Error("batch size must be > 0, got " + std::to_string(options.batch_size));
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  TuneSummary summary;
  // Time spent inside the tuner: a cost model's training and search.
  auto timed_search = [&](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    summary.search_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  summary.workload_key = task.workload.key();
  summary.device_key = task.target.device_key();
  summary.template_name = task.tmpl->name();

  // Everything measured before, in this run's candidate pool; never measured again.
  std::vector<Record> pool;
  std::set<uint64_t> measured;  // distinct configs of pool
  if (db) {
    for (Record& r : db->history(summary.workload_key, summary.device_key)) {
      if (r.template_name == task.tmpl->name() && r.template_version == task.tmpl->version()) {
        measured.insert(r.config_index);
        pool.push_back(std::move(r));
      }
    }
    tuner.exclude(std::vector<uint64_t>(measured.begin(), measured.end()));
    summary.skipped_already_measured = static_cast<int>(measured.size());
    // What was measured before is what a learning tuner starts from.
    std::vector<Config> configs;
    std::vector<MeasureResult> results;
    for (const Record& r : pool) {
      if (r.config_index >= task.space->size()) continue;
      configs.push_back(task.space->get(r.config_index));
      results.push_back(r.result);
    }
    if (!configs.empty()) timed_search([&] { tuner.update(configs, results); });
  }

  TuneProgress progress;
  progress.trials_total = options.trials;
  double best_cost = std::numeric_limits<double>::infinity();
  for (const Record& r : pool) {
    if (r.result.ok()) best_cost = std::min(best_cost, r.result.mean_cost());
  }
  const double flops = task.workload.flops();
  auto report_best = [&] { progress.best_gflops = std::isfinite(best_cost) ? flops / best_cost / 1e9 : 0; };
  report_best();
  std::map<MeasureError, int> error_counts;
  int trials_since_improvement = 0;

  // The template's seeds go first (those not measured before), then the
  // tuner's proposals; the tuner never proposes a seed again.
  std::vector<Config> seeds;
  if (options.seeds) {
    std::vector<uint64_t> seed_indices;
    for (Config& c : task.tmpl->seed_configs(task.workload, task.target, *task.space)) {
      if (!measured.insert(c.index).second) continue;
      if (task.tmpl->check(task.workload, task.target, *task.space, c)) continue;
      seed_indices.push_back(c.index);
      seeds.push_back(std::move(c));
    }
    tuner.exclude(seed_indices);
  }
  size_t next_seed = 0;

  auto stopped = [&] { return options.stop && options.stop(); };
  while (progress.trials_done < options.trials && (next_seed < seeds.size() || tuner.has_next()) &&
         !stopped()) {
    int n = std::min(options.batch_size, options.trials - progress.trials_done);
    std::vector<Config> batch;
    while (static_cast<int>(batch.size()) < n && next_seed < seeds.size()) {
      batch.push_back(seeds[next_seed++]);
    }
    if (batch.empty()) timed_search([&] { batch = tuner.next_batch(n); });
    if (batch.empty()) break;
    MeasureOptions measure_options = options.measure;
    if (std::isfinite(best_cost)) measure_options.best_so_far_s = best_cost;
    std::vector<Record> records =
        measure_and_record(task, measurer, db, batch, measure_options, "search", options.job);
    std::vector<MeasureResult> results;
    std::vector<Config> measured_configs;  // batch without the cancelled
    for (const Record& r : records) {
      measured_configs.push_back(task.space->get(r.config_index));
      results.push_back(r.result);
      if (!r.result.ok()) {
        if (summary.first_error.empty()) {
          summary.first_error = std::string(error_name(r.result.error)) + ": " +
                                r.result.error_message;
        }
        ++progress.errors;
        ++error_counts[r.result.error];
      }
      ++trials_since_improvement;
      if (r.result.ok() && r.result.mean_cost() < best_cost) {
        best_cost = r.result.mean_cost();
        trials_since_improvement = 0;
      }
    }
    timed_search([&] { tuner.update(measured_configs, results); });
    pool.insert(pool.end(), records.begin(), records.end());
    progress.trials_done += static_cast<int>(records.size());
    progress.elapsed_s = elapsed();
    report_best();
    if (on_progress) on_progress(progress);
    if (options.early_stopping > 0 && trials_since_improvement >= options.early_stopping) break;
  }
  summary.trials = progress.trials_done;
  summary.errors = progress.errors;
  for (auto [e, count] : error_counts) summary.error_counts.emplace_back(e, count);
  if (stopped()) {  // cancelled or shutting down: no re-measurement, nothing marked
    summary.stopped = true;
    summary.elapsed_s = elapsed();
    return summary;
  }

  // Re-measure the top candidates with more repeats; the re-measured best
  // wins (with no finalists, final_top 0, the best measured).
  std::vector<uint64_t> top = top_configs(pool, options.final_top);
  std::vector<Record> finals;
  if (!top.empty()) {
    std::vector<Config> configs;
    for (uint64_t index : top) configs.push_back(task.space->get(index));
    MeasureOptions final_options = options.measure;
    final_options.repeat = std::max(options.final_repeat, options.measure.repeat);
    final_options.best_so_far_s = 0;  // never cut a finalist short
    finals = measure_and_record(task, measurer, db, configs, final_options, "final", options.job);
  }
  const Record* winner = nullptr;
  for (const Record& r : options.final_top > 0 ? finals : pool) {
    if (r.result.ok() && (!winner || r.result.mean_cost() < winner->result.mean_cost())) winner = &r;
  }
  if (winner) {
    summary.best = *winner;
    // The best of another template of this workload (a 1x1 conv2d has
    // two) stays marked unless this one beats it.
    if (db) {
      std::optional<Record> marked = db->best(summary.workload_key, summary.device_key);
      if (!marked || marked->template_name == task.tmpl->name() || !marked->result.ok() ||
          !is_current(*marked) || winner->result.mean_cost() < marked->result.mean_cost()) {
        db->mark_best(winner->id);
      }
    }
  }
  summary.elapsed_s = elapsed();
  return summary;
}

}  // namespace ktune
