// The tuning log database: one SQLite file holding every measurement.
//
// Schema versioned with PRAGMA user_version and migrated forward on open;
// WAL journal. A Database is safe for concurrent use from several threads
// (calls are serialized internally); several processes may open one file:
// every write is one transaction that takes the write lock first, and a
// connection that finds the file locked by another waits for it (up to 10
// minutes, logging a warning every 10 s) instead of failing. A write that
// fails (full disk, read-only file) throws ktune::Error saying so and leaves
// everything committed before intact.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "measure/measure.h"

namespace ktune {

// One measurement: one row, one line of a JSONL export.
struct Record {
  int64_t id = 0;  // assigned by the database
  std::string workload_key;
  std::string device_key;
  std::string template_name;
  int template_version = 0;
  uint64_t config_index = 0;
  std::string config_text;   // ConfigSpace::describe()
  MeasureResult result;
  double flops = 0;          // of the workload, to report GFLOP/s
  std::string kind = "search";  // "search" or "final" (re-measured top candidate)
  std::string job;           // optional job id
  std::string tool_version;
  std::string build_flags;   // compiler and flags, e.g. "c++ -O3 -march=native"

  double gflops() const;     // 0 if not ok
};

struct RecordCounts {
  int64_t total = 0;
  int64_t ok = 0;
  int64_t errors = 0;
};

// A tuning daemon's job (service/): its spec is the daemon's JSON text.
struct JobRow {
  std::string id;
  std::string spec;
  std::string state;    // queued | running | done | cancelled | failed
  std::string message;  // why it failed, or what it waits for
  int64_t created_at = 0;  // unix seconds
  int64_t updated_at = 0;
};

// What a job has measured for one workload.
struct JobTaskCounts {
  int64_t search = 0;  // search records (trials)
  int64_t final = 0;   // re-measurements of the top candidates
  int64_t errors = 0;  // failed search records
  double best_cost = std::numeric_limits<double>::infinity();  // seconds, over all its ok records
};

// Records measured elsewhere (another machine's log, a best pack), for
// Database::merge.
struct ImportBatch {
  std::vector<Record> records;  // ids are ignored
  // One per record: restore it as its (workload, device)'s best.
  std::vector<bool> marked_best;
  // Device key -> description (as set_device takes it), stored only where the
  // database has none for that key.
  std::map<std::string, std::string> devices;
  // Whether a record present with another job counts as present (a best
  // pack does not carry the job its records were measured for).
  bool match_job = true;
};

// What Database::merge did.
struct MergeCounts {
  int64_t inserted = 0;
  int64_t duplicates = 0;     // already present: not inserted again
  int64_t marked = 0;         // restored best marks
  int64_t kept_existing = 0;  // marks not restored: keep_existing said so
};

class Database {
 public:
  // What the caller does with the file. A file without write permission
  // (for root too: one with no write bit at all) opens only for kReadOnly,
  // read-only; kReadWrite refuses it at once with an error naming the file,
  // rather than failing at the first record after minutes of tuning.
  enum class Access { kReadWrite, kReadOnly };

  // Opens or creates the file and migrates it. Throws ktune::Error, changing
  // nothing, if the file is not a ktune database, is corrupt, or has a newer
  // schema than this build understands; or, read-only (see Access), if
  // kReadWrite was asked for or its schema needs migrating.
  static std::unique_ptr<Database> open(const std::string& path, Access access = Access::kReadWrite);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Inserts all records in one transaction (all or nothing); fills in ids.
  void insert(std::vector<Record>& records);

  // Marks a record as the best of its (workload, device) — what the tuner
  // chose after re-measurement — unless keep_current (if given) is true for
  // the pair's current best (as best() answers, when it is another record).
  // The decision and the mark are one write transaction, so processes
  // marking one pair at once each decide against the other's mark, never a
  // stale one. keep_current runs inside the transaction and must not call
  // this database. Returns whether the record is now the marked best.
  bool mark_best(int64_t record_id, const std::function<bool(const Record& current)>& keep_current = {});

  // The marked best record if any, else the fastest ok record.
  std::optional<Record> best(const std::string& workload_key, const std::string& device_key) const;
  // Records of a workload on a device, newest first (limit <= 0: all).
  std::vector<Record> history(const std::string& workload_key, const std::string& device_key,
                              int limit = 0) const;
  // Valid records of the other workloads on a device, for transfer learning:
  // those of operator preferred_op (workload keys "preferred_op(...") first,
  // then the rest, newest first within each, at most limit (> 0).
  std::vector<Record> device_history(const std::string& device_key, const std::string& exclude_workload,
                                     const std::string& preferred_op, int limit) const;
  // Config indices already measured for (workload, device, template).
  std::vector<uint64_t> measured_indices(const std::string& workload_key,
                                         const std::string& device_key,
                                         const std::string& template_name) const;
  RecordCounts counts(const std::string& workload_key = "", const std::string& device_key = "") const;

  // The measured FMA peak (GFLOP/s) of a device class with a thread count
  // (`ktune bench`'s "% of peak"), if one was stored.
  std::optional<double> peak_gflops(const std::string& device_key, int threads) const;
  // Stores (or replaces) it. Throws ktune::Error unless gflops is positive
  // and finite and threads >= 1.
  void set_peak_gflops(const std::string& device_key, int threads, double gflops);

  // Jobs of the tuning daemon. add_job throws ktune::Error (SqliteError) if
  // the id exists.
  void add_job(const JobRow& job);
  void set_job_state(const std::string& id, const std::string& state, const std::string& message);
  std::optional<JobRow> job(const std::string& id) const;
  std::vector<JobRow> jobs() const;  // oldest first
  // Of one template if template_name is given, else of all.
  JobTaskCounts job_counts(const std::string& job, const std::string& workload_key,
                           const std::string& template_name = "") const;

  // The description (the daemon's JSON text) of a device key its workers
  // registered, so a restarted daemon can resume jobs before they return.
  void set_device(const std::string& device_key, const std::string& description);
  std::optional<std::string> device(const std::string& device_key) const;

  const std::string& path() const;

  // Device keys that have at least one record, sorted.
  std::vector<std::string> device_keys() const;
  // Workload keys with at least one record on a device key, in the order
  // they were first measured.
  std::vector<std::string> workload_keys(const std::string& device_key) const;

  // Every record on a device key (empty: every device key), of the given
  // workloads (empty: all), in insertion order; with marked_best, whether
  // each is its (workload, device)'s marked best. One snapshot.
  std::vector<Record> records(const std::string& device_key, const std::set<std::string>& workload_keys,
                              std::vector<bool>* marked_best = nullptr) const;

  // Merges records from elsewhere in one transaction (all or nothing):
  // inserts each record not already present — present means a record with
  // the same workload, device, template, version, config index, kind,
  // timestamp, worker, costs and (if batch.match_job) job, in the database
  // or earlier in the batch — and stores the devices the database has no
  // description of. Then, for each record marked best (it must be a
  // successful measurement, else ktune::Error), in order: if its
  // (workload, device) has a best — as best() answered before this call, or
  // a mark restored earlier in the batch — and keep_existing(that best, the
  // record) is true, that best stays; otherwise the record (the new row, or
  // the one present) is marked best. keep_existing runs inside the
  // transaction and must not call this database. Throws ktune::Error (and
  // changes nothing) if a record cannot be stored faithfully.
  MergeCounts merge(const ImportBatch& batch,
                    const std::function<bool(const Record& existing, const Record& imported)>& keep_existing);

 private:
  struct Impl;
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The tool version recorded with every measurement.
std::string tool_version();

}  // namespace ktune
