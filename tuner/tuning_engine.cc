// The tuning engine behind tuner/tuning.h: allocate trials to tasks, let
// their tuners propose configs, measure them, store each record as it
// arrives, learn, and at the end re-measure the top candidates and mark the
// best. One thread (the caller's) owns all the bookkeeping; tuners run on a
// small pool beside it when the measurer is a farm.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "db/record_config.h"
#include "schedule_space/error.h"
#include "tuner/task_scheduler.h"
#include "tuner/tuning.h"

namespace ktune {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Record make_record(const Task& task, const Config& config, const MeasureResult& result, const std::string& kind,
                   const std::string& job) {
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

// The median of a record's costs: what decides between finalists, whom one
// slow repeat should not sink.
double median_cost(const Record& r) {
  std::vector<double> c = r.result.costs;
  if (!r.result.ok() || c.empty()) return kNoTime;
  std::sort(c.begin(), c.end());
  return c.size() % 2 ? c[c.size() / 2] : (c[c.size() / 2 - 1] + c[c.size() / 2]) / 2;
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

// Threads for the tuners' work (training, annealing) beside dispatch.
class SearchPool {
 public:
  explicit SearchPool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~SearchPool() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::vector<std::thread> threads_;
};

// One template of one workload.
struct Unit {
  size_t task = 0;
  Task spec;
  std::unique_ptr<Tuner> owned;
  Tuner* tuner = nullptr;        // touched only by the job in flight while busy
  bool tuner_ready = false;      // given the exclusions and what was measured before
  std::vector<Config> history_configs;  // measured before: what the tuner starts from
  std::vector<MeasureResult> history_results;
  std::vector<uint64_t> excluded;       // never to be proposed: measured, seeds, the default
  std::vector<Config> seeds;
  size_t next_seed = 0;
  std::vector<Record> pool;      // candidates for the finals: history and this run's
  int budget = 0;                // kPerWorkload: search trials this run may allocate
  int allocated = 0;             // this run's search trials allocated (in flight included)
  int requested = 0;             // allocated, waiting for the tuner's proposal
  int proposing = 0;             // asked of the tuner in the job in flight
  int in_flight = 0;             // submitted search candidates without a result
  bool busy = false;             // a tuner job in flight
  bool exhausted = false;        // the tuner has nothing more
  bool stopped_early = false;
  bool started = false, finished = false;
  std::vector<Config> new_configs;  // results not given to the tuner yet
  std::vector<MeasureResult> new_results;
  double best_cost = kNoTime;
  int since_improvement = 0;
  std::map<MeasureError, int> error_counts;
  std::vector<Record> finals;
  Clock::time_point started_at;
  TuneSummary summary;
};

struct TaskState {
  TuningTask task;
  std::vector<size_t> units;
  enum Phase { kSearch, kFinals, kDone } phase = kSearch;
  int trials_before = 0;
  int trials = 0;  // this run's measured search trials
  int errors = 0;
  uint64_t default_index = 0;
  double default_s = kNoTime;
  double best_s = kNoTime;
  bool finals_done_before = false;  // the job re-measured it in an earlier run
  int finals_in_flight = 0;
  size_t next_template = 0;         // kModel: the trailing templates take turns
  int later_allocations = 0;        // kModel: allocations after the warm-up
  std::string first_error;
  // The final re-measurement: the top candidates of every template and the
  // untuned default, measured in rounds that interleave them.
  struct Finalist {
    size_t unit = 0;
    Config config;
    MeasureResult result;  // every round's costs together
    bool failed = false;
  };
  std::vector<Finalist> finalists;
  int rounds_left = 0;  // rounds not answered yet
  int next_round = 0;   // the next round to queue
};

// Candidates measured together: one unit's, or one config of each of
// several units (a model's untuned defaults).
struct Batch {
  std::vector<size_t> units;  // one per config
  std::vector<Config> configs;
  std::vector<size_t> finalists;  // a final round's: the task's finalist of each config
  std::string kind;           // "search" or "final"
  MeasureOptions options;
  size_t answered = 0;
  void add(size_t unit, Config c) {
    units.push_back(unit);
    configs.push_back(std::move(c));
  }
};

struct Event {
  enum Kind { kResult, kProposal, kFailure } kind = kResult;
  uint64_t batch = 0;
  size_t index = 0;
  MeasureResult result;
  size_t unit = 0;
  int asked = 0;
  std::vector<Config> configs;
  bool fresh_tuner = false;
  size_t learned_from = 0;
  double search_s = 0;
  std::exception_ptr error;
};

class Engine {
 public:
  Engine(const TuningRequest& request, Measurer& measurer, TuningLog* log, TuningObserver* observer)
      : request_(request), options_(request.options), measurer_(measurer), log_(log), observer_(observer),
        slots_(measurer.parallel_slots()), start_(Clock::now()) {}

  // Adds a workload with its templates' tasks; tuners[i] (may be null: made
  // from the request) for units[i].
  void add_task(const TuningTask& t, std::vector<Task> templates, std::vector<Tuner*> tuners = {}) {
    TaskState s;
    s.task = t;
    for (size_t i = 0; i < templates.size(); ++i) {
      Unit u;
      u.task = tasks_.size();
      u.spec = std::move(templates[i]);
      u.tuner = i < tuners.size() ? tuners[i] : nullptr;
      s.units.push_back(units_.size());
      units_.push_back(std::move(u));
    }
    tasks_.push_back(std::move(s));
  }
  // Makes units' tuners list tuners of exactly these configs.
  void set_list(std::vector<Config> configs) { list_ = std::move(configs); }

  TuningResult run();

 private:
  bool model() const { return request_.budget == Budget::kModel; }
  bool sync() const { return slots_ <= 0; }
  // Trials per allocation: the batch size; on a wide farm larger, so that a
  // tuner's training and annealing serve more candidates (about half the
  // farm's slots, at most 64: AutoTVM's GPU batch).
  int chunk() const { return sync() ? options_.batch_size : std::clamp(slots_, options_.batch_size, 64); }
  void prepare();
  void ensure_tuner(Unit& u, Event* e);
  void request(size_t unit, int n);
  size_t later_template(TaskState& t, const std::vector<size_t>& live);
  void start_job(size_t unit);
  bool allocate();
  void submit(Batch b);
  void handle(Event& e);
  void on_result(Event& e);
  void on_proposal(Event& e);
  void advance_phases();
  void start_finals(TaskState& t);
  bool final_round(TaskState& t);
  void end_finals(TaskState& t);
  void decide(TaskState& t);
  void finish_unit(Unit& u);
  int outstanding() const;
  void push(Event e);
  bool pop_all(std::vector<Event>& out, bool block);
  void notify_progress();
  void loop();
  void drain();
  TuningResult result();
  TuningProgress snapshot() const;
  bool search_over(size_t task) const;
  int search_outstanding(std::optional<size_t> task) const;
  bool queued_for(size_t task) const;
  void release(Unit& u, int n, bool exhausted);

  const TuningRequest& request_;
  const TuneOptions& options_;
  Measurer& measurer_;
  TuningLog* log_;
  TuningObserver* observer_;
  int slots_;
  Clock::time_point start_;
  std::vector<TaskState> tasks_;
  std::vector<Unit> units_;
  std::optional<std::vector<Config>> list_;
  std::unique_ptr<TaskScheduler> scheduler_;
  std::deque<Batch> ready_;  // proposed, not submitted yet
  std::unordered_map<uint64_t, Batch> batches_;
  uint64_t next_batch_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool stopping_ = false;
  std::exception_ptr failure_;
  int max_in_flight_ = 0;
  int submitted_ = 0;  // items submitted to the measurer, not answered yet
  int proposals_ = 0;
  bool progressed_ = false;
  int trials_at_start_ = 0;
  size_t last_task_ = 0;
  // Last: destroyed first, so that no tuner job outlives what it uses.
  std::unique_ptr<SearchPool> pool_;
};

int Engine::outstanding() const {
  int n = search_outstanding(std::nullopt);
  for (const TaskState& t : tasks_) n += t.finals_in_flight;
  for (const Batch& b : ready_) n += b.kind == "final" ? static_cast<int>(b.configs.size()) : 0;
  return n;
}

// Search trials allocated and not measured yet (of one task, or of all).
int Engine::search_outstanding(std::optional<size_t> task) const {
  int n = 0;
  for (const Unit& u : units_) {
    if (!task || u.task == *task) n += u.requested + u.proposing + u.in_flight;
  }
  for (const Batch& b : ready_) {
    if (b.kind != "search") continue;
    for (size_t k : b.units) n += !task || units_[k].task == *task;
  }
  return n;
}

// Whether a batch of the task waits or is in flight.
bool Engine::queued_for(size_t task) const {
  for (const Batch& b : ready_) {
    for (size_t k : b.units) {
      if (units_[k].task == task) return true;
    }
  }
  for (const auto& [id, b] : batches_) {
    for (size_t k : b.units) {
      if (units_[k].task == task) return true;
    }
  }
  return false;
}

void Engine::push(Event e) {
  // Notified under the lock: a measurer's thread pushes the last result,
  // and the engine may take it, end and destroy cv_ as soon as mu_ is free,
  // before a notify made after unlocking (found by ThreadSanitizer).
  std::lock_guard lock(mu_);
  events_.push_back(std::move(e));
  cv_.notify_one();
}

bool Engine::pop_all(std::vector<Event>& out, bool block) {
  std::unique_lock lock(mu_);
  if (block) cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return !events_.empty(); });
  if (events_.empty()) return false;
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

void Engine::prepare() {
  const std::string& job = options_.job;
  for (TaskState& t : tasks_) {
    const std::string key = t.task.workload.key();
    const std::string device = request_.target.device_key();
    std::vector<Record> history;
    if (log_) history = log_->history(key, device);
    if (log_) {
      if (std::optional<Record> b = log_->best(key, device); b && usable(*b)) t.best_s = b->result.mean_cost();
    }
    if (log_ && !job.empty()) t.finals_done_before = log_->job_counts(job, key).final > 0;
    const Task& first = units_[t.units.front()].spec;
    t.default_index = default_config(first).index;
    for (size_t k = 0; k < t.units.size(); ++k) {
      Unit& u = units_[t.units[k]];
      std::set<uint64_t> measured;
      for (Record& r : history) {
        if (r.template_name != u.spec.tmpl->name() || r.template_version != u.spec.tmpl->version()) continue;
        if (r.config_index >= u.spec.space->size()) continue;
        if (k == 0 && r.config_index == t.default_index && r.result.ok()) {
          t.default_s = std::min(t.default_s, r.result.mean_cost());
        }
        if (measured.insert(r.config_index).second) {
          u.history_configs.push_back(u.spec.space->get(r.config_index));
          u.history_results.push_back(r.result);
        }
        if (r.result.ok()) u.best_cost = std::min(u.best_cost, r.result.mean_cost());
        u.pool.push_back(r);
      }
      u.summary.workload_key = key;
      u.summary.device_key = device;
      u.summary.template_name = u.spec.tmpl->name();
      u.summary.skipped_already_measured = static_cast<int>(measured.size());
      u.excluded.assign(measured.begin(), measured.end());
      if (model() && k == 0) measured.insert(t.default_index);
      if (options_.seeds && !list_) {
        for (Config& c : u.spec.tmpl->seed_configs(u.spec.workload, u.spec.target, *u.spec.space)) {
          if (!measured.insert(c.index).second) continue;
          if (u.spec.tmpl->check(u.spec.workload, u.spec.target, *u.spec.space, c)) continue;
          u.excluded.push_back(c.index);
          u.seeds.push_back(std::move(c));
        }
      }
      if (model() && k == 0) u.excluded.push_back(t.default_index);
      // Budgets: a job's earlier search trials count against them.
      int done = 0;
      if (log_ && !job.empty()) {
        done = static_cast<int>(log_->job_counts(job, key, model() ? "" : u.spec.tmpl->name()).search);
      }
      if (!model()) {
        const int share = list_ ? static_cast<int>(list_->size())
                                : even_share(options_.trials, t.units.size(), k);
        u.budget = std::max(0, share - done);
        t.trials_before += done;
      } else if (k == 0) {
        t.trials_before = done;
      }
    }
    // A caller's tuner: given what was measured before now.
    for (size_t k : t.units) {
      if (units_[k].tuner) ensure_tuner(units_[k], nullptr);
    }
  }
  if (model()) {
    TaskSchedulerOptions o;
    o.trials = options_.trials;
    o.chunk = options_.batch_size;
    o.warmup = std::min(options_.batch_size, std::max(1, options_.trials / static_cast<int>(tasks_.size())));
    o.task_cap = request_.task_cap;
    o.weighted_warmup = true;
    std::vector<double> weights;
    for (const TaskState& t : tasks_) weights.push_back(t.task.weight);
    scheduler_ = std::make_unique<TaskScheduler>(weights, o);
    for (size_t i = 0; i < tasks_.size(); ++i) {
      scheduler_->set_state(i, tasks_[i].trials_before, tasks_[i].best_s);
      // The untuned default, then a first seed of each template.
      scheduler_->set_min_warmup(i, 1 + static_cast<int>(tasks_[i].units.size()));
    }
    // The untuned default of every task first: what the model runs without
    // tuning, and the first trial of its warm-up; in batches of the batch size.
    for (size_t i = 0; i < tasks_.size(); ++i) {
      TaskState& t = tasks_[i];
      if (std::isfinite(t.default_s) || scheduler_->trials_done() >= options_.trials) continue;
      Unit& u = units_[t.units.front()];
      scheduler_->allocate({i, 1});
      u.allocated += 1;
      if (ready_.empty() || static_cast<int>(ready_.back().configs.size()) >= options_.batch_size) {
        ready_.emplace_back();
        ready_.back().kind = "search";
        ready_.back().options = options_.measure;
      }
      ready_.back().add(t.units.front(), u.spec.space->get(t.default_index));
    }
  }
  for (const TaskState& t : tasks_) trials_at_start_ += t.trials_before;
}

void Engine::ensure_tuner(Unit& u, Event* e) {
  if (u.tuner_ready) return;
  u.tuner_ready = true;
  if (!u.tuner) {
    size_t learned_from = 0;
    if (list_) {
      u.owned = make_list_tuner(u.spec, *list_);
    } else {
      u.owned = make_tuner(request_.tuner, u.spec, request_.seed, log_, options_.transfer, &learned_from);
    }
    u.tuner = u.owned.get();
    if (e) {
      e->fresh_tuner = true;
      e->learned_from = learned_from;
    }
  }
  u.tuner->exclude(u.excluded);
  if (!u.history_configs.empty()) u.tuner->update(u.history_configs, u.history_results);
  u.history_configs.clear();
  u.history_results.clear();
}

// n more search trials for unit: the template's seeds first, then its tuner's proposals.
void Engine::request(size_t unit, int n) {
  Unit& u = units_[unit];
  if (!u.started) {
    u.started = true;
    u.started_at = Clock::now();
    if (sync() && !u.tuner_ready) {
      // The tuner now, so that a transfer model is announced before the search starts.
      const auto t0 = Clock::now();
      Event e;
      ensure_tuner(u, &e);
      u.summary.search_s += since(t0);
      if (observer_ && e.learned_from > 0) observer_->transfer_learned(u.spec, e.learned_from);
    }
    if (observer_) observer_->template_started(u.spec, model() ? 0 : u.budget);
  }
  u.allocated += n;
  const int seeds = std::min<int>(n, static_cast<int>(u.seeds.size() - u.next_seed));
  if (seeds > 0) {
    Batch b;
    b.kind = "search";
    b.options = options_.measure;
    for (int i = 0; i < seeds; ++i) b.add(unit, u.seeds[u.next_seed++]);
    ready_.push_back(std::move(b));
  }
  u.requested += n - seeds;
}

void Engine::start_job(size_t unit) {
  Unit& u = units_[unit];
  if (u.busy || u.requested <= 0 || stopping_) return;
  u.busy = true;
  ++proposals_;
  u.proposing = u.requested;
  u.requested = 0;
  auto job = [this, unit, n = u.proposing, configs = std::move(u.new_configs),
              results = std::move(u.new_results)]() mutable {
    Unit& u = units_[unit];
    Event e;
    e.kind = Event::kProposal;
    e.unit = unit;
    e.asked = n;
    const auto t0 = Clock::now();
    try {
      ensure_tuner(u, &e);
      if (!configs.empty()) u.tuner->update(configs, results);
      e.configs = u.tuner->next_batch(n);
    } catch (...) {
      e.kind = Event::kFailure;
      e.error = std::current_exception();
    }
    e.search_s = since(t0);
    push(std::move(e));
  };
  u.new_configs.clear();
  u.new_results.clear();
  if (sync()) {
    job();
  } else {
    if (!pool_) pool_ = std::make_unique<SearchPool>(std::max(1u, std::min(4u, std::thread::hardware_concurrency())));
    pool_->post(std::move(job));
  }
}

void Engine::release(Unit& u, int n, bool exhausted) {
  if (n <= 0 && !exhausted) return;
  u.allocated -= n;
  if (exhausted) u.exhausted = true;
  if (model()) scheduler_->release(u.task, n, exhausted && std::all_of(tasks_[u.task].units.begin(),
                                                                         tasks_[u.task].units.end(), [&](size_t k) {
                                                                           return units_[k].exhausted;
                                                                         }));
}

// One allocation of trials, if the budget and the window allow.
bool Engine::allocate() {
  if (stopping_) return false;
  if (!model()) {
    for (TaskState& t : tasks_) {
      if (t.phase != TaskState::kSearch) continue;
      for (size_t k : t.units) {
        Unit& u = units_[k];
        if (u.exhausted || u.stopped_early || u.allocated >= u.budget) continue;
        int n = std::min(chunk(), u.budget - u.allocated);
        if (u.next_seed < u.seeds.size()) n = std::min<int>(n, static_cast<int>(u.seeds.size() - u.next_seed));
        request(k, n);
        return true;
      }
      if (sync()) return false;  // one workload after another
    }
    return false;
  }
  std::optional<TaskScheduler::Allocation> a = scheduler_->next(chunk());
  if (!a) return false;
  TaskState& t = tasks_[a->task];
  // The warm-up is shared by the task's templates (a 1x1 conv has two);
  // later allocations go to the template ahead, every third to the others.
  const bool warmup = scheduler_->warming_up(a->task);
  scheduler_->allocate(*a);
  std::vector<size_t> live;
  for (size_t k : t.units) {
    if (!units_[k].exhausted) live.push_back(k);
  }
  if (live.empty()) {
    scheduler_->release(a->task, a->trials, true);
    return true;
  }
  if (warmup) {
    const size_t parts = std::min(live.size(), static_cast<size_t>(a->trials));
    for (size_t p = 0; p < parts; ++p) request(live[t.next_template++ % live.size()], even_share(a->trials, parts, p));
  } else {
    request(later_template(t, live), a->trials);
  }
  return true;
}

// Which of a task's templates gets an allocation after the warm-up. The
// templates of one operator differ by more than their configs do (a 1x1 conv
// as a GEMM against the direct template: 0.26x-2.8x between their bests on
// MobileNetV2's layers), so turns in strict rotation spend half of a small
// budget on the one behind. A template not tried yet gets the turn (it
// cannot win untried); then the one whose best is fastest, and
// every third allocation the others in turn, so that one behind after its
// seeds can still catch up.
size_t Engine::later_template(TaskState& t, const std::vector<size_t>& live) {
  if (live.size() == 1) return live.front();
  for (size_t k : live) {
    if (units_[k].allocated == 0) return k;
  }
  size_t leader = live.front();
  for (size_t k : live) {
    if (units_[k].best_cost < units_[leader].best_cost) leader = k;
  }
  if (++t.later_allocations % 3 != 0) return leader;
  std::vector<size_t> others;
  for (size_t k : live) {
    if (k != leader) others.push_back(k);
  }
  return others[t.next_template++ % others.size()];
}

void Engine::submit(Batch b) {
  std::vector<MeasureInput> inputs;
  inputs.reserve(b.configs.size());
  for (size_t i = 0; i < b.configs.size(); ++i) {
    Unit& u = units_[b.units[i]];
    inputs.push_back(MeasureInput{u.spec.workload, u.spec.target, u.spec.tmpl, b.configs[i]});
    if (b.kind == "search") {
      ++u.in_flight;
    } else {
      ++tasks_[u.task].finals_in_flight;
    }
  }
  // A candidate already far slower than its template's best is cut short.
  if (b.kind == "search" && !b.units.empty() &&
             std::all_of(b.units.begin(), b.units.end(), [&](size_t k) { return k == b.units[0]; }) &&
             std::isfinite(units_[b.units[0]].best_cost)) {
    b.options.best_so_far_s = units_[b.units[0]].best_cost;
  }
  const uint64_t id = next_batch_++;
  const MeasureOptions options = b.options;
  submitted_ += static_cast<int>(b.configs.size());
  batches_.emplace(id, std::move(b));
  max_in_flight_ = std::max(max_in_flight_, submitted_);
  measurer_.submit(inputs, options, [this, id](size_t i, const MeasureResult& r) {
    Event e;
    e.kind = Event::kResult;
    e.batch = id;
    e.index = i;
    e.result = r;
    push(std::move(e));
  });
}

void Engine::on_result(Event& e) {
  auto it = batches_.find(e.batch);
  if (it == batches_.end() || e.index >= it->second.configs.size()) return;
  Batch& b = it->second;
  --submitted_;
  const size_t unit = b.units[e.index];
  Unit& u = units_[unit];
  TaskState& t = tasks_[u.task];
  const Config& config = b.configs[e.index];
  const bool search = b.kind == "search";
  if (search) {
    --u.in_flight;
  } else {
    --t.finals_in_flight;
    // A final round's result joins its finalist's other rounds.
    TaskState::Finalist& f = t.finalists.at(b.finalists.at(e.index));
    if (e.result.error == MeasureError::kCancelled) {
      f.failed = true;
    } else if (!e.result.ok()) {
      f.failed = true;
      f.result = e.result;
    } else if (!f.failed) {
      f.result.costs.insert(f.result.costs.end(), e.result.costs.begin(), e.result.costs.end());
      f.result.build_seconds += e.result.build_seconds;
      f.result.run_seconds += e.result.run_seconds;
      f.result.worker = e.result.worker;
      f.result.timestamp = e.result.timestamp;
    }
    if (++b.answered == b.configs.size()) {
      batches_.erase(it);
      if (stopping_) return;  // a stopped run decides nothing
      // Locally the next round goes out now; on a farm all went at once.
      if (--t.rounds_left == 0 || (sync() && !final_round(t))) end_finals(t);
    }
    return;
  }
  if (e.result.error == MeasureError::kCancelled) {
    // Never measured: neither stored nor learned from, and not a trial.
    if (search) release(u, 1, false);
  } else {
    Record r = make_record(u.spec, config, e.result, b.kind, options_.job);
    if (log_) {
      try {
        log_->store(r);
      } catch (...) {
        // Answered all the same (a full disk): the run stops on the error,
        // and drain() must not wait for this result.
        if (++b.answered == b.configs.size()) batches_.erase(it);
        throw;
      }
    }
    if (search) {
      ++u.summary.trials;
      ++t.trials;
      u.new_configs.push_back(config);
      u.new_results.push_back(e.result);
      ++u.since_improvement;
      if (r.result.ok()) {
        const double cost = r.result.mean_cost();
        if (cost < u.best_cost) {
          u.best_cost = cost;
          u.since_improvement = 0;
        }
        t.best_s = std::min(t.best_s, cost);
        if (model() && config.index == t.default_index && unit == t.units.front()) {
          t.default_s = std::min(t.default_s, cost);
        }
      } else {
        ++u.summary.errors;
        ++t.errors;
        ++u.error_counts[r.result.error];
        const std::string why = std::string(error_name(r.result.error)) + ": " + r.result.error_message;
        if (u.summary.first_error.empty()) u.summary.first_error = why;
        if (t.first_error.empty()) t.first_error = why;
      }
      if (options_.early_stopping > 0 && u.since_improvement >= options_.early_stopping) u.stopped_early = true;
      if (model()) scheduler_->complete(u.task, 1, t.best_s);
      progressed_ = true;
      last_task_ = u.task;
    }
    u.pool.push_back(std::move(r));
  }
  if (++b.answered == b.configs.size()) batches_.erase(it);
}

void Engine::on_proposal(Event& e) {
  Unit& u = units_[e.unit];
  u.busy = false;
  u.summary.search_s += e.search_s;
  u.proposing = 0;
  if (observer_ && e.fresh_tuner && e.learned_from > 0) observer_->transfer_learned(u.spec, e.learned_from);
  const int got = static_cast<int>(e.configs.size());
  if (stopping_) {
    release(u, e.asked, false);
    return;
  }
  if (got < e.asked) release(u, e.asked - got, got == 0);
  if (got > 0) {
    Batch b;
    b.kind = "search";
    b.options = options_.measure;
    for (Config& c : e.configs) b.add(e.unit, std::move(c));
    ready_.push_back(std::move(b));
  }
}

void Engine::handle(Event& e) {
  try {
    switch (e.kind) {
      case Event::kResult:
        on_result(e);
        break;
      case Event::kProposal:
        on_proposal(e);
        break;
      case Event::kFailure:
        units_[e.unit].busy = false;
        release(units_[e.unit], units_[e.unit].proposing, false);
        units_[e.unit].proposing = 0;
        if (!failure_) failure_ = e.error;
        break;
    }
  } catch (...) {
    if (!failure_) failure_ = std::current_exception();
  }
}

// Whether the task's search is over: kPerWorkload, its templates' budgets
// are measured; kModel, the model's (all tasks end their search together).
bool Engine::search_over(size_t task) const {
  for (const Unit& u : units_) {
    if (u.busy && (model() || u.task == task)) return false;
  }
  if (model()) return !scheduler_->next() && search_outstanding(std::nullopt) == 0;
  if (search_outstanding(task) > 0) return false;
  for (size_t k : tasks_[task].units) {
    const Unit& u = units_[k];
    if (!u.exhausted && !u.stopped_early && u.allocated < u.budget) return false;
  }
  return true;
}

void Engine::finish_unit(Unit& u) {
  if (u.finished) return;
  u.finished = true;
  u.summary.elapsed_s = u.started ? since(u.started_at) : 0;
  for (auto [e, count] : u.error_counts) u.summary.error_counts.emplace_back(e, count);
  if (observer_) observer_->template_finished(u.summary);
}

void Engine::start_finals(TaskState& t) {
  for (size_t k : t.units) finish_unit(units_[k]);
  if (options_.final_top <= 0 || t.finals_done_before) {
    decide(t);
    return;
  }
  // The finalists: every template's top candidates, and the untuned
  // default (so that a winner is never slower than what it replaces).
  for (size_t k : t.units) {
    Unit& u = units_[k];
    for (uint64_t index : top_configs(u.pool, options_.final_top)) {
      t.finalists.push_back({k, u.spec.space->get(index), {}, false});
    }
  }
  const size_t first = t.units.front();
  const bool default_measured = std::any_of(units_[first].pool.begin(), units_[first].pool.end(), [&](const Record& r) {
    return r.config_index == t.default_index && r.result.ok();
  });
  const bool default_in = std::any_of(t.finalists.begin(), t.finalists.end(), [&](const TaskState::Finalist& f) {
    return f.unit == first && f.config.index == t.default_index;
  });
  if (default_measured && !default_in) {
    t.finalists.push_back({first, units_[first].spec.space->get(t.default_index), {}, false});
  }
  if (t.finalists.empty()) {
    decide(t);
    return;
  }
  t.phase = TaskState::kFinals;
  // In rounds of a couple of repeats each, every finalist once per round
  // in a rotated order, so that a slow spell of the machine is shared by
  // all of them rather than deciding between them.
  // On a farm the rounds go out together: different workers measure them,
  // and waiting for each would only lengthen the job's tail.
  const int repeats = std::max(options_.final_repeat, options_.measure.repeat);
  t.rounds_left = std::clamp(repeats / 2, 1, 5);
  t.next_round = 0;
  const int now = sync() ? 1 : t.rounds_left;
  for (int i = 0; i < now; ++i) {
    if (!final_round(t)) {
      end_finals(t);
      return;
    }
  }
}

// Queues the next round; false when no finalist is left to measure.
bool Engine::final_round(TaskState& t) {
  const int repeats = std::max(options_.final_repeat, options_.measure.repeat);
  const int rounds = std::clamp(repeats / 2, 1, 5);
  Batch b;
  b.kind = "final";
  b.options = options_.measure;
  b.options.repeat = (repeats + rounds - 1) / rounds;
  b.options.best_so_far_s = 0;  // never cut a finalist short
  const size_t n = t.finalists.size();
  const size_t rotation = static_cast<size_t>(t.next_round++) % n;
  for (size_t j = 0; j < n; ++j) {
    const size_t i = (j + rotation) % n;
    if (t.finalists[i].failed) continue;
    b.add(t.finalists[i].unit, t.finalists[i].config);
    b.finalists.push_back(i);
  }
  if (b.configs.empty()) {
    t.rounds_left = 0;
    return false;
  }
  ready_.push_back(std::move(b));
  return true;
}

// Each finalist's rounds become one "final" record.
void Engine::end_finals(TaskState& t) {
  for (TaskState::Finalist& f : t.finalists) {
    // Nothing measured (cancelled): no record.
    if (f.failed ? f.result.error == MeasureError::kNone : f.result.costs.empty()) continue;
    Unit& u = units_[f.unit];
    Record r = make_record(u.spec, f.config, f.result, "final", options_.job);
    // The untuned default's time from the rounds its successor won in: one
    // from the search, minutes earlier, may come from a faster spell of the
    // machine and make the tuned best look slower than what it replaced.
    if (model() && f.unit == t.units.front() && f.config.index == t.default_index && r.result.ok()) {
      t.default_s = r.result.mean_cost();
    }
    if (log_) log_->store(r);
    u.finals.push_back(r);
    u.pool.push_back(std::move(r));
  }
}

// The re-measured best of the workload's templates is its winner; it is
// marked unless a faster best of a template not tuned here is marked, or a
// faster best this run never saw (another process marked it meanwhile). The
// database decides and marks in one transaction, against the best as it is
// then, so concurrent runs of one workload keep the faster of their winners.
void Engine::decide(TaskState& t) {
  t.phase = TaskState::kDone;
  const Record* winner = nullptr;
  std::set<std::string> tuned;
  for (size_t k : t.units) {
    Unit& u = units_[k];
    tuned.insert(u.spec.tmpl->name());
    const Record* unit_best = nullptr;
    for (const Record& r : options_.final_top > 0 && !t.finals_done_before ? u.finals : u.pool) {
      if (r.result.ok() && (!unit_best || median_cost(r) < median_cost(*unit_best))) unit_best = &r;
    }
    if (unit_best) u.summary.best = *unit_best;
    if (unit_best && (!winner || median_cost(*unit_best) < median_cost(*winner))) winner = unit_best;
  }
  if (!winner) return;
  if (log_ && !(options_.final_top > 0 && t.finals_done_before)) {
    std::set<int64_t> seen;  // records this run chose its finalists from
    for (size_t k : t.units) {
      for (const Record& r : units_[k].pool) seen.insert(r.id);
    }
    // Compared as the finalists were: by median. A current best this run
    // re-measured among its finalists (superseded) lost to the winner in
    // this run's interleaved re-measurement, which decides.
    const double winner_cost = median_cost(*winner);
    log_->mark_best(*winner, [&](const Record& current) {
      const bool superseded = seen.count(current.id) && tuned.count(current.template_name);
      return usable(current) && !superseded && winner_cost >= median_cost(current);
    });
  }
  t.best_s = std::min(t.best_s, winner->result.mean_cost());
}

void Engine::advance_phases() {
  if (stopping_) return;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    TaskState& t = tasks_[i];
    if (t.phase == TaskState::kSearch && search_over(i)) start_finals(t);
    if (t.phase == TaskState::kFinals && t.finals_in_flight == 0 && !queued_for(i)) decide(t);
  }
}

TuningProgress Engine::snapshot() const {
  TuningProgress p;
  p.elapsed_s = since(start_);
  p.trials_at_start = trials_at_start_;
  p.last_task = last_task_;
  for (const TaskState& t : tasks_) {
    TuningProgress::Task pt;
    pt.workload = &t.task.workload;
    pt.weight = t.task.weight;
    pt.trials = t.trials_before + t.trials;
    pt.errors = t.errors;
    pt.best_s = t.best_s;
    pt.default_s = t.default_s;
    pt.done = t.phase == TaskState::kDone;
    for (size_t k : t.units) pt.budget += units_[k].budget;
    if (!model()) pt.budget += t.trials_before;
    pt.in_flight = search_outstanding(static_cast<size_t>(&t - tasks_.data()));
    p.trials += pt.trials;
    p.in_flight += pt.in_flight;
    p.budget += pt.budget;
    p.tasks.push_back(pt);
  }
  if (model()) p.budget = options_.trials;
  return p;
}

void Engine::notify_progress() {
  if (!progressed_ || !observer_) return;
  progressed_ = false;
  observer_->progress(snapshot());
}

// Waits until nothing is in flight: every submitted candidate answered (the
// measurer was told to cancel) and every tuner job back.
void Engine::drain() {
  const auto until = Clock::now() + std::chrono::minutes(5);
  while (Clock::now() < until) {
    bool busy = !batches_.empty();
    for (const Unit& u : units_) busy |= u.busy;
    if (!busy) return;
    std::vector<Event> more;
    pop_all(more, true);
    for (Event& e : more) handle(e);
  }
}

TuningResult Engine::run() {
  try {
    prepare();
    if (observer_) observer_->started(snapshot());
    loop();
  } catch (...) {
    // Nothing may answer into this engine after it is gone.
    if (!failure_) failure_ = std::current_exception();
    stopping_ = true;
    measurer_.cancel();
    drain();
  }
  pool_.reset();  // joins the tuners' threads
  if (failure_) std::rethrow_exception(failure_);
  return result();
}

void Engine::loop() {
  auto stop_requested = [&] { return options_.stop && options_.stop(); };
  while (true) {
    std::vector<Event> events;
    pop_all(events, false);
    for (Event& e : events) handle(e);
    if (!events.empty()) notify_progress();
    if (!stopping_ && (failure_ || stop_requested())) {
      stopping_ = true;
      measurer_.cancel();
      for (Batch& b : ready_) {
        if (b.kind != "search") continue;
        for (size_t k : b.units) release(units_[k], 1, false);
      }
      ready_.clear();
      for (Unit& u : units_) {
        release(u, u.requested, false);
        u.requested = 0;
      }
    }
    if (stopping_) {
      drain();
      return;
    }
    // Candidates ready go out first; in sync mode one batch, then its results.
    if (!ready_.empty()) {
      if (sync()) {
        Batch b = std::move(ready_.front());
        ready_.pop_front();
        submit(std::move(b));
      } else {
        while (!ready_.empty()) {
          Batch b = std::move(ready_.front());
          ready_.pop_front();
          submit(std::move(b));
        }
      }
      continue;
    }
    // Tuners with trials to propose.
    bool started = false;
    for (size_t k = 0; k < units_.size(); ++k) {
      if (!units_[k].busy && units_[k].requested > 0) {
        start_job(k);
        started = true;
        if (sync()) break;
      }
    }
    if (started && sync()) continue;
    // New allocations while the window has room: in sync mode only when
    // nothing is outstanding (one batch at a time); on a farm about twice
    // its slots, so that every worker has its next candidate waiting.
    bool allocated = false;
    if (sync()) {
      if (outstanding() == 0) allocated = allocate();
    } else {
      slots_ = std::max(1, measurer_.parallel_slots());
      const int window = 2 * slots_ + options_.batch_size;
      while (outstanding() < window && allocate()) allocated = true;
    }
    if (allocated) continue;
    advance_phases();
    if (!ready_.empty()) continue;
    const bool all_done = std::all_of(tasks_.begin(), tasks_.end(), [](const TaskState& t) {
      return t.phase == TaskState::kDone;
    });
    if (all_done && outstanding() == 0) break;
    bool waiting = !batches_.empty();
    for (const Unit& u : units_) waiting |= u.busy;
    if (!waiting) {
      if (started) continue;
      // Nothing in flight and nothing to do, yet not done: a phase that
      // cannot move (should not happen); end rather than spin.
      if (!all_done) {
        bool moved = false;
        for (TaskState& t : tasks_) {
          if (t.phase == TaskState::kSearch) {
            start_finals(t);
            moved = true;
          }
        }
        if (moved) continue;
      }
      break;
    }
    std::vector<Event> more;
    pop_all(more, true);
    for (Event& e : more) handle(e);
    if (!more.empty()) notify_progress();
  }
}

TuningResult Engine::result() {
  TuningResult out;
  out.stopped = stopping_;
  out.elapsed_s = since(start_);
  out.max_in_flight = max_in_flight_;
  out.proposals = proposals_;
  for (TaskState& t : tasks_) {
    WorkloadResult w;
    w.workload = t.task.workload;
    w.weight = t.task.weight;
    w.trials = t.trials;
    w.trials_before = t.trials_before;
    w.errors = t.errors;
    w.default_s = t.default_s;
    w.first_error = t.first_error;
    for (size_t k : t.units) {
      Unit& u = units_[k];
      if (!u.finished) {
        u.summary.elapsed_s = u.started ? since(u.started_at) : 0;
        for (auto [e, count] : u.error_counts) u.summary.error_counts.emplace_back(e, count);
      }
      u.summary.stopped = stopping_;
      out.search_s += u.summary.search_s;
      if (u.summary.best && (!w.best || u.summary.best->result.mean_cost() < w.best->result.mean_cost())) {
        w.best = u.summary.best;
      }
      w.templates.push_back(u.summary);
    }
    if (t.phase != TaskState::kDone) {  // stopped before its end: nothing decided
      for (TuneSummary& s : w.templates) s.best.reset();
      w.best.reset();
    }
    w.best_s = t.best_s;
    if (log_) {
      if (std::optional<Record> b = log_->best(w.workload.key(), request_.target.device_key()); b && usable(*b)) {
        w.best_s = b->result.mean_cost();
      }
    }
    out.trials += w.trials;
    out.trials_before += w.trials_before;
    out.workloads.push_back(std::move(w));
  }
  return out;
}

double estimate(const std::vector<WorkloadResult>& ws, bool untuned) {
  double total = 0;
  for (const WorkloadResult& w : ws) {
    const double s = untuned ? w.default_s : w.best_s;
    if (std::isfinite(s)) total += w.weight * s;
  }
  return total;
}

std::vector<Task> template_tasks(const Workload& w, const Target& target, const std::string& template_name) {
  std::vector<Task> out;
  for (const Template* t : templates_to_tune(w, template_name, target.kind)) out.push_back(Task::make(w, target, *t));
  return out;
}

// Runs on_progress for a one-template run.
class SingleProgress : public TuningObserver {
 public:
  SingleProgress(const std::function<void(const TuneProgress&)>& f, int trials, double flops)
      : f_(f), trials_(trials), flops_(flops) {}
  void progress(const TuningProgress& p) override {
    if (!f_ || p.tasks.empty()) return;
    TuneProgress q;
    q.trials_done = p.trials - p.trials_at_start;
    q.trials_total = trials_;
    q.errors = p.tasks[0].errors;
    q.best_gflops = std::isfinite(p.tasks[0].best_s) ? flops_ / p.tasks[0].best_s / 1e9 : 0;
    q.elapsed_s = p.elapsed_s;
    f_(q);
  }

 private:
  const std::function<void(const TuneProgress&)>& f_;
  int trials_;
  double flops_;
};

}  // namespace

int even_share(int total, size_t parts, size_t i) {
  const int n = static_cast<int>(parts);
  return total / n + (static_cast<int>(i) < total % n ? 1 : 0);
}

double TuningResult::estimated_s() const { return estimate(workloads, false); }
double TuningResult::untuned_s() const { return estimate(workloads, true); }

double TuningProgress::estimated_s() const {
  double total = 0;
  for (const Task& t : tasks) {
    if (std::isfinite(t.best_s)) total += t.weight * t.best_s;
  }
  return total;
}

double TuningProgress::untuned_s() const {
  double total = 0;
  for (const Task& t : tasks) {
    if (std::isfinite(t.default_s)) total += t.weight * t.default_s;
  }
  return total;
}

Config default_config(const Task& first_template) {
  const Task& t = first_template;
  std::vector<Config> seeds = t.tmpl->seed_configs(t.workload, t.target, *t.space);
  return seeds.empty() ? t.space->get(0) : seeds.front();
}

std::vector<TaskTimes> task_times(const std::vector<TuningTask>& tasks, const Target& target, const TuningLog& log) {
  std::vector<TaskTimes> out;
  const std::string device = target.device_key();
  for (const TuningTask& task : tasks) {
    TaskTimes times;
    const std::string key = task.workload.key();
    if (std::optional<Record> b = log.best(key, device); b && usable(*b)) times.best_s = b->result.mean_cost();
    const std::vector<const Template*> templates = templates_to_tune(task.workload, "", target.kind);
    if (!templates.empty()) {
      const Task first = Task::make(task.workload, target, *templates.front());
      const uint64_t index = default_config(first).index;
      for (const Record& r : log.history(key, device)) {
        if (r.template_name == first.tmpl->name() && r.template_version == first.tmpl->version() &&
            r.config_index == index && r.result.ok()) {
          times.default_s = std::min(times.default_s, r.result.mean_cost());
        }
      }
    }
    out.push_back(times);
  }
  return out;
}

TuningResult tune(const TuningRequest& request, Measurer& measurer, TuningLog* log, TuningObserver* observer) {
  const TuneOptions& o = request.options;
  if (request.tasks.empty()) throw Error("nothing to tune: no workloads");
  if (o.trials < 0) throw Error("trials must be >= 0, got " + std::to_string(o.trials));
  if (o.batch_size <= 0) throw Error("batch size must be > 0, got " + std::to_string(o.batch_size));
  if (request.task_cap < 0) throw Error("the task cap must be >= 0, got " + std::to_string(request.task_cap));
  for (const TuningTask& t : request.tasks) {
    if (t.weight < 1) throw Error("the weight of " + t.workload.key() + " must be >= 1");
  }
  Engine engine(request, measurer, log, observer);
  if (!request.configs.empty()) {
    if (request.tasks.size() != 1) {
      throw Error("--config names configs of one operator's space; give exactly one --op with it");
    }
    const Workload& w = request.tasks.front().workload;
    std::vector<Task> templates = template_tasks(w, request.target, request.template_name);
    templates.resize(1);
    std::vector<Config> listed;
    for (const std::string& text : request.configs) {
      Config c = templates[0].space->parse(text);
      if (auto why = templates[0].tmpl->check(w, request.target, *templates[0].space, c)) {
        throw Error("--config '" + text + "' is invalid for " + w.key() + ": " + *why);
      }
      listed.push_back(std::move(c));
    }
    engine.set_list(std::move(listed));
    engine.add_task(request.tasks.front(), std::move(templates));
    return engine.run();
  }
  check_tuner_name(request.tuner);
  for (const TuningTask& t : request.tasks) {
    engine.add_task(t, template_tasks(t.workload, request.target, request.template_name));
  }
  return engine.run();
}

TuneSummary tune(const Task& task, Tuner& tuner, Measurer& measurer, TuningLog* log, const TuneOptions& options,
                 const std::function<void(const TuneProgress&)>& on_progress) {
  if (options.trials < 0) throw Error("trials must be >= 0, got " + std::to_string(options.trials));
  if (options.batch_size <= 0) throw Error("batch size must be > 0, got " + std::to_string(options.batch_size));
  TuningRequest request;
  request.tasks = {TuningTask{task.workload, 1}};
  request.target = task.target;
  request.options = options;
  SingleProgress progress(on_progress, options.trials, task.workload.flops());
  Engine engine(request, measurer, log, &progress);
  engine.add_task(request.tasks.front(), {task}, {&tuner});
  TuningResult r = engine.run();
  return r.workloads.front().templates.front();
}

}  // namespace ktune
