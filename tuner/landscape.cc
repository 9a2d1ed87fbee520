#include "tuner/landscape.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "schedule_space/config_resolver.h"
#include "schedule_space/error.h"
#include "tuner/transfer.h"

namespace ktune {

double Landscape::top_seconds(double share) const {
  std::vector<double> ok;
  for (const LandscapeConfig& c : configs) {
    if (c.ok()) ok.push_back(c.seconds);
  }
  if (ok.empty()) return 0;
  std::sort(ok.begin(), ok.end());
  const size_t n = static_cast<size_t>(std::ceil(share * static_cast<double>(ok.size())));
  return ok[std::clamp<size_t>(n, 1, ok.size()) - 1];
}

size_t Landscape::valid() const {
  return static_cast<size_t>(std::count_if(configs.begin(), configs.end(), [](const auto& c) { return c.ok(); }));
}

double Landscape::random_median_trials(double seconds) const {
  const double n = static_cast<double>(configs.size());
  const double k = static_cast<double>(
      std::count_if(configs.begin(), configs.end(), [&](const auto& c) { return c.ok() && c.seconds <= seconds; }));
  if (k == 0) return NAN;
  // P(no hit in the first t draws) = prod_{i<t} (n - k - i) / (n - i).
  double miss = 1;
  for (double t = 1; t <= n; ++t) {
    miss *= std::max(0.0, n - k - (t - 1)) / (n - (t - 1));
    if (miss <= 0.5) return t;
  }
  return n;
}

LandscapeSet LandscapeSet::parse(const std::string& text) {
  LandscapeSet set;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  auto fail = [&](const std::string& why) -> void {
    throw Error("landscapes: line " + std::to_string(number) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("not JSON: ") + e.what());
    }
    if (!j.is_object()) fail("expected a JSON object");
    try {
      if (number == 1) {
        if (j.value("format", "") != "ktune-landscapes" || j.value("version", 0) != 1) {
          fail("not a ktune landscapes file (expected format \"ktune-landscapes\", version 1)");
        }
        set.device = DeviceDescription::from_json(j.at("device"));
        continue;
      }
      Landscape l;
      l.workload_key = j.at("workload").get<std::string>();
      l.template_name = j.at("template").get<std::string>();
      l.template_version = j.at("version").get<int>();
      for (const auto& row : j.at("configs")) {
        if (!row.is_array() || row.size() != 3) fail("a config is not [index, seconds or null, error code]");
        LandscapeConfig c;
        c.index = row[0].get<uint64_t>();
        const int error = row[2].get<int>();
        if (error < 0 || error > static_cast<int>(MeasureError::kLast)) {
          fail("unknown error code " + std::to_string(error));
        }
        c.error = static_cast<MeasureError>(error);
        if (c.ok()) {
          c.seconds = row[1].get<double>();
          if (!(c.seconds > 0) || !std::isfinite(c.seconds)) fail("a valid config's seconds must be positive");
        }
        l.configs.push_back(c);
      }
      if (l.configs.empty()) fail("landscape of " + l.workload_key + " has no configs");
      set.landscapes.push_back(std::move(l));
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("bad field: ") + e.what());
    }
  }
  if (number == 0) throw Error("landscapes: empty file");
  return set;
}

LandscapeSet LandscapeSet::load(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) throw Error("landscapes: cannot open " + path);
  std::string text;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  int code = 0;
  const std::string why = n < 0 ? gzerror(f, &code) : "";
  gzclose(f);
  if (n < 0) throw Error("landscapes: cannot read " + path + ": " + why);
  try {
    return parse(text);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

int ReplayRun::trials_to(double seconds) const {
  for (size_t i = 0; i < best_so_far.size(); ++i) {
    if (best_so_far[i] <= seconds) return static_cast<int>(i) + 1;
  }
  return -1;
}

namespace {

Task task_of(const LandscapeSet& set, const Landscape& l) {
  const Workload w = Workload::parse(l.workload_key);
  const Template& tmpl = resolve_template(l.template_name, l.template_version, w).get();
  return Task::make(w, set.device.target, tmpl);
}

std::shared_ptr<const std::vector<Config>> pool_of(const Task& task, const Landscape& l) {
  auto pool = std::make_shared<std::vector<Config>>();
  for (const LandscapeConfig& c : l.configs) {
    if (c.index >= task.space->size()) {
      throw Error("landscape of " + l.workload_key + ": config #" + std::to_string(c.index) + " is outside " +
                  l.template_name + "'s space on " + task.target.device_key());
    }
    pool->push_back(task.space->get(c.index));
  }
  return pool;
}

// The other landscapes' valid configs as records, for a transfer model.
std::vector<Record> history_without(const LandscapeSet& set, size_t which, bool same_template) {
  // As tuning reads the database's history (TuningLog::device_history): the
  // task's operator first. TransferModel takes the first max_records:
  // interleave the landscapes (by a hash of the config index) so that each
  // of them is in it.
  const OpKind op = Workload::parse(set.landscapes[which].workload_key).op();
  std::vector<std::pair<std::pair<bool, uint64_t>, Record>> keyed;
  for (size_t i = 0; i < set.landscapes.size(); ++i) {
    const Landscape& l = set.landscapes[i];
    if (i == which || (same_template && l.template_name != set.landscapes[which].template_name)) continue;
    const bool other_op = Workload::parse(l.workload_key).op() != op;
    for (const LandscapeConfig& c : l.configs) {
      if (!c.ok()) continue;
      Record r;
      r.workload_key = l.workload_key;
      r.device_key = set.device.target.device_key();
      r.template_name = l.template_name;
      r.template_version = l.template_version;
      r.config_index = c.index;
      r.result.costs = {c.seconds};
      keyed.emplace_back(std::make_pair(other_op, c.index * 0x9e3779b97f4a7c15ull), std::move(r));
    }
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Record> out;
  out.reserve(keyed.size());
  for (auto& [key, r] : keyed) out.push_back(std::move(r));
  return out;
}

}  // namespace

std::shared_ptr<const TransferModel> landscape_transfer_model(const LandscapeSet& set, size_t which,
                                                              bool same_template) {
  if (which >= set.landscapes.size()) throw Error("transfer: no landscape #" + std::to_string(which));
  if (same_template) {
    auto model = TransferModel::train(history_without(set, which, true), set.device.target);
    if (model) return model;
  }
  return TransferModel::train(history_without(set, which, false), set.device.target);
}

ReplayRun replay(const LandscapeSet& set, size_t which, const ReplayOptions& options) {
  if (which >= set.landscapes.size()) throw Error("replay: no landscape #" + std::to_string(which));
  if (options.trials < 1 || options.batch_size < 1) throw Error("replay: trials and batch size must be positive");
  const Landscape& l = set.landscapes[which];
  const Task task = task_of(set, l);
  const auto pool = pool_of(task, l);
  std::unique_ptr<Tuner> tuner;
  if (options.strategy == "random") {
    std::vector<Config> order = *pool;
    std::mt19937_64 rng(options.seed);
    std::shuffle(order.begin(), order.end(), rng);
    tuner = make_list_tuner(task, std::move(order));
  } else if (options.strategy == "xgb" || options.strategy == "xgb+transfer") {
    XgbTunerOptions o = options.xgb;
    o.pool = pool;
    o.base = nullptr;
    if (options.strategy == "xgb+transfer") {
      o.base = options.base ? options.base : landscape_transfer_model(set, which);
      if (!o.base) throw Error("replay: too few records in the other landscapes for a transfer model");
    }
    tuner = make_xgb_tuner(task, options.seed, std::move(o));
  } else {
    throw Error("replay: unknown strategy '" + options.strategy + "' (random, xgb, xgb+transfer)");
  }
  std::unordered_map<uint64_t, const LandscapeConfig*> recorded;
  for (const LandscapeConfig& c : l.configs) recorded.emplace(c.index, &c);
  ReplayRun run;
  double best = std::numeric_limits<double>::infinity();
  while (static_cast<int>(run.best_so_far.size()) < options.trials && tuner->has_next() &&
         !(best <= options.stop_at)) {
    const int n = std::min(options.batch_size, options.trials - static_cast<int>(run.best_so_far.size()));
    const std::vector<Config> batch = tuner->next_batch(n);
    if (batch.empty()) break;
    std::vector<MeasureResult> results;
    for (const Config& c : batch) {
      const LandscapeConfig& r = *recorded.at(c.index);
      MeasureResult m;
      m.error = r.error;
      if (r.ok()) {
        m.costs = {r.seconds};
        best = std::min(best, r.seconds);
      }
      results.push_back(std::move(m));
      run.best_so_far.push_back(best);
    }
    tuner->update(batch, results);
  }
  return run;
}

double top_k_recall(const LandscapeSet& set, size_t which, cost_model::FeatureKind features, size_t k,
                    uint64_t seed) {
  if (which >= set.landscapes.size()) throw Error("recall: no landscape #" + std::to_string(which));
  const Landscape& l = set.landscapes[which];
  const Task task = task_of(set, l);
  std::vector<const LandscapeConfig*> ok;
  for (const LandscapeConfig& c : l.configs) {
    if (c.ok()) ok.push_back(&c);
  }
  std::mt19937_64 rng(seed);
  std::shuffle(ok.begin(), ok.end(), rng);
  const size_t half = ok.size() / 2;
  if (half < k || ok.size() - half < k) throw Error("recall: too few valid configs in " + l.workload_key);
  cost_model::FeatureExtractor fx(task.workload, task.target, *task.tmpl, *task.space, features);
  auto rows = [&](size_t from, size_t to) {
    cost_model::Matrix x;
    for (size_t i = from; i < to; ++i) x.push_back(fx.get(task.space->get(ok[i]->index)));
    return x;
  };
  double top = 0;
  for (size_t i = 0; i < half; ++i) top = std::max(top, 1.0 / ok[i]->seconds);
  std::vector<float> y;
  for (size_t i = 0; i < half; ++i) y.push_back(static_cast<float>(1.0 / ok[i]->seconds / top));
  cost_model::XgbOptions mo = XgbTunerOptions{}.model;
  mo.seed = seed;
  cost_model::XgbModel model(mo);
  model.fit(rows(0, half), y);
  const std::vector<float> predicted = model.predict(rows(half, ok.size()));
  std::vector<size_t> by_truth(ok.size() - half), by_model(ok.size() - half);
  for (size_t i = 0; i < by_truth.size(); ++i) by_truth[i] = by_model[i] = i;
  std::stable_sort(by_truth.begin(), by_truth.end(),
                   [&](size_t a, size_t b) { return ok[half + a]->seconds < ok[half + b]->seconds; });
  std::stable_sort(by_model.begin(), by_model.end(), [&](size_t a, size_t b) { return predicted[a] > predicted[b]; });
  size_t hits = 0;
  for (size_t i = 0; i < k; ++i) {
    if (std::find(by_model.begin(), by_model.begin() + static_cast<std::ptrdiff_t>(k), by_truth[i]) !=
        by_model.begin() + static_cast<std::ptrdiff_t>(k)) {
      ++hits;
    }
  }
  return static_cast<double>(hits) / static_cast<double>(k);
}

}  // namespace ktune
