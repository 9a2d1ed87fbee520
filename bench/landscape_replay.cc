// The landscape benchmark (issue 18): search strategies replayed on
// recorded landscapes (tuner/landscape.h), where noise cannot decide.
//
//   ktune-landscape-replay LANDSCAPES [--seeds 20] [--threads 2] [--features curve]
//       [--objective rank:pairwise] [--warmup 16] [--epsilon 0.05] [--no-recall]
//
// The xgb flags set the tuner's options for the replay (XgbTunerOptions):
// the experiments behind its defaults.
//
// For every landscape and seed: random, xgb and xgb+transfer (from the
// other landscapes' records), each until it has measured the landscape's
// best config (the whole sample at most). Prints markdown: per landscape,
// the median over seeds of the trials to reach the recorded top 1% and the
// best, the ratios the targets are stated in, and the cost model's
// top-10 recall on held-out configs per feature kind. Deterministic: the
// same file and seeds print the same tables.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "schedule_space/error.h"
#include "tuner/landscape.h"

namespace {

using namespace ktune;

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char* kStrategies[] = {"random", "xgb", "xgb+transfer"};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("search strategies replayed on recorded landscapes");
  std::string path, features = "curve";
  int seeds = 20, threads = 2, batch_size = ReplayOptions{}.batch_size;
  bool no_recall = false;
  XgbTunerOptions xgb;
  app.add_option("landscapes", path, "landscapes file (bench/landscapes/landscapes.jsonl.gz)")->required();
  app.add_option("--seeds", seeds, "seeds per strategy and landscape")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "landscapes replayed at once")->check(CLI::PositiveNumber);
  app.add_option("--features", features, "xgb feature kind: itervar, curve, knob, itervar+knob");
  app.add_option("--objective", xgb.model.objective, "xgb objective: rank:pairwise or reg:squarederror");
  app.add_option("--warmup", xgb.warmup, "xgb: random configs measured before its own model");
  app.add_option("--batch-size", batch_size, "configs measured between two trainings of the model (tuning's --batch-size)")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", xgb.model.rounds, "xgb: boosting rounds per training");
  app.add_option("--max-depth", xgb.model.max_depth, "xgb: tree depth");
  app.add_option("--eta", xgb.model.eta, "xgb: learning rate");
  app.add_option("--epsilon", xgb.epsilon, "xgb: share of each batch drawn at random");
  app.add_option("--base-share", xgb.base_share,
                 "xgb+transfer: share of a batch the base model picks before the task's own model");
  app.add_flag("--no-recall", no_recall, "skip the cost model's recall table");
  std::string transfer = "margin";
  bool same_template = false;
  app.add_flag("--same-template", same_template,
               "xgb+transfer: learn from the landscapes of the same template only, where there are some");
  app.add_option("--transfer", transfer,
                 "xgb+transfer, after the warm-up: margin (the base model is the task model's base margin), "
                 "first (the task's own model alone) or joint (one model on the history's rows and the task's)");
  CLI11_PARSE(app, argc, argv);
  try {
    xgb.features = cost_model::parse_feature_kind(features);
    if (transfer == "margin") {
      xgb.transfer = XgbTunerOptions::Transfer::kMargin;
    } else if (transfer == "first") {
      xgb.transfer = XgbTunerOptions::Transfer::kFirst;
    } else if (transfer == "joint") {
      xgb.transfer = XgbTunerOptions::Transfer::kJoint;
    } else {
      throw Error("--transfer: expected margin, first or joint, got '" + transfer + "'");
    }
    const LandscapeSet set = LandscapeSet::load(path);
    const size_t units = set.landscapes.size();
    // trials[unit][strategy][seed] to the top 1% and to the best.
    struct Cell {
      std::vector<double> top1, best;
    };
    std::vector<std::vector<Cell>> cells(units, std::vector<Cell>(3, Cell{std::vector<double>(seeds),
                                                                          std::vector<double>(seeds)}));
    std::vector<std::pair<size_t, int>> jobs;  // (unit, strategy), all seeds
    for (size_t u = 0; u < units; ++u) {
      for (int s = 0; s < 3; ++s) jobs.emplace_back(u, s);
    }
    std::atomic<size_t> next{0};
    std::mutex failed_mu;
    std::string failed;
    auto worker = [&] {
      for (size_t j; (j = next++) < jobs.size();) {
        const auto [u, s] = jobs[j];
        const Landscape& l = set.landscapes[u];
        try {
          const auto base = s == 2 ? landscape_transfer_model(set, u, same_template) : nullptr;
          if (s == 2 && !base) {  // too few other records: no transfer column
            std::fill(cells[u][s].top1.begin(), cells[u][s].top1.end(), NAN);
            std::fill(cells[u][s].best.begin(), cells[u][s].best.end(), NAN);
            continue;
          }
          for (int seed = 0; seed < seeds; ++seed) {
            ReplayOptions o;
            o.base = base;
            o.xgb = xgb;
            o.strategy = kStrategies[s];
            o.batch_size = batch_size;
            o.seed = static_cast<uint64_t>(seed) + 1;
            o.trials = static_cast<int>(l.configs.size());
            o.stop_at = l.top_seconds(0);
            const ReplayRun run = replay(set, u, o);
            cells[u][s].top1[seed] = run.trials_to(l.top_seconds(0.01));
            cells[u][s].best[seed] = run.trials_to(l.top_seconds(0));
          }
        } catch (const Error& e) {
          std::lock_guard lock(failed_mu);
          failed = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    if (!failed.empty()) throw Error(failed);

    std::printf("Device: %s; xgb: %s features, %s (%d rounds, depth %d, eta %.2f), warm-up %d, batch %d, epsilon %.2f, "
                "transfer %s\n\n",
                set.device.target.device_key().c_str(), features.c_str(), xgb.model.objective.c_str(),
                xgb.model.rounds, xgb.model.max_depth, xgb.model.eta, xgb.warmup, batch_size,
                xgb.epsilon,
                (transfer + (same_template ? ", same template" : "") + ", base share " +
                 std::to_string(xgb.base_share).substr(0, 4))
                    .c_str());
    std::printf("Trials to reach the recorded top 1%% / the best config, median over %d seeds "
                "(a strategy searches the recorded sample alone):\n\n", seeds);
    std::printf("| workload | template | configs (valid) | random, exact | random, replayed | xgb | xgb+transfer | "
                "xgb / random | transfer / xgb |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    std::vector<double> xgb_vs_random, transfer_vs_xgb, xgb_vs_random_best, transfer_vs_xgb_best;
    double worst_transfer = 0;
    for (size_t u = 0; u < units; ++u) {
      const Landscape& l = set.landscapes[u];
      double m1[3], mb[3];
      for (int s = 0; s < 3; ++s) {
        m1[s] = median(cells[u][s].top1);
        mb[s] = median(cells[u][s].best);
      }
      // Random's exact medians: replayed random runs over a few seeds are noisy.
      const double r1 = l.random_median_trials(l.top_seconds(0.01)), rb = l.random_median_trials(l.top_seconds(0));
      xgb_vs_random.push_back(m1[1] / r1);
      transfer_vs_xgb.push_back(m1[2] / m1[1]);
      xgb_vs_random_best.push_back(mb[1] / rb);
      transfer_vs_xgb_best.push_back(mb[2] / mb[1]);
      worst_transfer = std::max(worst_transfer, m1[2] / m1[1]);
      std::printf("| %s | %s | %zu (%zu) | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %.2f / %.2f | "
                  "%.2f / %.2f |\n",
                  l.workload_key.c_str(), l.template_name.c_str(), l.configs.size(), l.valid(), r1, rb, m1[0], mb[0],
                  m1[1], mb[1], m1[2], mb[2], m1[1] / r1, mb[1] / rb, m1[2] / m1[1], mb[2] / mb[1]);
    }
    std::printf("\nxgb / random is over random's exact median. Median over the landscapes: xgb / random %.2f (top 1%%), %.2f (best); "
                "transfer / xgb %.2f (top 1%%), %.2f (best); worst transfer / xgb (top 1%%) %.2f.\n",
                median(xgb_vs_random), median(xgb_vs_random_best), median(transfer_vs_xgb),
                median(transfer_vs_xgb_best), worst_transfer);
    std::printf("Targets: xgb / random <= 0.33, transfer / xgb <= 0.5, worst transfer / xgb <= 1.10.\n\n");

    if (no_recall) return 0;
    std::printf("Cost model top-10 recall on held-out configs (trained on a random half of the valid "
                "configs, mean over 5 splits):\n\n| workload | itervar | curve | knob | itervar+knob |\n"
                "| --- | --- | --- | --- | --- |\n");
    const cost_model::FeatureKind kinds[] = {cost_model::FeatureKind::kItervar, cost_model::FeatureKind::kCurve,
                                             cost_model::FeatureKind::kKnob, cost_model::FeatureKind::kItervarKnob};
    std::vector<double> mean_recall(4, 0);
    for (size_t u = 0; u < units; ++u) {
      std::printf("| %s |", set.landscapes[u].workload_key.c_str());
      for (int k = 0; k < 4; ++k) {
        double sum = 0;
        for (uint64_t split = 1; split <= 5; ++split) sum += top_k_recall(set, u, kinds[k], 10, split);
        std::printf(" %.2f |", sum / 5);
        mean_recall[k] += sum / 5 / static_cast<double>(units);
      }
      std::printf("\n");
    }
    std::printf("| mean | %.2f | %.2f | %.2f | %.2f |\n", mean_recall[0], mean_recall[1], mean_recall[2],
                mean_recall[3]);
  } catch (const Error& e) {
    std::fprintf(stderr, "ktune-landscape-replay: %s\n", e.what());
    return 1;
  }
  return 0;
}
