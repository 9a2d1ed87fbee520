// CUDA C code generator: a loop-nest Program with GPU-bound loops -> one
// __global__ kernel and its launch configuration.
//
// Loops of kind kBlockX/Y/Z and kThreadX/Y/Z are not loops: their variable
// is blockIdx.* / threadIdx.* and their extent is the grid / block size (each
// GPU-bound kind may appear once, and must enclose all other code). Buffers
// of Scope::kShared become __shared__ arrays (one per block), kRegister and
// kStack local arrays (per thread); barrier() is __syncthreads(). Unrolled
// loops get `#pragma unroll`, or are written out as copies where the program
// asks for explicit unrolling; serial loops stay loops. A vectorized loop of
// 2 or 4 steps around a copy becomes a float2/float4 access where the code
// generator can prove it contiguous and aligned (else an error). Integer
// division and modulo floor, as in the IR (C's operators where both sides
// are provably non-negative, small helpers otherwise). Integers are 64-bit
// where an index can exceed 2^31, 32-bit otherwise. The kernel is
//
//   extern "C" __global__ void <name>(const float* __restrict__ in0, ...,
//                                     float* __restrict__ out)
//
// with the inputs in Program::params order (workspace is not supported on
// the GPU yet) and needs no headers, so NVRTC compiles it as is.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "schedule_space/ir.h"

namespace ktune {

struct CudaKernel {
  std::string name;    // the __global__ function
  std::string source;  // CUDA C, no #include
  std::array<int64_t, 3> grid{1, 1, 1};
  std::array<int64_t, 3> block{1, 1, 1};
  int64_t shared_bytes = 0;  // static __shared__ bytes
  int64_t threads_per_block() const { return block[0] * block[1] * block[2]; }
};

// Throws ktune::Error if the program cannot run on a GPU as described above.
// The kernel is named `name`, by default "ktune_" and the program's name
// (a library of many kernels names each its own).
CudaKernel emit_cuda(const ir::Program& program, const std::string& name = "");

}  // namespace ktune
