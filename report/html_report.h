// `ktune report`: tuning results as one self-contained HTML page.
//
// The page needs nothing but a browser: no network, no external scripts,
// fonts or stylesheets; CSS is inline and the charts are inline SVG, so the
// file can be mailed, archived or attached to a CI run as it is.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "db/database.h"

namespace ktune {

// One workload to report on.
struct ReportTask {
  std::string workload_key;            // as stored in the database (Workload::key())
  int weight = 1;                      // occurrences in the model
  std::optional<double> baseline_s{};  // vendor library time (OpenBLAS/oneDNN), if known
  std::string baseline_name{};         // e.g. "oneDNN"
};

// What the report covers.
struct ReportInput {
  std::string title = "ktune tuning report";
  std::string device_key;         // empty: every device key in the database (one section each)
  std::vector<ReportTask> tasks;  // empty: every workload of the device key in the database, weight 1
  std::string model_name;         // shown in the header if not empty
};

// Renders the report: a header (title, model, device keys, generation time,
// tool_version()), then per device key a table with one row per task (trials
// measured, best time and GFLOP/s from Database::best, speedup over the
// untuned default and over the baseline, weight x best time) and a total row,
// and two inline SVG charts: tuning curves (best-so-far GFLOP/s per search
// trial; <svg class="chart curves">) and speedups (<svg class="chart
// speedups">). The "default" of a workload is its first search record, the
// template's first analytical seed: the config ktune would run untuned. An
// inline script sets data-report-ok="1" on <body> once it has found every
// section's charts, so a headless browser's DOM dump shows that the page ran.
//
// A task without records on a device key is listed as not measured. With an
// empty device_key, device keys that have none of the tasks are left out.
// Throws ktune::Error naming the database and device key if there is nothing
// to report: no records for the device key, or none for any of the tasks.
std::string render_html_report(const Database& db, const ReportInput& input);

}  // namespace ktune
