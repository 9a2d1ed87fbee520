// Computing a mapped ONNX node with a ktune kernel: the layout work around
// the tuned computation (Gemm's transposes, alpha and beta * C, Conv's bias,
// MatMul's broadcast batch dimensions), as a runtime embedding ktune's
// kernels would do it. Used to check imported models against ONNX's own
// expected outputs.
#pragma once

#include <functional>
#include <vector>

#include "frontend/onnx_frontend.h"

namespace ktune {

// The tuned computation: the workload's inputs (Workload::inputs() order,
// row-major) -> its output.
using KernelFn = std::function<std::vector<float>(const std::vector<std::vector<float>>& inputs)>;

// The node's output (row-major, ONNX's output shape) from its ONNX inputs
// (row-major, the shapes the mapping was made for; absent optional inputs
// left out). Throws ktune::Error if an input has the wrong size.
std::vector<float> run_mapped_node(const NodeMapping& node, const std::vector<std::vector<float>>& onnx_inputs,
                                   const KernelFn& kernel);

}  // namespace ktune
