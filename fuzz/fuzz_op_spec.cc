// Op specs as users type them (ktune tune --op, ktune space --op) and as
// workload keys arrive in records, jobs and runner requests; and model input
// shapes (--input-shape NAME=1x3x224x224).
#include "frontend/onnx_frontend.h"
#include "fuzz/fuzz_check.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune {
namespace {

void op_spec(const std::string& text) {
  Workload w;
  try {
    w = Workload::parse(text);
  } catch (const Error&) {
    return;
  }
  // The canonical key of a parsed workload parses back to the same workload.
  const std::string key = w.key();
  Workload again;
  try {
    again = Workload::parse(key);
  } catch (const Error& e) {
    fuzz::broken("the key '" + key + "' of '" + text + "' does not parse: " + e.what());
  }
  fuzz::expect(again == w && again.key() == key, "'" + text + "' -> '" + key + "' -> '" + again.key() + "'");
  fuzz::expect(w.flops() > 0, "no flops in " + key);
  for (const TensorSpec& t : w.inputs()) fuzz::expect(t.elements() > 0, "empty input " + t.name + " of " + key);
  fuzz::expect(w.output().elements() > 0, "empty output of " + key);
  // What `ktune space --op` does next: the templates that take it and their
  // spaces (a validated workload is one every template can answer about).
  static const Target cpu = fuzz::cpu_target();
  for (const Template* t : templates_for(w, TargetKind::kCpu)) {
    try {
      ConfigSpace space = t->space(w, cpu);
      fuzz::expect(space.size() > 0, t->name() + " has an empty space for " + key);
      const Config first = space.get(0);
      fuzz::expect(space.parse(space.describe(first)) == first, t->name() + ": config 0 of " + key + " does not read back");
    } catch (const Error&) {
      // A space too large to index is refused with a message.
    }
  }
}

void input_shape(const std::string& text) {
  try {
    auto [name, dims] = parse_input_shape(text);
    for (int64_t d : dims) fuzz::expect(d > 0, "a dimension " + std::to_string(d) + " in '" + text + "'");
  } catch (const Error&) {
  }
}

}  // namespace
}  // namespace ktune

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = ktune::fuzz::text_of(data, size);
  ktune::op_spec(text);
  ktune::input_shape(text);
  return 0;
}
