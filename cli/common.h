// Pieces the ktune subcommands share: choosing a template, building the
// target, and printing records.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "db/database.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune::cli {

// The named template (checked against the workload's operator), or the
// operator's default CPU template. Throws ktune::Error.
const Template& choose_template(const Workload& w, const std::string& template_name);

// "--format" values accepted by commands that print results.
inline const char* kFormatHelp = "output format: text or json";
// Throws ktune::Error unless format is "text" or "json".
void check_format(const std::string& format);

nlohmann::json record_json(const Record& r);
// "85.31 GFLOP/s, 3.147 ms".
std::string speed_text(const Record& r);

}  // namespace ktune::cli
