// Private to export/: which kernel each exported workload gets (shared by
// the CPU library and the CUDA library), and the small file helpers both
// writers use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "db/database.h"
#include "export/cpp_export.h"
#include "schedule_space/config_space.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune::export_detail {

struct ExportChoice {
  Workload workload;
  const Template* tmpl = nullptr;
  Config config;
  CppExportKernel info;
};

struct ExportPlan {
  std::string device_key;
  std::string description;  // the device, in words
  Target target;
  std::vector<ExportChoice> kernels;
};

// The device (options.device_key, else the database's only one) and, for
// each requested workload (default: every one tuned there), its best valid
// record's config, else the config tuned for the nearest workload of the
// operator where it fits, else the template's default. Throws ktune::Error
// naming the problem (an unknown device key, several to choose from,
// nothing tuned).
ExportPlan choose_export_kernels(const Database& db, const CppExportOptions& options);

// The exported dispatchers' operator code and 15-value shape of a workload.
int op_code(OpKind op);
std::vector<int64_t> shape_array(const Workload& w);

// The README's markdown table of the exported kernels.
std::string kernel_table(const std::vector<CppExportKernel>& kernels);

std::string replace_all(std::string text, const std::string& from, const std::string& to);
// Creates an exported tree's directories (src, include, cmake) under root and
// removes a previous export's kernel files from src; throws ktune::Error if
// it cannot.
void prepare_tree(const std::string& root);
// Writes a file whole; throws ktune::Error if it cannot.
void write_file(const std::string& path, const std::string& text);

}  // namespace ktune::export_detail
