#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string_view>

#include "schedule_space/error.h"

namespace ktune {

namespace {

// ---------------------------------------------------------------------------
// What the report shows, read from the database.

struct CurvePoint {
  int64_t trial = 0;  // 1-based, in the order the search records were measured
  double gflops = 0;  // best so far, from this trial on
};

// One task on one device key.
struct TaskResult {
  ReportTask task;
  int64_t records = 0;  // of any kind
  int64_t trials = 0;   // search records
  int64_t failed = 0;   // failed search records
  std::optional<Record> best{};
  // The first search record's mean cost: the untuned default. Empty if it
  // failed or there is no search record.
  std::optional<double> default_s{};
  std::vector<CurvePoint> curve{};  // a point where the best so far improved

  std::optional<double> best_s() const {
    if (!best) return std::nullopt;
    return best->result.mean_cost();
  }
  std::optional<double> speedup_over_default() const {
    if (!best || !default_s) return std::nullopt;
    return *default_s / *best_s();
  }
  std::optional<double> speedup_over_baseline() const {
    if (!best || !task.baseline_s) return std::nullopt;
    return *task.baseline_s / *best_s();
  }
};

struct DeviceSection {
  std::string device_key;
  std::vector<TaskResult> tasks{};
};

TaskResult summarize(const Database& db, const std::string& device_key, const ReportTask& task) {
  TaskResult r{.task = task};
  std::vector<Record> history = db.history(task.workload_key, device_key);
  std::reverse(history.begin(), history.end());  // oldest first
  r.records = static_cast<int64_t>(history.size());
  double best_so_far = 0;
  for (const Record& rec : history) {
    if (rec.kind != "search") continue;
    ++r.trials;
    if (!rec.result.ok()) {
      ++r.failed;
      continue;
    }
    if (r.trials == 1) r.default_s = rec.result.mean_cost();
    if (rec.gflops() > best_so_far) {
      best_so_far = rec.gflops();
      r.curve.push_back({r.trials, best_so_far});
    }
  }
  r.best = db.best(task.workload_key, device_key);
  return r;
}

void check_tasks(const std::vector<ReportTask>& tasks) {
  for (const ReportTask& t : tasks) {
    if (t.workload_key.empty()) throw Error("report: a task has an empty workload key");
    if (t.weight < 1) {
      throw Error("report: task " + t.workload_key + " has weight " + std::to_string(t.weight) +
                  "; a weight counts occurrences and must be >= 1");
    }
    if (t.baseline_s && !(*t.baseline_s > 0 && std::isfinite(*t.baseline_s))) {
      throw Error("report: task " + t.workload_key +
                  " has a baseline time that is not a positive finite number of seconds");
    }
  }
}

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

std::vector<DeviceSection> collect(const Database& db, const ReportInput& input) {
  check_tasks(input.tasks);
  const std::vector<std::string> present = db.device_keys();
  if (present.empty()) throw Error("nothing to report: " + db.path() + " holds no measurements");
  const std::vector<std::string> device_keys =
      input.device_key.empty() ? present : std::vector<std::string>{input.device_key};
  std::vector<DeviceSection> sections;
  for (const std::string& device_key : device_keys) {
    std::vector<ReportTask> tasks = input.tasks;
    if (tasks.empty()) {
      for (std::string& key : db.workload_keys(device_key)) tasks.push_back({.workload_key = std::move(key)});
    }
    DeviceSection section{.device_key = device_key};
    bool any_measured = false;
    for (const ReportTask& task : tasks) {
      section.tasks.push_back(summarize(db, device_key, task));
      any_measured = any_measured || section.tasks.back().records > 0;
    }
    if (any_measured) sections.push_back(std::move(section));
  }
  if (!sections.empty()) return sections;
  const std::string on = input.device_key.empty() ? " on any device key" : " for device key " + input.device_key;
  if (input.tasks.empty()) {
    throw Error("nothing to report: " + db.path() + " has no records" + on +
                " (it has records for: " + joined(present) + ")");
  }
  throw Error("nothing to report: none of the " + std::to_string(input.tasks.size()) +
              " workloads has records" + on + " in " + db.path());
}

// ---------------------------------------------------------------------------
// Text.

// Safe in element content and in quoted attribute values.
std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Milliseconds with four significant digits (at most six decimals), never
// in exponent notation.
std::string ms_text(double seconds) {
  double ms = seconds * 1e3;
  int decimals = ms > 0 ? 3 - static_cast<int>(std::floor(std::log10(ms))) : 3;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 6), ms);
  return buf;
}

constexpr const char* kMissing = "\u2014";  // an em dash: no value

std::string speedup_text(std::optional<double> speedup) {
  return speedup ? format("%.2f\u00d7", *speedup) : kMissing;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Tableau 10: distinguishable, also in print.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

const char* task_color(size_t index) { return kPalette[index % std::size(kPalette)]; }

std::string task_label(size_t index, const TaskResult& t) {
  return "#" + std::to_string(index + 1) + " " + t.task.workload_key;
}

// ---------------------------------------------------------------------------
// The table.

// Totals of weight x time over the tasks that have both a best and the other
// time, so that a task without a default (or baseline) does not skew them.
struct Total {
  int tasks = 0;
  double tuned_s = 0;
  double other_s = 0;
  std::optional<double> speedup() const {
    if (tasks == 0) return std::nullopt;
    return other_s / tuned_s;
  }
};

struct SectionTotals {
  int weight = 0;
  int64_t trials = 0;
  int tuned_tasks = 0;  // with a best
  double tuned_s = 0;   // sum of weight x best time
  Total vs_default;
  Total vs_baseline;
};

SectionTotals totals_of(const DeviceSection& section) {
  SectionTotals s;
  for (const TaskResult& t : section.tasks) {
    s.weight += t.task.weight;
    s.trials += t.trials;
    if (!t.best) continue;
    double tuned = t.task.weight * *t.best_s();
    ++s.tuned_tasks;
    s.tuned_s += tuned;
    if (t.default_s) {
      ++s.vs_default.tasks;
      s.vs_default.tuned_s += tuned;
      s.vs_default.other_s += t.task.weight * *t.default_s;
    }
    if (t.task.baseline_s) {
      ++s.vs_baseline.tasks;
      s.vs_baseline.tuned_s += tuned;
      s.vs_baseline.other_s += t.task.weight * *t.task.baseline_s;
    }
  }
  return s;
}

bool has_baselines(const DeviceSection& section) {
  return std::any_of(section.tasks.begin(), section.tasks.end(),
                     [](const TaskResult& t) { return t.task.baseline_s.has_value(); });
}

std::string cell(const std::string& text, const char* cls = "num") {
  return std::string("<td class=\"") + cls + "\">" + text + "</td>";
}

std::string best_title(const Record& best) {
  return "template " + best.template_name + " v" + std::to_string(best.template_version) +
         ", config #" + std::to_string(best.config_index) + " (" + best.kind +
         " measurement): " + best.config_text;
}

void append_table(std::string& out, const DeviceSection& section) {
  const bool baselines = has_baselines(section);
  out += "<table class=\"tasks\">\n<thead><tr><th>#</th><th>workload</th><th class=\"num\">weight</th>"
         "<th class=\"num\">trials</th><th class=\"num\">best (ms)</th><th class=\"num\">GFLOP/s</th>"
         "<th class=\"num\">vs default</th>";
  if (baselines) out += "<th class=\"num\">vs baseline</th>";
  out += "<th class=\"num\">weight \u00d7 best (ms)</th></tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < section.tasks.size(); ++i) {
    const TaskResult& t = section.tasks[i];
    out += "<tr class=\"task\"><td class=\"index\"><span class=\"swatch\" style=\"background:";
    out += task_color(i);
    out += "\"></span>" + std::to_string(i + 1) + "</td>";
    out += cell(escape(t.task.workload_key), "key");
    out += cell(std::to_string(t.task.weight));
    std::string trials = std::to_string(t.trials);
    if (t.failed > 0) trials += " <span class=\"note\">(" + std::to_string(t.failed) + " failed)</span>";
    out += cell(trials);
    if (t.best) {
      std::string best_ms = ms_text(*t.best_s());
      if (t.best->result.costs.size() >= 3) {
        best_ms += format(" <span class=\"note\">\u00b1%.1f%%</span>", 100 * t.best->result.spread());
      }
      out += "<td class=\"num\" title=\"" + escape(best_title(*t.best)) + "\">" + best_ms + "</td>";
      out += cell(format("%.2f", t.best->gflops()));
    } else {
      std::string why = t.records == 0 ? "not measured" : "no valid measurement";
      out += "<td class=\"num missing\" colspan=\"2\">" + why + "</td>";
    }
    out += cell(speedup_text(t.speedup_over_default()));
    if (baselines) {
      std::string vs = speedup_text(t.speedup_over_baseline());
      if (t.task.baseline_s) {
        vs += " <span class=\"note\">" + escape(t.task.baseline_name.empty() ? "baseline" : t.task.baseline_name) +
              " " + ms_text(*t.task.baseline_s) + " ms</span>";
      }
      out += cell(vs);
    }
    out += cell(t.best ? ms_text(t.task.weight * *t.best_s()) : kMissing);
    out += "</tr>\n";
  }
  const SectionTotals s = totals_of(section);
  out += "</tbody>\n<tfoot><tr class=\"total\"><td></td><td class=\"key\">total (estimated)</td>";
  out += cell(std::to_string(s.weight)) + cell(std::to_string(s.trials)) + cell("") + cell("");
  out += cell(speedup_text(s.vs_default.speedup()));
  if (baselines) out += cell(speedup_text(s.vs_baseline.speedup()));
  out += cell(s.tuned_tasks > 0 ? ms_text(s.tuned_s) : kMissing);
  out += "</tr></tfoot>\n</table>\n";

  // The totals in words, saying which tasks they cover.
  const int n = static_cast<int>(section.tasks.size());
  auto coverage = [&](int tasks) {
    return tasks == n ? std::string() : " (over the " + std::to_string(tasks) + " of " + std::to_string(n) + " tasks that have both)";
  };
  out += "<p class=\"summary\">Estimated total: <strong>" + ms_text(s.tuned_s) + " ms</strong> with the tuned configs";
  if (s.tuned_tasks < n) out += " (" + std::to_string(s.tuned_tasks) + " of " + std::to_string(n) + " tasks tuned)";
  if (s.vs_default.tasks > 0) {
    out += "; " + ms_text(s.vs_default.tuned_s) + " ms vs " + ms_text(s.vs_default.other_s) +
           " ms with the default configs, " + speedup_text(s.vs_default.speedup()) + " faster" +
           coverage(s.vs_default.tasks);
  }
  if (s.vs_baseline.tasks > 0) {
    out += "; " + ms_text(s.vs_baseline.tuned_s) + " ms vs " + ms_text(s.vs_baseline.other_s) +
           " ms with the baseline libraries, " + speedup_text(s.vs_baseline.speedup()) + coverage(s.vs_baseline.tasks);
  }
  out += ".</p>\n";
}

// ---------------------------------------------------------------------------
// The charts: inline SVG, coordinates in a fixed viewBox scaled by CSS.

constexpr double kChartWidth = 760;

std::string num(double v) { return format("%.1f", v); }

// A round step (1, 2 or 5 times a power of ten) that splits [0, max] into
// about `count` intervals.
double nice_step(double max, int count) {
  double raw = max / count;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / magnitude;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
}

struct Axis {
  double max = 1;
  double step = 1;
};

Axis axis_for(double max_value, int count, bool integer) {
  if (!(max_value > 0)) max_value = 1;
  double step = nice_step(max_value, count);
  if (integer) step = std::max(1.0, std::round(step));
  return {std::ceil(max_value / step - 1e-9) * step, step};
}

std::string text_at(double x, double y, const std::string& text, const char* anchor = "start",
                    const char* cls = nullptr) {
  std::string s = "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\"";
  if (cls) s += std::string(" class=\"") + cls + "\"";
  return s + ">" + text + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const char* cls) {
  return "<line class=\"" + std::string(cls) + "\" x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" +
         num(x2) + "\" y2=\"" + num(y2) + "\"/>";
}

std::string svg_open(const char* cls, double height, const std::string& label) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart " + std::string(cls) + "\" viewBox=\"0 0 " +
         num(kChartWidth) + " " + num(height) + "\" role=\"img\" aria-label=\"" + escape(label) + "\">\n";
}

// Best-so-far GFLOP/s against trial number, one step line per task.
void append_curves(std::string& out, const DeviceSection& section) {
  const double left = 64, right = 20, top = 16, plot_h = 260, bottom = 44, legend_line = 16;
  const double plot_w = kChartWidth - left - right;
  const double height = top + plot_h + bottom + legend_line * section.tasks.size() + 8;
  int64_t max_trials = 1;
  double max_gflops = 0;
  for (const TaskResult& t : section.tasks) {
    max_trials = std::max(max_trials, t.trials);
    for (const CurvePoint& p : t.curve) max_gflops = std::max(max_gflops, p.gflops);
  }
  const Axis xa = axis_for(static_cast<double>(max_trials), 8, true);
  const Axis ya = axis_for(max_gflops, 5, false);
  auto x_of = [&](double trial) { return left + plot_w * trial / xa.max; };
  auto y_of = [&](double gflops) { return top + plot_h * (1 - gflops / ya.max); };

  out += svg_open("curves", height, "tuning curves on " + section.device_key);
  for (double v = 0; v <= ya.max + ya.step / 2; v += ya.step) {
    out += line(left, y_of(v), left + plot_w, y_of(v), "grid");
    out += text_at(left - 6, y_of(v) + 4, format("%g", v), "end");
  }
  for (double v = 0; v <= xa.max + xa.step / 2; v += xa.step) {
    out += line(x_of(v), top + plot_h, x_of(v), top + plot_h + 4, "axis");
    out += text_at(x_of(v), top + plot_h + 17, format("%g", v), "middle");
  }
  out += line(left, top, left, top + plot_h, "axis") + line(left, top + plot_h, left + plot_w, top + plot_h, "axis");
  out += text_at(left + plot_w / 2, top + plot_h + 34, "trial (search measurements, in the order measured)", "middle",
                 "label");
  out += "<text class=\"label\" text-anchor=\"middle\" transform=\"translate(16 " + num(top + plot_h / 2) +
         ") rotate(-90)\">best GFLOP/s so far</text>\n";
  if (max_gflops == 0) {
    out += text_at(left + plot_w / 2, top + plot_h / 2, "no successful search measurement", "middle", "missing");
  }
  for (size_t i = 0; i < section.tasks.size(); ++i) {
    const TaskResult& t = section.tasks[i];
    if (t.curve.empty()) continue;
    // A step line: flat until the trial that improved on the best.
    std::string points;
    auto add = [&](double trial, double gflops) { points += num(x_of(trial)) + "," + num(y_of(gflops)) + " "; };
    add(static_cast<double>(t.curve.front().trial), t.curve.front().gflops);
    for (size_t k = 1; k < t.curve.size(); ++k) {
      add(static_cast<double>(t.curve[k].trial), t.curve[k - 1].gflops);
      add(static_cast<double>(t.curve[k].trial), t.curve[k].gflops);
    }
    add(static_cast<double>(t.trials), t.curve.back().gflops);
    points.pop_back();
    out += "<polyline class=\"curve\" stroke=\"" + std::string(task_color(i)) + "\" points=\"" + points +
           "\"><title>" + escape(task_label(i, t)) + format(": %.2f GFLOP/s", t.curve.back().gflops) +
           "</title></polyline>\n";
  }
  double y = top + plot_h + bottom + 12;
  for (size_t i = 0; i < section.tasks.size(); ++i, y += legend_line) {
    const TaskResult& t = section.tasks[i];
    out += "<rect x=\"" + num(left) + "\" y=\"" + num(y - 9) + "\" width=\"14\" height=\"10\" fill=\"" +
           task_color(i) + "\"/>";
    std::string label = escape(task_label(i, t));
    if (t.curve.empty()) label += t.records == 0 ? " (not measured)" : " (no successful search measurement)";
    out += text_at(left + 20, y, label, "start", "legend") + "\n";
  }
  out += "</svg>\n";
}

// Per task, horizontal bars: speedup over the default config and, where
// known, over the baseline library; a dashed line marks 1x.
void append_speedups(std::string& out, const DeviceSection& section) {
  const bool baselines = has_baselines(section);
  const double left = 110, right = 70, top = 30, label_h = 16, bar_h = 14, bar_gap = 4, group_gap = 10,
               bottom = 36;
  const double plot_w = kChartWidth - left - right;
  double max_speedup = 1;
  double plot_h = 0;
  for (const TaskResult& t : section.tasks) {
    max_speedup = std::max(max_speedup, t.speedup_over_default().value_or(0));
    max_speedup = std::max(max_speedup, t.speedup_over_baseline().value_or(0));
    plot_h += label_h + (bar_h + bar_gap) * (t.task.baseline_s ? 2 : 1) + group_gap;
  }
  const Axis xa = axis_for(max_speedup, 6, false);
  auto x_of = [&](double speedup) { return left + plot_w * speedup / xa.max; };
  const double height = top + plot_h + bottom;

  out += svg_open("speedups", height, "speedups on " + section.device_key);
  // Legend.
  out += "<rect class=\"bar default\" x=\"" + num(left) + "\" y=\"8\" width=\"14\" height=\"10\"/>";
  out += text_at(left + 20, 17, "over the default config", "start", "legend");
  if (baselines) {
    out += "<rect class=\"bar baseline\" x=\"" + num(left + 200) + "\" y=\"8\" width=\"14\" height=\"10\"/>";
    out += text_at(left + 220, 17, "over the baseline library", "start", "legend");
  }
  out += "\n";
  for (double v = 0; v <= xa.max + xa.step / 2; v += xa.step) {
    out += line(x_of(v), top, x_of(v), top + plot_h, "grid");
    out += text_at(x_of(v), top + plot_h + 16, format("%g\u00d7", v), "middle");
  }
  out += line(x_of(1), top, x_of(1), top + plot_h, "one") + "\n";
  double y = top;
  auto bar = [&](const char* cls, const std::string& name, std::optional<double> speedup,
                 const std::string& why_missing) {
    out += text_at(left - 6, y + bar_h - 3, name, "end");  // escaped by the caller
    if (speedup) {
      out += "<rect class=\"bar " + std::string(cls) + "\" x=\"" + num(left) + "\" y=\"" + num(y) + "\" width=\"" +
             num(x_of(*speedup) - left) + "\" height=\"" + num(bar_h) + "\"/>";
      out += text_at(x_of(*speedup) + 4, y + bar_h - 3, speedup_text(speedup));
    } else {
      out += text_at(left + 4, y + bar_h - 3, why_missing, "start", "missing");
    }
    out += "\n";
    y += bar_h + bar_gap;
  };
  for (size_t i = 0; i < section.tasks.size(); ++i) {
    const TaskResult& t = section.tasks[i];
    out += text_at(left + 4, y + 12, escape(task_label(i, t)), "start", "legend") + "\n";
    y += label_h;
    std::string why = t.records == 0 ? "not measured" : !t.best ? "no valid measurement" : "the default config failed";
    bar("default", "vs default", t.speedup_over_default(), why);
    if (t.task.baseline_s) {
      std::string name = "vs " + (t.task.baseline_name.empty() ? std::string("baseline") : t.task.baseline_name);
      bar("baseline", escape(name), t.speedup_over_baseline(), t.records == 0 ? "not measured" : "no valid measurement");
    }
    y += group_gap;
  }
  out += line(left, top, left, top + plot_h, "axis") + "\n</svg>\n";
}

// ---------------------------------------------------------------------------
// The page.

constexpr const char* kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2em auto; max-width: 64em; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; font-family: ui-monospace, monospace; font-size: 1.2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; margin: 0; }
dl.meta dt { color: #666; }
dl.meta dd { margin: 0; font-family: ui-monospace, monospace; }
table.tasks { border-collapse: collapse; width: 100%; font-size: 0.9em; }
table.tasks th, table.tasks td { border-bottom: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
table.tasks th.num { text-align: right; }
table.tasks td.index { white-space: nowrap; }
table.tasks td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.tasks td.key { font-family: ui-monospace, monospace; word-break: break-all; }
table.tasks tfoot td { font-weight: bold; border-top: 2px solid #999; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.note, .missing, p.notes { color: #777; }
svg.chart { width: 100%; height: auto; margin: 0.5em 0 1em; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #333; }
svg.chart text.legend { font-family: ui-monospace, monospace; }
svg.chart text.missing { fill: #999; font-style: italic; }
svg.chart text.label { font-size: 12px; fill: #555; }
svg.chart line.axis { stroke: #333; }
svg.chart line.grid { stroke: #e5e5e5; }
svg.chart line.one { stroke: #333; stroke-dasharray: 4 3; }
svg.chart polyline.curve { fill: none; stroke-width: 2; }
svg.chart rect.bar.default { fill: #4e79a7; }
svg.chart rect.bar.baseline { fill: #f28e2b; }
)css";

// Proves, in a headless browser's DOM dump, that the page's script ran and
// found every section's charts.
constexpr const char* kCheckScript = R"js(
(function () {
  var sections = document.querySelectorAll("section.device");
  var ok = sections.length > 0;
  sections.forEach(function (s) {
    if (!s.querySelector("svg.chart.curves") || !s.querySelector("svg.chart.speedups")) ok = false;
  });
  if (ok) document.body.setAttribute("data-report-ok", "1");
})();
)js";

void append_header(std::string& out, const Database& db, const ReportInput& input,
                   const std::vector<DeviceSection>& sections) {
  out += "<header>\n<h1>" + escape(input.title) + "</h1>\n<dl class=\"meta\">\n";
  auto item = [&](const std::string& name, const std::string& value) {
    out += "<dt>" + name + "</dt><dd>" + escape(value) + "</dd>\n";
  };
  if (!input.model_name.empty()) item("model", input.model_name);
  std::vector<std::string> keys;
  for (const DeviceSection& s : sections) keys.push_back(s.device_key);
  item(keys.size() == 1 ? "device key" : "device keys", joined(keys));
  item("database", db.path());
  item("generated", utc_now());
  item("tool", tool_version());
  out += "</dl>\n</header>\n";
}

void append_section(std::string& out, const DeviceSection& section) {
  out += "<section class=\"device\">\n<h2>" + escape(section.device_key) + "</h2>\n";
  append_table(out, section);
  out += "<h3>Tuning curves</h3>\n";
  append_curves(out, section);
  out += "<h3>Speedups</h3>\n";
  append_speedups(out, section);
  out += "</section>\n";
}

}  // namespace

std::string render_html_report(const Database& db, const ReportInput& input) {
  const std::vector<DeviceSection> sections = collect(db, input);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
                    escape(input.title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  append_header(out, db, input, sections);
  for (const DeviceSection& section : sections) append_section(out, section);
  out += "<p class=\"notes\">Best: the record marked best after re-measurement, else the fastest valid one. "
         "Default: the first config measured for the workload (its template's first analytical seed, "
         "what ktune runs untuned); vs default = default time / best time, vs baseline = library time / "
         "best time (&gt; 1: ktune is faster). Trials count search measurements, failed ones included. "
         "Weight \u00d7 best estimates the time of all occurrences in one run.</p>\n";
  out += std::string("<script>") + kCheckScript + "</script>\n</body>\n</html>\n";
  return out;
}

}  // namespace ktune
