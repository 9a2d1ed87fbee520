// A simulated device: what `ktune worker --simulate` answers instead of
// measuring, for scaling benchmarks of the farm and the search without the
// hardware (or with many more "devices" than there is hardware).
//
// The cost is an analytical model of the candidate's loop-nest Program on
// the item's target, so the search gets a landscape with the structure of
// a real one, which a cost model over program features can learn:
//   - compute: per store, vector instructions (the vectorized loop's width
//     against the target's lanes; gathers where the vector index is
//     strided), multiply-adds over the FMA ports, loads over the load ports
//     (invariant loads hoisted out of unrolled and vectorized loops), and the
//     latency of accumulation chains (independent accumulators: the register
//     tile), with a penalty for register tiles beyond the register file and
//     a cycle per iteration of loops that are not unrolled;
//   - memory: per cache level (L1, L2, the thread's share of L3 and DRAM), the
//     bytes that come in: the footprint of the innermost loop subtree that
//     still fits, once per iteration of the loops around it (so tiles, loop
//     order and packing matter), over that level's bandwidth;
//   - parallelism: the parallel loop's iterations over the target's threads
//     (imbalance costs: 3 iterations on 2 threads take 2 rounds) plus a
//     fork/join per entry, DRAM bandwidth shared;
//   - a deterministic hash term of +-3% of (workload key, template name,
//     config) so that ties break.
// Roofline-combined (the slowest resource plus a part of the others), at
// 3 GHz: the best configs reach half to three quarters of the simulated
// peak, the median random config of a GEMM or a deep conv2d is 3-8x slower
// than the best of 200, the worst 100x and more. On a CUDA target the same
// model reads thread-bound loops as vector lanes (a warp) and block-bound
// loops as parallel iterations over the SMs.
//
// Pure functions: no I/O, thread-safe, deterministic for the same inputs.
#pragma once

#include "measure/measure.h"
#include "schedule_space/config_space.h"

namespace ktune {

// The simulated seconds one call of the candidate takes. space is the
// template's space for the input's workload and target (the one its config
// indexes). Throws ktune::Error with the template's reason when it rejects
// the config (check(), or instantiate()), or when the template is for
// another kind of target.
double simulated_cost(const MeasureInput& input, const ConfigSpace& space);

// The result a worker reports for the input, as a real measurement gives it:
// options.repeat costs of simulated_cost() (only the first when
// options.best_so_far_s says the candidate is hopeless, "cut short" as the
// runner says it), or kInvalidConfig with the reason for a config the
// template rejects. timestamp is now; worker is left empty (the caller's
// name); build and run seconds are 0.
MeasureResult simulate(const MeasureInput& input, const ConfigSpace& space, const MeasureOptions& options);
// The same, building the template's space for the input first.
MeasureResult simulate(const MeasureInput& input, const MeasureOptions& options = {});

}  // namespace ktune
