// C++ code generator for CPU targets.
//
// The emitted translation unit needs only a C++17 compiler (and OpenMP when
// the program has a parallel loop) and exports the kernel ABI below. Inputs
// and output are dense row-major float arrays; `workspace` is one block of
// workspace_floats() floats, 64-byte aligned, owned by the caller, holding
// the Program's workspace buffers in order (each 64-byte aligned).
//
//   extern "C" int     ktune_abi_version(void);          // kKernelAbiVersion
//   extern "C" int64_t ktune_workspace_floats(void);
//   extern "C" void    ktune_prepare(const float* const* inputs, float* workspace);
//   extern "C" void    ktune_run(const float* const* inputs, float* output, float* workspace);
//
// ktune_prepare is called once (untimed) before any ktune_run; ktune_run is
// the timed computation and may be called many times.
//
// Vectorized loops become explicit vector code with GCC/Clang vector
// extensions of the loop's width (a power of two): every load in the body is
// classified by its index's coefficient on the loop variable — 0: broadcast,
// 1 (in the innermost dimension): contiguous vector load, 2: two vector loads
// and an even/odd lane pick, otherwise a gather built lane by lane; the store
// must be contiguous. A select(cond, load, 0) or a guard `if (cond) store`
// whose cond depends on the loop variable and on nothing else unknown at that
// point (unrolled loops' variables are known) becomes a masked load / store
// that does not touch the excluded lanes' memory (AVX-512 or AVX2 masked
// moves, else lane by lane); a select whose cond is not known per lane is a
// gather. Conditions that the enclosing loops' bounds decide are folded away.
// A vectorized loop whose body cannot be emitted this way is a ktune::Error
// (templates must not produce one), never a silent scalar loop. Unrolled
// loops are emitted unrolled; parallel loops become `#pragma omp parallel
// for` with the Program's thread count.
#pragma once

#include <string>

#include "schedule_space/ir.h"

namespace ktune {

inline constexpr int kKernelAbiVersion = 1;

// Throws ktune::Error if the program cannot be emitted.
std::string emit_cpp(const ir::Program& program);

// For a library holding many kernels (`ktune export --format cpp`): the four
// ABI functions are named <symbol_prefix>abi_version etc. instead of
// ktune_abi_version, and, if threads_hook is set, parallel loops ask
// `extern "C" int <threads_hook>(int tuned)` for their thread count.
struct CppEmitOptions {
  std::string symbol_prefix = "ktune_";
  std::string threads_hook;
};
std::string emit_cpp(const ir::Program& program, const CppEmitOptions& options);

}  // namespace ktune
