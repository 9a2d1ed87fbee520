// Synthetic search landscapes for the cost-model and search tests: a fixed
// target (so spaces do not depend on the test machine), a cost over a real
// template's space whose good configs are near each other, and samples of
// valid configs.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "schedule_space/config_space.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune::testing {

inline Target fixed_avx2_target(int threads) {
  Target t;
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  t.cpu.threads = threads;
  return t;
}

// The same with AVX-512's 16 lanes and 32 vector registers.
inline Target fixed_avx512_target(int threads) {
  Target t = fixed_avx2_target(threads);
  t.cpu.isa = "avx512";
  t.cpu.vector_lanes = 16;
  return t;
}

// Seconds: grows with the distance of every knob's choice from an optimum a
// third of the way into its choices; 1e-3 at the optimum.
inline double synthetic_cost(const ConfigSpace& space, const Config& c) {
  double d = 0;
  for (size_t k = 0; k < space.num_knobs(); ++k) {
    const double size = static_cast<double>(space.knob(k).size());
    if (size <= 1) continue;
    const double x = (static_cast<double>(c.choices[k]) - std::floor(size / 3)) / size;
    d += x * x;
  }
  return 1e-3 * (1 + 10 * d);
}

// `count` distinct random configs the template accepts.
inline std::vector<Config> distinct_valid_configs(const Template& tmpl, const Workload& w, const Target& t,
                                                  const ConfigSpace& space, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Config> out;
  std::set<uint64_t> seen;
  while (out.size() < count) {
    Config c = space.random(rng);
    if (seen.insert(c.index).second && !tmpl.check(w, t, space, c)) out.push_back(c);
  }
  return out;
}

}  // namespace ktune::testing
