#include "db/jsonl.h"

#include <cmath>
#include <istream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>

#include "db/record_config.h"
#include "db/stored_device.h"
#include "schedule_space/config_resolver.h"
#include "schedule_space/device_description.h"
#include "schedule_space/error.h"
#include "schedule_space/workload.h"

namespace ktune {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kRecordFormat = "ktune-record";
constexpr const char* kBestPackFormat = "ktune-best-pack";
constexpr const char* kImportJob = "import";

// Why a line or an entry is refused; the caller says where.
struct Refusal {
  std::string reason;
};

// A stored value in a message: short, whatever it is.
std::string shown(const Json& v) {
  std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

// Reads typed fields of one JSON object, refusing what is missing or of the
// wrong type by name.
class Fields {
 public:
  explicit Fields(const Json& j) : j_(j) {}

  const Json& get(const std::string& name) const {
    auto it = j_.find(name);
    if (it == j_.end()) throw Refusal{"missing field '" + name + "'"};
    return *it;
  }
  std::string text(const std::string& name) const {
    const Json& v = get(name);
    if (!v.is_string()) throw expected(name, "a string", v);
    return v.get<std::string>();
  }
  bool boolean(const std::string& name) const {
    const Json& v = get(name);
    if (!v.is_boolean()) throw expected(name, "true or false", v);
    return v.get<bool>();
  }
  int64_t integer(const std::string& name) const {
    const Json& v = get(name);
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw Refusal{"field '" + name + "': " + shown(v) + " is too large"};
    }
    if (!v.is_number_integer()) throw expected(name, "an integer", v);
    return v.get<int64_t>();
  }
  int small_integer(const std::string& name) const {
    const int64_t n = integer(name);
    if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) {
      throw Refusal{"field '" + name + "': " + std::to_string(n) + " is out of range"};
    }
    return static_cast<int>(n);
  }
  // A config index: a database row holds up to 2^63-1.
  uint64_t index(const std::string& name) const {
    const int64_t n = integer(name);
    if (n < 0) throw Refusal{"field '" + name + "': " + std::to_string(n) + " is negative"};
    return static_cast<uint64_t>(n);
  }
  double number(const std::string& name) const {
    const Json& v = get(name);
    if (!v.is_number()) throw expected(name, "a number", v);
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw Refusal{"field '" + name + "': " + shown(v) + " is not a finite number"};
    return d;
  }
  std::vector<double> costs(const std::string& name) const {
    const Json& v = get(name);
    if (!v.is_array()) throw expected(name, "an array of seconds", v);
    std::vector<double> out;
    for (size_t i = 0; i < v.size(); ++i) {
      const Json& c = v[i];
      if (!c.is_number() || !std::isfinite(c.get<double>()) || c.get<double>() < 0) {
        throw Refusal{"field '" + name + "'[" + std::to_string(i) + "]: " + shown(c) +
                      " is not a finite non-negative number of seconds"};
      }
      out.push_back(c.get<double>());
    }
    return out;
  }

 private:
  static Refusal expected(const std::string& name, const std::string& what, const Json& got) {
    return Refusal{"field '" + name + "': expected " + what + ", got " + shown(got)};
  }
  const Json& j_;
};

// The value of "device": the description (DeviceDescription's JSON) of the
// device key, or null. Returns its text as set_device stores it, or "" for
// null.
std::string device_text(const Fields& f, const std::string& device_key) {
  const Json& d = f.get("device");
  if (d.is_null()) return "";
  if (!d.is_object()) throw Refusal{"field 'device': expected an object or null, got " + shown(d)};
  DeviceDescription description;
  try {
    description = DeviceDescription::from_json(d);
  } catch (const Error& e) {
    throw Refusal{"field 'device': " + std::string(e.what())};
  }
  if (description.target.device_key() != device_key) {
    throw Refusal{"field 'device': its target's device key '" + description.target.device_key() +
                  "' is not the record's device key '" + device_key + "'"};
  }
  return description.to_json_text();
}

// The fields a record line and a pack entry share, checked against this
// build: the workload parses, its template exists here at that version and
// takes it. Fills device with the description text ("" if none).
Record read_measurement(const Fields& f, std::string& device) {
  Record r;
  const std::string workload_text = f.text("workload");
  std::optional<Workload> workload;
  try {
    workload = Workload::parse(workload_text);
  } catch (const Error& e) {
    throw Refusal{"field 'workload': " + std::string(e.what())};
  }
  r.workload_key = workload->key();
  r.device_key = f.text("device_key");
  if (r.device_key.empty()) throw Refusal{"field 'device_key' is empty"};
  device = device_text(f, r.device_key);
  r.template_name = f.text("template");
  r.template_version = f.small_integer("template_version");
  const ResolvedTemplate tmpl = resolve_template(r.template_name, r.template_version, *workload);
  if (!tmpl.ok()) throw Refusal{tmpl.reason};
  r.config_index = f.index("config_index");
  r.config_text = f.text("config");
  r.result.costs = f.costs("costs");
  r.result.timestamp = f.integer("timestamp");
  r.result.worker = f.text("worker");
  r.build_flags = f.text("build_flags");
  r.flops = f.number("flops");
  r.kind = f.text("kind");
  if (r.kind != "search" && r.kind != "final") {
    throw Refusal{"field 'kind': '" + r.kind + "' is not a record kind (accepted: search, final)"};
  }
  return r;
}

// mean_cost_s is derived from the costs; it must agree with whether the
// record is a successful measurement.
void check_mean_cost(const Fields& f, const Record& r) {
  const Json& v = f.get("mean_cost_s");
  if (r.result.ok()) {
    if (!v.is_number()) throw Refusal{"field 'mean_cost_s': expected a number for a successful measurement, got " + shown(v)};
  } else if (!v.is_null()) {
    throw Refusal{"field 'mean_cost_s': expected null for a record that is not a successful measurement, got " + shown(v)};
  }
}

void check_format(const Fields& f, const char* format, int version, const char* what) {
  const std::string name = f.text("format");
  if (name != format) throw Refusal{"not " + std::string(what) + " (format '" + name + "', expected '" + format + "')"};
  const int64_t v = f.integer("version");
  if (v != version) {
    throw Refusal{std::string(format) + " format version " + std::to_string(v) + ": this build reads version " +
                  std::to_string(version)};
  }
}

Json parse_json(const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    // Not only parse_error: a number too large for a double is out_of_range
    // (406). Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    std::string what = e.what();
    if (auto end = what.find("] "); what.rfind("[json.exception", 0) == 0 && end != std::string::npos) {
      what = what.substr(end + 2);
    }
    throw Refusal{"not valid JSON: " + what};
  }
}

// One record line, and whether it was its (workload, device)'s marked best.
Record read_record_line(const std::string& line, std::string& device, bool& marked_best) {
  const Json j = parse_json(line);
  if (!j.is_object()) throw Refusal{"expected a JSON object, got " + shown(j)};
  const Fields f(j);
  check_format(f, kRecordFormat, kRecordFormatVersion, "a ktune record");
  Record r = read_measurement(f, device);
  const std::string error = f.text("error");
  try {
    r.result.error = parse_error_name(error);
  } catch (const Error& e) {
    throw Refusal{"field 'error': " + std::string(e.what())};
  }
  if (r.result.error == MeasureError::kCancelled) {
    throw Refusal{"field 'error': 'cancelled' marks a candidate never measured, not a record"};
  }
  r.result.error_message = f.text("error_message");
  r.result.build_seconds = f.number("build_seconds");
  r.result.run_seconds = f.number("run_seconds");
  r.job = f.text("job");
  r.tool_version = f.text("tool_version");
  check_mean_cost(f, r);
  marked_best = f.boolean("marked_best");
  if (marked_best && !r.result.ok()) {
    throw Refusal{"field 'marked_best': a record that is not a successful measurement cannot be a best"};
  }
  return r;
}

// The first description a file gives of each device key.
void keep_device(ImportBatch& batch, const std::string& device_key, std::string device) {
  if (!device.empty()) batch.devices.emplace(device_key, std::move(device));
}

// "device": the stored description of each device key, read once.
class DeviceDescriptions {
 public:
  explicit DeviceDescriptions(const Database& db) : db_(db) {}
  const Json& of(const std::string& device_key) {
    auto it = cache_.find(device_key);
    if (it != cache_.end()) return it->second;
    Json j;  // null
    if (std::optional<DeviceDescription> d = stored_device(db_, device_key)) j = d->to_json();
    return cache_.emplace(device_key, std::move(j)).first->second;
  }

 private:
  const Database& db_;
  std::map<std::string, Json> cache_;
};

Json mean_cost_json(const Record& r) { return r.result.ok() ? Json(r.result.mean_cost()) : Json(); }

Json record_line(const Record& r, const Json& device, bool marked_best) {
  Json j;
  j["format"] = kRecordFormat;
  j["version"] = kRecordFormatVersion;
  j["workload"] = r.workload_key;
  j["device_key"] = r.device_key;
  j["device"] = device;
  j["template"] = r.template_name;
  j["template_version"] = r.template_version;
  j["config_index"] = r.config_index;
  j["config"] = r.config_text;
  j["costs"] = r.result.costs;
  j["mean_cost_s"] = mean_cost_json(r);
  j["error"] = std::string(error_name(r.result.error));
  j["error_message"] = r.result.error_message;
  j["build_seconds"] = r.result.build_seconds;
  j["run_seconds"] = r.result.run_seconds;
  j["flops"] = r.flops;
  j["kind"] = r.kind;
  j["job"] = r.job;
  j["worker"] = r.result.worker;
  j["tool_version"] = r.tool_version;
  j["timestamp"] = r.result.timestamp;
  j["build_flags"] = r.build_flags;
  j["marked_best"] = marked_best;
  return j;
}

std::string one_line(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::vector<Record> valid_bests(const Database& db, const RecordFilter& filter) {
  const std::vector<std::string> device_keys =
      filter.device_key.empty() ? db.device_keys() : std::vector<std::string>{filter.device_key};
  std::vector<Record> bests;
  for (const std::string& device_key : device_keys) {
    for (const std::string& workload_key : db.workload_keys(device_key)) {
      if (!filter.workload_keys.empty() && !filter.workload_keys.count(workload_key)) continue;
      std::optional<Record> best = db.best(workload_key, device_key);
      if (best && usable(*best)) bests.push_back(std::move(*best));
    }
  }
  return bests;
}

std::vector<std::string> jsonl_lines(const Database& db, const RecordFilter& filter) {
  std::vector<bool> marked;
  std::vector<Record> records = db.records(filter.device_key, filter.workload_keys, &marked);
  std::set<int64_t> chosen;
  if (filter.best_only) {
    for (const Record& r : valid_bests(db, filter)) chosen.insert(r.id);
  }
  DeviceDescriptions devices(db);
  std::vector<std::string> lines;
  for (size_t i = 0; i < records.size(); ++i) {
    if (filter.best_only && !chosen.count(records[i].id)) continue;
    if (!filter.job.empty() && records[i].job != filter.job) continue;
    lines.push_back(one_line(record_line(records[i], devices.of(records[i].device_key), marked[i])));
  }
  return lines;
}

void export_jsonl(const Database& db, const RecordFilter& filter, std::ostream& out) {
  for (const std::string& line : jsonl_lines(db, filter)) out << line << '\n';
}

nlohmann::ordered_json best_pack(const Database& db, const RecordFilter& filter) {
  DeviceDescriptions devices(db);
  Json entries = Json::array();
  for (const Record& r : valid_bests(db, filter)) {
    Json e;
    e["workload"] = r.workload_key;
    e["device_key"] = r.device_key;
    e["device"] = devices.of(r.device_key);
    e["template"] = r.template_name;
    e["template_version"] = r.template_version;
    e["config_index"] = r.config_index;
    e["config"] = r.config_text;
    e["mean_cost_s"] = r.result.mean_cost();
    e["gflops"] = r.gflops();
    e["costs"] = r.result.costs;
    e["timestamp"] = r.result.timestamp;
    e["worker"] = r.result.worker;
    e["build_flags"] = r.build_flags;
    e["flops"] = r.flops;
    e["kind"] = r.kind;
    entries.push_back(std::move(e));
  }
  Json pack;
  pack["format"] = kBestPackFormat;
  pack["version"] = kBestPackFormatVersion;
  pack["generated_by"] = tool_version();
  pack["entries"] = std::move(entries);
  return pack;
}

ImportFile read_jsonl(std::istream& in, const std::string& source_name, bool skip_bad) {
  ImportFile file;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ++file.lines;
    try {
      std::string device;
      bool marked = false;
      Record r = read_record_line(line, device, marked);
      keep_device(file.batch, r.device_key, std::move(device));
      file.batch.records.push_back(std::move(r));
      file.batch.marked_best.push_back(marked);
    } catch (const Refusal& refusal) {
      std::string problem = source_name + ":" + std::to_string(number) + ": " + refusal.reason;
      if (!skip_bad) throw Error(problem);
      file.problems.push_back(std::move(problem));
      ++file.skipped;
    }
  }
  if (in.bad()) throw Error("cannot read " + source_name + " (after line " + std::to_string(number) + ")");
  return file;
}

ImportFile read_best_pack(const std::string& json_text, const std::string& source_name) {
  ImportFile file;
  file.batch.match_job = false;  // a pack does not say which job measured a record
  std::string where = source_name + ": ";
  try {
    const Json pack = parse_json(json_text);
    if (!pack.is_object()) throw Refusal{"expected a JSON object, got " + shown(pack)};
    const Fields f(pack);
    check_format(f, kBestPackFormat, kBestPackFormatVersion, "a ktune best pack");
    const std::string generated_by = f.text("generated_by");
    const Json& entries = f.get("entries");
    if (!entries.is_array()) throw Refusal{"field 'entries': expected an array, got " + shown(entries)};
    for (size_t i = 0; i < entries.size(); ++i) {
      where = source_name + ": entries[" + std::to_string(i) + "]: ";
      const Json& entry = entries[i];
      if (!entry.is_object()) throw Refusal{"expected a JSON object, got " + shown(entry)};
      const Fields e(entry);
      std::string device;
      Record r = read_measurement(e, device);
      if (r.result.costs.empty()) throw Refusal{"field 'costs' is empty: a best is a successful measurement"};
      check_mean_cost(e, r);
      r.job = kImportJob;
      r.tool_version = generated_by;
      keep_device(file.batch, r.device_key, std::move(device));
      file.batch.records.push_back(std::move(r));
      file.batch.marked_best.push_back(true);
      ++file.lines;
    }
  } catch (const Refusal& refusal) {
    throw Error(where + refusal.reason);
  }
  return file;
}

ImportSummary import_file(Database& db, const ImportFile& file) {
  // The faster best stays; an existing best this build cannot use does not
  // count.
  const MergeCounts counts = db.merge(file.batch, [](const Record& existing, const Record& imported) {
    return usable(existing) && existing.result.mean_cost() <= imported.result.mean_cost();
  });
  ImportSummary s;
  s.lines = file.lines;
  s.imported = counts.inserted;
  s.duplicates = counts.duplicates;
  s.skipped = file.skipped;
  s.marked = counts.marked;
  s.kept_existing = counts.kept_existing;
  s.problems = file.problems;
  return s;
}

ImportSummary import_jsonl(Database& db, std::istream& in, const std::string& source_name, bool skip_bad) {
  return import_file(db, read_jsonl(in, source_name, skip_bad));
}

ImportSummary import_best_pack(Database& db, const std::string& json_text, const std::string& source_name) {
  return import_file(db, read_best_pack(json_text, source_name));
}

}  // namespace ktune
