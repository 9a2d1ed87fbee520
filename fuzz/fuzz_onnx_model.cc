// ONNX model bytes through the frontend (`ktune tasks model.onnx`, `ktune
// tune model.onnx`): protobuf parsing, ONNX shape inference and the mapping
// of Conv / MatMul / Gemm nodes to workloads.
#include "frontend/onnx_frontend.h"
#include "fuzz/fuzz_check.h"
#include "schedule_space/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ktune::ModelTasks m = ktune::onnx_tasks_from_bytes(ktune::fuzz::text_of(data, size), "fuzz.onnx");
    int weights = 0;
    for (const ktune::ModelTask& t : m.tasks) {
      ktune::fuzz::expect(t.weight > 0, "a task of weight " + std::to_string(t.weight));
      // A task's workload is a valid one: its key parses back.
      ktune::fuzz::expect(ktune::Workload::parse(t.workload.key()) == t.workload, "task " + t.workload.key());
      weights += t.weight;
    }
    ktune::fuzz::expect(weights == static_cast<int>(m.nodes.size()), "task weights do not add up to the nodes");
  } catch (const ktune::Error&) {
  }
  return 0;
}
