// Baselines: the vendor libraries as bench Contenders (bench.h), each called
// the way a framework would call it. `ktune bench` takes its headline ratio
// against the fastest primary variant of all of them.
//
//   OpenBLAS (optional, KTUNE_HAVE_OPENBLAS):
//     matmul -> cblas_sgemm;
//     dense -> sgemm with W transposed (bias copied into Y first, inside the
//       timing, then beta = 1) and, at batch 1, also sgemv;
//     batch_matmul -> cblas_sgemm_batch where this OpenBLAS has it
//       (KTUNE_HAVE_CBLAS_SGEMM_BATCH, OpenBLAS >= 0.3.28; variant
//       "sgemm_batch"), else one sgemm per batch (variant "sgemm loop").
//   oneDNN (optional, KTUNE_HAVE_DNNL; the 2.x API of Debian's libdnnl-dev):
//     matmul, dense, batch_matmul -> the matmul primitive (variant "matmul"):
//       src and dst in the workload's plain row-major layout (batch_matmul as
//       3-D [b,m,k]·[b,k,n] tensors, one primitive for the whole batch);
//       dense's constant W[out,in] as weights [in,out] in the layout oneDNN
//       chooses (format_tag::any), reordered once outside the timing, and
//       its bias as the primitive's bias.
//     conv2d, depthwise_conv2d (groups = channels) -> a direct
//       forward-inference convolution. Two variants: "blocked" (primary):
//       memory descriptors with format_tag::any, so oneDNN chooses its
//       preferred layouts; src and weights are reordered once and dst back to
//       NCHW outside the timing. "nchw" (information, not a baseline): src and
//       dst in plain NCHW like ktune's kernels, so any activation transform
//       oneDNN needs is timed, as ktune's own packing is; weights are still
//       reordered once, outside the timing.
//
// Construction is the untimed preparation (plans, reorders, thread count);
// each baseline reads the BenchData's inputs, which must outlive it. Both
// libraries run with exactly `threads` threads: openblas_set_num_threads, and
// omp_set_num_threads for oneDNN (the Debian build uses the OpenMP runtime,
// the same libgomp as ktune's kernels).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "measure/bench.h"

namespace ktune {

struct Baselines {
  std::vector<std::unique_ptr<Contender>> contenders;
  // One line per library that would have a baseline for this workload but
  // is not in this build, e.g. "OpenBLAS baseline not available: ktune was
  // built without OpenBLAS (install libopenblas-dev and rebuild)".
  std::vector<std::string> missing;
};

// The baselines for data's workload, prepared to run with `threads` threads
// (>= 1). Throws ktune::Error if a library refuses the workload.
Baselines make_baselines(const BenchData& data, int threads);

// Whether this build has each library.
bool have_openblas();
bool have_onednn();

}  // namespace ktune
