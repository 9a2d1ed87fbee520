// The CPU templates, one accessor per template; template.cc registers them.
#pragma once

#include "schedule_space/template.h"

namespace ktune {

const Template& matmul_cpu_template();
const Template& dense_cpu_template();
const Template& batch_matmul_cpu_template();
const Template& conv2d_cpu_template();
// 1x1 conv2d (pad 0, any stride) as a batched GEMM; unsupported() for others.
const Template& conv2d_1x1_cpu_template();
// conv2d straight in NCHW, vectorized along output rows, for few input
// channels (c < 16, e.g. a network's first layer); unsupported() for others.
const Template& conv2d_nchw_cpu_template();
const Template& depthwise_conv2d_cpu_template();
// Depthwise conv2d computed in NCHW from a padded per-channel plane in cache.
const Template& depthwise_conv2d_nchw_cpu_template();

// GPU (CUDA) templates.
const Template& matmul_cuda_template();
const Template& dense_cuda_template();
const Template& batch_matmul_cuda_template();
const Template& conv2d_cuda_template();
const Template& depthwise_conv2d_cuda_template();

}  // namespace ktune
