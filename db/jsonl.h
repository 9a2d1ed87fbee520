// Tuning results that travel between machines: the JSONL record log and
// the best-config pack (`ktune export`, `ktune import`).
//
// A record log holds one measurement per line, as one JSON object:
//   {"format":"ktune-record","version":1,"workload":KEY,"device_key":KEY,
//    "device":<the device's description (DeviceDescription's JSON), or null>,"template":NAME,
//    "template_version":N,"config_index":N,"config":TEXT,"costs":[seconds...],
//    "mean_cost_s":<seconds, or null unless ok>,"error":"none"|"compile_error"|...,
//    "error_message":TEXT,"build_seconds":S,"run_seconds":S,"flops":F,
//    "kind":"search"|"final","job":TEXT,"worker":TEXT,"tool_version":TEXT,
//    "timestamp":UNIX_SECONDS,"build_flags":TEXT,"marked_best":BOOL}
// in insertion order, without database ids; numbers print so that they read
// back exactly, so export -> import into an empty database -> export gives
// the same bytes.
//
// A best pack is one JSON document with the best record of each (workload,
// device key):
//   {"format":"ktune-best-pack","version":1,"generated_by":TOOL_VERSION,
//    "entries":[{"workload","device_key","device","template","template_version",
//                "config_index","config","mean_cost_s","gflops","costs","timestamp",
//                "worker","build_flags","flops","kind"}, ...]}
//
// Imports validate everything before they store anything, and store in one
// transaction: a file with a bad line changes nothing (unless bad lines are
// skipped, and said so). A record this build could not use — a template it
// does not have, or has at another version (a config index names a config of
// one template version only) — is a bad line. Records already in the
// database are not added again.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/database.h"

namespace ktune {

inline constexpr int kRecordFormatVersion = 1;
inline constexpr int kBestPackFormatVersion = 1;

// What an export covers.
struct RecordFilter {
  std::string device_key;               // empty: every device key
  std::set<std::string> workload_keys;  // canonical keys; empty: every workload
  // Only each (workload, device key)'s valid best (see valid_bests).
  bool best_only = false;
  std::string job;                      // only this job's records; empty: any job's
};

// The best record (Database::best) of each (workload, device key) the filter
// covers, where it is valid (usable(), db/record_config.h: a successful
// measurement of a template this build has at that version). Device keys sorted, workloads in the order they were
// first measured. What a best pack holds.
std::vector<Record> valid_bests(const Database& db, const RecordFilter& filter);

// The filter's records as record-log lines (no newlines), in insertion
// order: what export_jsonl writes, and what a daemon streams to `ktune pull`.
// Throws ktune::Error if a stored device description does not read.
std::vector<std::string> jsonl_lines(const Database& db, const RecordFilter& filter);

// Writes the filter's records as a record log. Throws ktune::Error if a
// stored device description does not read (stored_device).
void export_jsonl(const Database& db, const RecordFilter& filter, std::ostream& out);

// The best pack of the filter's workloads (valid_bests). Keys in the order
// above.
nlohmann::ordered_json best_pack(const Database& db, const RecordFilter& filter);

// A file read and validated, not stored yet.
struct ImportFile {
  ImportBatch batch;
  int64_t lines = 0;    // non-empty lines (a pack: entries)
  int64_t skipped = 0;  // bad lines skipped
  std::vector<std::string> problems;  // "SOURCE:LINE: reason", one per skipped line
};

// Reads a record log. Empty lines are ignored. A bad line — not a JSON
// object, an unknown format or version, a missing field or one of the wrong
// type, an unknown error name or kind, a cost that is not a finite number, a
// workload key that does not parse, a template this build does not have at
// that version or that does not take the workload (resolve_template), a
// device description that does not read or names another device key — throws ktune::Error "SOURCE:LINE: reason", or with
// skip_bad is left out and reported in problems. Throws ktune::Error if the
// stream cannot be read.
ImportFile read_jsonl(std::istream& in, const std::string& source_name, bool skip_bad);

// Reads a best pack, by the same rules; a bad entry throws ktune::Error
// "SOURCE: entries[I]: reason". Its records get the job "import" and the
// pack's generated_by as their tool version.
ImportFile read_best_pack(const std::string& json_text, const std::string& source_name);

struct ImportSummary {
  int64_t lines = 0;
  int64_t imported = 0;       // records added
  int64_t duplicates = 0;     // records already present
  int64_t skipped = 0;        // bad lines skipped
  int64_t marked = 0;         // best marks restored
  int64_t kept_existing = 0;  // best marks not restored: the database's best is as fast or faster
  std::vector<std::string> problems;
};

// Stores a file in one transaction (Database::merge): its new records, the
// device descriptions the database lacks, and its best marks — except where
// the database already has a valid best of that (workload, device key) that
// is at least as fast; then that one stays.
ImportSummary import_file(Database& db, const ImportFile& file);

// read_jsonl then import_file.
ImportSummary import_jsonl(Database& db, std::istream& in, const std::string& source_name, bool skip_bad);
// read_best_pack then import_file.
ImportSummary import_best_pack(Database& db, const std::string& json_text, const std::string& source_name);

}  // namespace ktune
