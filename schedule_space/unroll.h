// Loop unrolling as a pass over a loop nest, in the manner of TVM's
// auto_unroll_max_step and unroll_explicit knobs (the GPU templates' unroll
// knobs; the CUDA compiler's own heuristics leave small reduction loops
// rolled often enough that the choice is worth searching).
#pragma once

#include <cstdint>

#include "schedule_space/ir.h"

namespace ktune::ir {

// Statements one execution of s runs: stores and barriers count one, a loop
// its extent times its body, an if its larger branch plus one.
int64_t step_count(const Stmt& s);

// Loops that explicit unrolling copies at most: larger unrolled loops keep
// `#pragma unroll` (the compiler unrolls them, the source stays small).
constexpr int64_t kMaxExplicitUnrollSteps = 4096;

// s with every serial loop whose nest runs at most max_step statements marked
// unrolled (max_step 0: none; loops already marked unrolled stay so).
// GPU-bound, parallel and vectorized loops are kept; their bodies are
// unrolled the same way. The loops stay loops (the cost model's features
// see them); a code generator writes them out (see unrolled_copies).
Stmt unroll_loops(const Stmt& s, int64_t max_step);

// The copies of an unrolled loop's body, its variable a constant in each, as
// one seq; null where the loop is better left to the compiler: over
// kMaxExplicitUnrollSteps steps, or declaring a buffer (the copies' buffers
// would clash).
Stmt unrolled_copies(const Stmt& loop);

}  // namespace ktune::ir
