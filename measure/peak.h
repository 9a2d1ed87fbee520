// The machine's measured fp32 FMA peak, the yardstick of "% of peak".
//
// A generated kernel (built by the Builder with the target's compiler and
// -march flags, so it uses the vectors the tuned kernels use) runs 12
// independent chains of vector FMAs of the target's lane count on each of
// `threads` threads: enough chains to cover the FMA latency times the FMA
// units of any current core. The best of several ~50 ms samples over about
// duration_s is the peak: the rate this machine sustains for code that does
// nothing but FMAs, which no real kernel exceeds.
#pragma once

#include <cstdint>
#include <string>

#include "measure/builder.h"
#include "schedule_space/target.h"

namespace ktune {

// The kernel's source (kernel ABI, codegen_cpp.h): each call does
// `iterations` rounds of 12 vector FMAs per thread; output[t] gets thread t's
// sum, so nothing is optimized away.
std::string fma_peak_source(int vector_lanes, int threads, int64_t iterations);

// Builds and runs the microbenchmark with target.cpu.threads threads; returns
// GFLOP/s (an FMA counts two). Throws ktune::Error if it does not build.
double measure_fma_peak(const Target& target, const Builder& builder, double duration_s = 0.2);

}  // namespace ktune
