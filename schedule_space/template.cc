#include "schedule_space/template.h"

#include <algorithm>

#include "schedule_space/error.h"
#include "schedule_space/templates/templates.h"

namespace ktune {

const std::vector<const Template*>& all_templates() {
  // Within one (operator, target kind) the first registered is the default.
  static const std::vector<const Template*> registry = {
      &matmul_cpu_template(),
      &dense_cpu_template(),
      &batch_matmul_cpu_template(),
      &conv2d_cpu_template(),
      &conv2d_1x1_cpu_template(),
      &conv2d_nchw_cpu_template(),
      // NCHW first: its masked window beats the blocked template's pack and
      // transposed write on every stride-1 and stride-2 shape measured.
      &depthwise_conv2d_nchw_cpu_template(),
      &depthwise_conv2d_cpu_template(),
      &matmul_cuda_template(),
      &dense_cuda_template(),
      &batch_matmul_cuda_template(),
      &conv2d_cuda_template(),
      &depthwise_conv2d_cuda_template(),
  };
  return registry;
}

std::vector<const Template*> templates_for(OpKind op, TargetKind kind) {
  std::vector<const Template*> found;
  for (const Template* t : all_templates()) {
    if (t->op() == op && t->target_kind() == kind) found.push_back(t);
  }
  return found;
}

std::vector<const Template*> templates_for(const Workload& w, TargetKind kind) {
  // Specialized templates take a subset of their operator's shapes, and
  // where they apply they beat the general template of the operator.
  static const std::vector<const Template*> specialized = {&conv2d_1x1_cpu_template(), &conv2d_nchw_cpu_template()};
  std::vector<const Template*> found;
  for (const Template* t : templates_for(w.op(), kind)) {
    if (t->unsupported(w)) continue;
    const bool special = std::find(specialized.begin(), specialized.end(), t) != specialized.end();
    found.insert(special ? found.begin() : found.end(), t);
  }
  return found;
}

const Template& find_template(const std::string& name) {
  std::string known;
  for (const Template* t : all_templates()) {
    if (t->name() == name) return *t;
    known += (known.empty() ? "" : ", ") + t->name();
  }
  throw Error("unknown template '" + name + "'; known templates: " + known);
}

std::vector<const Template*> templates_to_tune(const Workload& w, const std::string& template_name,
                                               std::optional<TargetKind> kind) {
  if (!template_name.empty()) {
    const Template& t = find_template(template_name);
    if (t.op() != w.op()) {
      throw Error("template " + template_name + " is for " + std::string(op_name(t.op())) + " but the operator is " +
                  std::string(op_name(w.op())));
    }
    if (auto why = t.unsupported(w)) throw Error("template " + template_name + ": " + *why);
    if (kind && t.target_kind() != *kind) {
      throw Error("template " + template_name + " is for " +
                  (t.target_kind() == TargetKind::kCuda ? "CUDA GPUs" : "CPUs") + ", not for this target");
    }
    return {&t};
  }
  const TargetKind k = kind.value_or(TargetKind::kCpu);
  std::vector<const Template*> found = templates_for(w, k);
  if (found.empty()) {
    throw Error(std::string("no ") + (k == TargetKind::kCpu ? "CPU" : "CUDA") + " template for " +
                std::string(op_name(w.op())));
  }
  return found;
}

}  // namespace ktune
