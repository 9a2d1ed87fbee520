// The user program of bench/export_timing.sh: times every kernel of an
// exported library through its public C API (plans: weights packed once),
// the way ktune's runner timed it while tuning — calls batched so one
// repeat lasts >= 20 ms, 10 repeats, the mean — and prints a markdown row
// per kernel with the time measured when it was tuned.
#include <ktune_kernels.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  auto random = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
  };
  std::printf("| kernel | workload | tuned ms | exported ms (mean / median of 10) | exported / tuned |\n"
              "| --- | --- | --- | --- | --- |\n");
  for (int i = 0; i < ktune_kernels_count(); ++i) {
    ktune_kernel_desc d;
    ktune_kernel_describe(i, &d);
    const int64_t* s = d.shape;
    std::vector<float> act, c0, c1, out;
    ktune_plan* plan = nullptr;
    switch (d.op) {
      case 0: {
        ktune_matmul_shape sh = {s[0], s[1], s[2]};
        act = random(s[0] * s[2]), c0 = random(s[2] * s[1]), out.resize(s[0] * s[1]);
        plan = ktune_plan_matmul(&sh, c0.data());
        break;
      }
      case 1: {
        ktune_dense_shape sh = {s[0], s[1], s[2], static_cast<int32_t>(s[3])};
        act = random(s[0] * s[1]), c0 = random(s[2] * s[1]), c1 = random(s[2]), out.resize(s[0] * s[2]);
        plan = ktune_plan_dense(&sh, c0.data(), c1.data());
        break;
      }
      case 2: {
        ktune_batch_matmul_shape sh = {s[0], s[1], s[2], s[3]};
        act = random(s[0] * s[1] * s[3]), c0 = random(s[0] * s[3] * s[2]), out.resize(s[0] * s[1] * s[2]);
        plan = ktune_plan_batch_matmul(&sh, c0.data());
        break;
      }
      default: {
        const int64_t oh = (s[2] + s[9] + s[11] - s[13] * (s[5] - 1) - 1) / s[7] + 1;
        const int64_t ow = (s[3] + s[10] + s[12] - s[14] * (s[6] - 1) - 1) / s[8] + 1;
        const bool dw = d.op == 4;
        const int64_t k = dw ? s[1] * s[4] : s[4];
        act = random(s[0] * s[1] * s[2] * s[3]), c0 = random(k * (dw ? 1 : s[1]) * s[5] * s[6]);
        out.resize(s[0] * k * oh * ow);
        if (dw) {
          ktune_depthwise_conv2d_shape sh = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                                             s[8], s[9], s[10], s[11], s[12], s[13], s[14]};
          plan = ktune_plan_depthwise_conv2d(&sh, c0.data());
        } else {
          ktune_conv2d_shape sh = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                                   s[8], s[9], s[10], s[11], s[12], s[13], s[14]};
          plan = ktune_plan_conv2d(&sh, c0.data());
        }
      }
    }
    using clock = std::chrono::steady_clock;
    auto once = [&] { ktune_plan_run(plan, act.data(), out.data()); };
    once();
    // Calls per repeat: enough for 20 ms.
    int number = 1;
    while (true) {
      const auto t0 = clock::now();
      for (int n = 0; n < number; ++n) once();
      if (std::chrono::duration<double>(clock::now() - t0).count() >= 0.02) break;
      number *= 2;
    }
    std::vector<double> per_call;
    for (int r = 0; r < 10; ++r) {
      const auto t0 = clock::now();
      for (int n = 0; n < number; ++n) once();
      per_call.push_back(std::chrono::duration<double>(clock::now() - t0).count() / number);
    }
    double mean = 0;
    for (double t : per_call) mean += t / per_call.size();
    std::sort(per_call.begin(), per_call.end());
    const double median = per_call[per_call.size() / 2];
    std::printf("| %d | %s | %.4f | %.4f / %.4f | %.2f |\n", i, d.workload, d.tuned_seconds * 1e3, mean * 1e3,
                median * 1e3, d.tuned_seconds > 0 ? mean / d.tuned_seconds : 0.0);
    ktune_plan_free(plan);
  }
  return 0;
}
