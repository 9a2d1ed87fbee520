// The ONNX frontend: a model file -> the tunable tasks in it.
//
// Loads a ModelProto (libonnx), applies --input-shape overrides, runs ONNX
// shape inference, and maps every node ktune can tune to a Workload:
//   Conv (2-D)  group 1 -> conv2d; group == channels -> depthwise_conv2d
//               (multiplier = out / in channels); strides, dilations, pads,
//               auto_pad SAME_UPPER / SAME_LOWER / VALID exactly; the bias
//               is an epilogue (not part of the tuned kernel)
//   MatMul      2-D -> matmul; A batched and B 2-D -> matmul over the
//               flattened rows; both batched -> batch_matmul over the
//               broadcast batch dimensions; 1-D operands as ONNX defines
//   Gemm        transB=1, alpha=beta=1, vector or no C -> dense (bias
//               inside the kernel); otherwise matmul, with A transposed
//               before it (transA) and alpha / beta * C after it
// Identical workloads merge into one task whose weight is its number of
// occurrences. Other nodes are counted by type, and Conv/MatMul/Gemm nodes
// ktune cannot take yet are listed with the reason.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "schedule_space/workload.h"

namespace ktune {

// How one ONNX node maps onto its task's kernel: what happens to its
// operands before the kernel and to the result after it (not tuned).
struct NodeMapping {
  std::string node;      // node name (or "#index op_type" when unnamed)
  std::string op_type;   // Conv | MatMul | Gemm
  Workload workload;
  // Gemm
  bool transpose_a = false;   // A is [K,M]: transposed into the kernel's [M,K]
  bool b_is_nk = false;       // B is [N,K] (transB=1)
  double alpha = 1, beta = 1;
  bool bias_in_kernel = false;  // dense bias = C; else C (if any) is added after
  bool has_c = false;           // Gemm C / Conv B input present
  std::vector<int64_t> c_shape;
  // MatMul: operand shapes (ONNX), for broadcasting the batch dimensions
  std::vector<int64_t> a_shape, b_shape;
};

struct ModelTask {
  Workload workload;
  int weight = 0;                 // occurrences in the model
  std::vector<std::string> nodes; // names of the nodes it stands for
};

struct NotTunable {
  std::string what;   // op type, or "Conv (group=2)" for a known op ktune cannot take
  int count = 0;
};

struct ModelTasks {
  std::string path;
  std::string producer;  // producer_name producer_version
  int64_t opset = 0;     // of the default domain
  std::vector<ModelTask> tasks;        // in first-occurrence order
  std::vector<NodeMapping> nodes;      // every tunable node, graph order
  std::vector<NotTunable> not_tunable; // by first occurrence
  int total_nodes = 0;
};

// Reads and maps a model. input_shapes overrides graph inputs' shapes
// ("name" -> dims), for dynamic or symbolic dimensions. Throws ktune::Error
// naming the problem: not a readable ONNX file, a truncated one, an opset
// this build cannot read, an input with a symbolic dimension and no
// override (naming the input), an unknown override name, a tunable node
// whose shapes inference could not determine (naming the node).
ModelTasks load_onnx_tasks(const std::string& path,
                           const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

// The same for model bytes already in memory (`what` names them in errors).
ModelTasks onnx_tasks_from_bytes(const std::string& bytes, const std::string& what,
                                 const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

// "data=1x3x224x224" -> ("data", {1,3,224,224}); throws ktune::Error.
std::pair<std::string, std::vector<int64_t>> parse_input_shape(const std::string& text);

// The highest default-domain opset this build's ONNX library knows.
int64_t max_supported_opset();

}  // namespace ktune
