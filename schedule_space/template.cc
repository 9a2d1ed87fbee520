#include "schedule_space/template.h"

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
      &depthwise_conv2d_cpu_template(),
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

const Template& find_template(const std::string& name) {
  std::string known;
  for (const Template* t : all_templates()) {
    if (t->name() == name) return *t;
    known += (known.empty() ? "" : ", ") + t->name();
  }
  throw Error("unknown template '" + name + "'; known templates: " + known);
}

}  // namespace ktune
