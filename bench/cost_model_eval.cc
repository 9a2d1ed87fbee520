// How well the cost model ranks real measurements it has not seen, per
// feature kind, objective and hyperparameters: the experiment behind the
// xgb tuner's defaults.
//
//   ktune-cost-model-eval DB [TRAIN]   (default TRAIN 64)
//
// For every (workload, device, template) in DB with at least TRAIN + 16
// valid "search" records, in measurement order: the first TRAIN train the
// model, the rest are held out; prints the Spearman correlation between
// predicted and measured throughput on the held-out records, the mean over
// the tasks, and the training time. Feed it a database of *random* search
// runs (e.g. bench/search_efficiency.sh's runs/random-1.db), so that the
// training set is an unbiased sample of the space.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "db/database.h"
#include "db/record_config.h"
#include "schedule_space/error.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "tuner/tuner.h"

namespace {

using namespace ktune;

struct TaskData {
  std::string name;
  std::vector<std::vector<float>> features[4];  // itervar, curve, knob, itervar+knob
  std::vector<float> throughput;
};

// The device key's thread count ("cpu/.../2t"), for the target the records
// were measured on.
int threads_of(const std::string& device_key) {
  const size_t slash = device_key.rfind('/');
  return std::atoi(device_key.c_str() + slash + 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DB [TRAIN]\n", argv[0]);
    return 2;
  }
  const size_t train = argc > 2 ? static_cast<size_t>(std::atoi(argv[2])) : 64;
  try {
    auto db = Database::open(argv[1]);
    // The records of this machine, at every thread count.
    std::map<std::tuple<std::string, std::string, std::string>, std::vector<Record>> tasks;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int threads = 1; threads <= cores; ++threads) {
      std::vector<Record> all = db->device_history(detect_cpu_target(threads).device_key(), "", "", 1000000);
      for (auto it = all.rbegin(); it != all.rend(); ++it) {  // oldest first
        if (it->kind == "search" && template_current(*it)) {
          tasks[{it->workload_key, it->device_key, it->template_name}].push_back(*it);
        }
      }
    }
    std::vector<TaskData> data;
    for (auto& [key, records] : tasks) {
      if (records.size() < train + 16) continue;
      const auto& [workload_key, device_key, template_name] = key;
      const Workload w = Workload::parse(workload_key);
      const Target t = detect_cpu_target(threads_of(device_key));
      const Template& tmpl = find_template(template_name);
      const ConfigSpace space = tmpl.space(w, t);
      TaskData d;
      d.name = workload_key + " " + device_key;
      const cost_model::FeatureKind kinds[4] = {cost_model::FeatureKind::kItervar, cost_model::FeatureKind::kCurve,
                                                cost_model::FeatureKind::kKnob, cost_model::FeatureKind::kItervarKnob};
      for (int k = 0; k < 4; ++k) {
        cost_model::FeatureExtractor fx(w, t, tmpl, space, kinds[k]);
        for (const Record& r : records) d.features[k].push_back(fx.get(space.get(r.config_index)));
      }
      for (const Record& r : records) d.throughput.push_back(static_cast<float>(1.0 / r.result.mean_cost()));
      data.push_back(std::move(d));
    }
    if (data.empty()) {
      std::fprintf(stderr, "no task in %s has %zu valid search records\n", argv[1], train + 16);
      return 1;
    }
    std::printf("%zu tasks, %zu training records each, the rest held out\n\n", data.size(), train);
    std::printf("| features | objective | rounds | max_depth | eta | mean Spearman | min | fit ms |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    const char* kind_names[4] = {"itervar", "curve", "knob", "itervar+knob"};
    struct Setting {
      int kind;
      const char* objective;
      int rounds, depth;
      double eta;
    };
    std::vector<Setting> settings;
    for (int kind = 0; kind < 4; ++kind) settings.push_back({kind, "rank:pairwise", 80, 6, 0.2});
    settings.push_back({0, "reg:squarederror", 80, 6, 0.2});
    for (int rounds : {20, 40, 160}) settings.push_back({0, "rank:pairwise", rounds, 6, 0.2});
    for (int depth : {3, 4, 8}) settings.push_back({0, "rank:pairwise", 80, depth, 0.2});
    for (double eta : {0.1, 0.3}) settings.push_back({0, "rank:pairwise", 80, 6, eta});
    for (const Setting& s : settings) {
      double sum = 0, lowest = 1, ms = 0;
      for (const TaskData& d : data) {
        cost_model::Matrix x_train(d.features[s.kind].begin(), d.features[s.kind].begin() + train);
        cost_model::Matrix x_test(d.features[s.kind].begin() + train, d.features[s.kind].end());
        std::vector<float> y_train(d.throughput.begin(), d.throughput.begin() + train);
        std::vector<float> y_test(d.throughput.begin() + train, d.throughput.end());
        float top = 0;
        for (float y : y_train) top = std::max(top, y);
        for (float& y : y_train) y /= top;
        cost_model::XgbOptions o;
        o.objective = s.objective;
        o.rounds = s.rounds;
        o.max_depth = s.depth;
        o.eta = s.eta;
        cost_model::XgbModel model(o);
        const auto t0 = std::chrono::steady_clock::now();
        model.fit(x_train, y_train);
        ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const double rho = cost_model::spearman(model.predict(x_test), y_test);
        sum += rho;
        lowest = std::min(lowest, rho);
      }
      std::printf("| %s | %s | %d | %d | %g | %.3f | %.3f | %.1f |\n", kind_names[s.kind], s.objective, s.rounds,
                  s.depth, s.eta, sum / static_cast<double>(data.size()), lowest,
                  ms / static_cast<double>(data.size()));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "ktune-cost-model-eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
