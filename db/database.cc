#include "db/database.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "schedule_space/error.h"

namespace ktune {

namespace {

// Marks a SQLite file as ours ("ktun"), so that a file of another application
// is refused instead of having our tables added to it.
constexpr int32_t kApplicationId = 0x6B74756E;

// Forward migrations. Migration N brings a database from user_version N-1 to
// N; they are applied in order, inside one transaction, on open. Never edit a
// migration that has shipped: add the next one.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE measurements (
  id INTEGER PRIMARY KEY,
  workload_key TEXT NOT NULL,
  device_key TEXT NOT NULL,
  template_name TEXT NOT NULL,
  template_version INTEGER NOT NULL,
  config_index INTEGER NOT NULL,
  config_text TEXT NOT NULL,
  costs TEXT NOT NULL,          -- JSON array of seconds, one per repeat
  mean_cost REAL,               -- NULL unless the measurement is ok
  error_code INTEGER NOT NULL,  -- MeasureError
  error_name TEXT NOT NULL,     -- error_name(error_code), for humans reading the file
  error_message TEXT NOT NULL,
  build_seconds REAL NOT NULL,
  run_seconds REAL NOT NULL,
  flops REAL NOT NULL,
  kind TEXT NOT NULL,
  job TEXT NOT NULL,
  worker TEXT NOT NULL,
  tool_version TEXT NOT NULL,
  timestamp INTEGER NOT NULL,
  build_flags TEXT NOT NULL     -- compiler and flags the kernel was built with
);
CREATE INDEX measurements_by_config
  ON measurements (workload_key, device_key, template_name, config_index);
CREATE INDEX measurements_by_cost
  ON measurements (workload_key, device_key, mean_cost);
CREATE TABLE best (
  workload_key TEXT NOT NULL,
  device_key TEXT NOT NULL,
  record_id INTEGER NOT NULL REFERENCES measurements (id),
  marked_at INTEGER NOT NULL,
  PRIMARY KEY (workload_key, device_key)
);
)sql"},
    // `ktune bench`'s "% of peak": the measured FMA peak of a device class,
    // per thread count (measuring it takes a fraction of a second, but a
    // compile too).
    {2, R"sql(
CREATE TABLE device_peaks (
  device_key TEXT NOT NULL,
  threads INTEGER NOT NULL,
  gflops REAL NOT NULL,
  measured_at INTEGER NOT NULL,  -- unix seconds
  PRIMARY KEY (device_key, threads)
);
)sql"},
    // The tuning daemon's jobs (spec: the job's JSON, service/) and the
    // devices its workers described, so a restarted daemon resumes them.
    {3, R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE devices (
  device_key TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX measurements_by_job ON measurements (job, workload_key);
)sql"},
};

constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].version;

// How long a connection waits for another's lock (another process writing a
// big batch, a checkpoint) before giving up. Long: a tuner that gave up would
// lose the measurement it was storing; a warning is logged while it waits.
constexpr auto kLockWait = std::chrono::minutes(10);
constexpr auto kLockWaitWarning = std::chrono::seconds(10);

constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};
constexpr size_t kSqliteHeaderSize = 100;

std::string not_ktune_database(const std::string& path, const std::string& why) {
  return path + " is not a ktune database: " + why;
}

// Refuses, before SQLite sees it, a non-empty file that is not SQLite at all:
// SQLite would report a bare "file is not a database", and this names why.
void check_sqlite_header(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return;  // a new database
    throw Error("cannot open tuning database " + path + ": " + std::strerror(errno));
  }
  char header[kSqliteHeaderSize];
  size_t got = 0;
  while (got < sizeof header) {
    ssize_t n = ::read(fd, header + got, sizeof header - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      throw Error("cannot read tuning database " + path + ": " + std::strerror(saved));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got == 0) return;  // an empty file is an empty database
  if (got < kSqliteMagic.size() || std::string_view(header, kSqliteMagic.size()) != kSqliteMagic) {
    throw Error(not_ktune_database(path, "it is not an SQLite file (no SQLite header)"));
  }
  if (got < kSqliteHeaderSize) {
    throw Error(not_ktune_database(
        path, "the SQLite header is truncated (" + std::to_string(got) + " bytes)"));
  }
}

// Whether a failed write may have found no room, as far as this process
// can tell (SQLite does not always keep the system's errno): a file-size
// limit on it, or a file system with almost no space left. "" if neither.
std::string room_problem(const std::string& path) {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    return "a file-size limit (ulimit -f) of " + std::to_string(limit.rlim_cur) + " bytes";
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  struct statvfs fs {};
  if (statvfs(dir.empty() ? "." : dir.c_str(), &fs) == 0 &&
      static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < (uint64_t{1} << 20)) {
    return std::to_string(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize / 1024) + " KiB free on its file system";
  }
  return "";
}

// SQLite's message for the connection's last error, with what a user needs
// to act on it: a full disk, a read-only file or a lock held too long say
// so, and an I/O error names the system's reason.
std::string sqlite_problem(sqlite3* db, const std::string& path) {
  const int code = sqlite3_extended_errcode(db);
  const std::string message = sqlite3_errmsg(db);
  const int system = sqlite3_system_errno(db);
  const bool io_write = (code & 0xff) == SQLITE_IOERR && code != SQLITE_IOERR_READ && code != SQLITE_IOERR_SHORT_READ;
  std::string room;
  if ((code & 0xff) == SQLITE_FULL || (io_write && (system == ENOSPC || system == EFBIG || system == EDQUOT))) {
    room = system ? std::strerror(system) : "no space left";
  } else if (io_write) {
    room = room_problem(path);
  }
  if (!room.empty()) {
    return message + " (" + room +
           "): the disk or the file-size limit is full; free space and run again (what was stored before is intact)";
  }
  switch (code & 0xff) {
    case SQLITE_READONLY:
      return message + ": the file is read-only; make it writable or use another database file";
    case SQLITE_BUSY:
      return message + ": another process held its lock for more than " +
             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kLockWait).count()) + " s";
    case SQLITE_IOERR:
      return system ? message + " (" + std::strerror(system) + ")" : message;
    default:
      return message;
  }
}

// An error reported by SQLite, keeping its own message apart so that open()
// can rephrase it.
class SqliteError : public Error {
 public:
  SqliteError(const std::string& path, const char* doing, std::string message)
      : Error("tuning database " + path + ": " + doing + ": " + message),
        message_(std::move(message)) {}
  const std::string& sqlite_message() const { return message_; }

 private:
  std::string message_;
};

Error newer_schema(const std::string& path, int64_t version) {
  return Error(path + " has ktune database schema version " + std::to_string(version) +
               ", newer than this build understands (up to " + std::to_string(kSchemaVersion) +
               "); use a newer ktune");
}

// A prepared statement, finalized on scope exit. Errors name the database file.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, std::string_view sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
        SQLITE_OK) {
      fail("preparing a query");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int i, int64_t v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind(int i, double v) { check(sqlite3_bind_double(stmt_, i, v)); }
  void bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_null(int i) { check(sqlite3_bind_null(stmt_, i)); }

  // True while there is a row to read; false when done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("running a query");
  }
  // Runs a statement that returns no rows, ready to run again.
  void run() {
    while (step()) {
    }
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("binding a query parameter");
  }
  [[noreturn]] void fail(const char* doing) { throw SqliteError(path_, doing, sqlite_problem(db_, path_)); }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& path, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    sqlite3_free(message);  // the same text sqlite_problem() starts with
    throw SqliteError(path, ("running " + sql).c_str(), sqlite_problem(db, path));
  }
}

int64_t query_int(sqlite3* db, const std::string& path, const std::string& sql) {
  Statement s(db, path, sql);
  return s.step() ? s.int64(0) : 0;
}

// Runs sql, trying again while SQLite answers busy without calling its busy
// handler (a COMMIT behind readers, switching the journal mode), up to
// kLockWait.
void exec_waiting_while_busy(sqlite3* db, const std::string& path, const char* sql, const char* doing) {
  const auto deadline = std::chrono::steady_clock::now() + kLockWait;
  for (;;) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline) {
      throw SqliteError(path, doing, sqlite_problem(db, path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// The busy handler: waits for another connection's lock up to kLockWait,
// saying so in the log every kLockWaitWarning, instead of failing at once.
struct LockWait {
  std::string path;
  std::chrono::steady_clock::time_point since, warned;
};

int wait_for_lock(void* state, int attempt) {
  LockWait& w = *static_cast<LockWait*>(state);
  const auto now = std::chrono::steady_clock::now();
  if (attempt == 0) w.since = w.warned = now;
  if (now - w.since > kLockWait) return 0;  // SQLITE_BUSY: the caller reports it
  if (now - w.warned >= kLockWaitWarning) {
    w.warned = now;
    spdlog::warn("tuning database {}: waiting for another process to release its lock ({} s so far)", w.path,
                 std::chrono::duration_cast<std::chrono::seconds>(now - w.since).count());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1 << std::min(attempt, 6), 50)));
  return 1;
}

// A transaction, rolled back unless committed. Writers BEGIN IMMEDIATE: that
// takes the write lock up front, so a busy database makes us wait
// (wait_for_lock) at the start instead of failing halfway. Readers that need
// several statements to agree BEGIN a deferred one: one snapshot.
class Transaction {
 public:
  enum Mode { kRead, kWrite };
  Transaction(sqlite3* db, const std::string& path, Mode mode) : db_(db), path_(path) {
    exec(db_, path_, mode == kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  ~Transaction() {
    if (!committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // A COMMIT that finds the database busy (readers still on the old
  // snapshot, without WAL) leaves the transaction open: wait and try again
  // rather than lose the batch.
  void commit() {
    exec_waiting_while_busy(db_, path_, "COMMIT", "committing");
    committed_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool committed_ = false;
};

// The columns read_record() expects, in order.
constexpr std::string_view kRecordColumns =
    "id, workload_key, device_key, template_name, template_version, config_index, config_text, "
    "costs, error_code, error_message, build_seconds, run_seconds, flops, kind, job, worker, "
    "tool_version, timestamp, build_flags";

Record read_record(const Statement& s, const std::string& path) {
  Record r;
  r.id = s.int64(0);
  r.workload_key = s.text(1);
  r.device_key = s.text(2);
  r.template_name = s.text(3);
  r.template_version = static_cast<int>(s.int64(4));
  r.config_index = static_cast<uint64_t>(s.int64(5));
  r.config_text = s.text(6);
  try {
    r.result.costs = nlohmann::json::parse(s.text(7)).get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error("tuning database " + path + ": record " + std::to_string(r.id) +
                " has malformed costs '" + s.text(7) + "': " + e.what());
  }
  int64_t code = s.int64(8);
  if (code < static_cast<int>(MeasureError::kNone) ||
      code > static_cast<int>(MeasureError::kLast)) {
    throw Error("tuning database " + path + ": record " + std::to_string(r.id) +
                " has unknown error code " + std::to_string(code));
  }
  r.result.error = static_cast<MeasureError>(code);
  r.result.error_message = s.text(9);
  r.result.build_seconds = s.real(10);
  r.result.run_seconds = s.real(11);
  r.flops = s.real(12);
  r.kind = s.text(13);
  r.job = s.text(14);
  r.result.worker = s.text(15);
  r.tool_version = s.text(16);
  r.result.timestamp = s.int64(17);
  r.build_flags = s.text(18);
  return r;
}

// Rejects a record that could not be read back faithfully, naming it.
void check_insertable(const Record& r, size_t position, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return Error("tuning database " + path + ": cannot insert record " +
                 std::to_string(position) + " of the batch (" + r.workload_key + ", config " +
                 std::to_string(r.config_index) + "): " + why);
  };
  if (r.config_index > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw bad("config index is above 2^63-1");
  }
  if (r.kind != "search" && r.kind != "final") {
    throw bad("kind is '" + r.kind + "'; accepted: search, final");
  }
  for (double c : r.result.costs) {
    if (!std::isfinite(c)) throw bad("a cost is not a finite number");
  }
}

constexpr std::string_view kInsertRecord =
    "INSERT INTO measurements (workload_key, device_key, template_name, "
    "template_version, config_index, config_text, costs, mean_cost, error_code, "
    "error_name, error_message, build_seconds, run_seconds, flops, kind, job, worker, "
    "tool_version, timestamp, build_flags) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
    "?18, ?19, ?20)";

// The costs column's text: what merge() compares to find a record present.
std::string costs_text(const MeasureResult& m) { return nlohmann::json(m.costs).dump(); }

// Binds a record to kInsertRecord's parameters.
void bind_record(Statement& s, const Record& r) {
  const MeasureResult& m = r.result;
  s.bind(1, r.workload_key);
  s.bind(2, r.device_key);
  s.bind(3, r.template_name);
  s.bind(4, int64_t{r.template_version});
  s.bind(5, static_cast<int64_t>(r.config_index));
  s.bind(6, r.config_text);
  s.bind(7, costs_text(m));
  if (m.ok()) {
    s.bind(8, m.mean_cost());
  } else {
    s.bind_null(8);
  }
  s.bind(9, int64_t{static_cast<int>(m.error)});
  s.bind(10, error_name(m.error));
  s.bind(11, m.error_message);
  s.bind(12, m.build_seconds);
  s.bind(13, m.run_seconds);
  s.bind(14, r.flops);
  s.bind(15, r.kind);
  s.bind(16, r.job);
  s.bind(17, m.worker);
  s.bind(18, r.tool_version);
  s.bind(19, m.timestamp);
  s.bind(20, r.build_flags);
}

}  // namespace

double Record::gflops() const {
  return result.ok() ? flops / result.mean_cost() / 1e9 : 0;
}

std::string tool_version() { return "ktune " KTUNE_VERSION; }

struct Database::Impl {
  std::string path;
  sqlite3* db = nullptr;
  mutable std::mutex mu;  // one statement at a time on the connection
  LockWait lock_wait;     // the busy handler's state

  ~Impl() { sqlite3_close_v2(db); }

  // Checks that the file is empty or a sound ktune database this build can
  // read. Writes nothing. One snapshot: another process may be creating the
  // database right now.
  void check_identity() const {
    Transaction snapshot(db, path, Transaction::kRead);
    int64_t application_id;
    int64_t version;
    int64_t objects;
    try {
      application_id = query_int(db, path, "PRAGMA application_id");
      version = query_int(db, path, "PRAGMA user_version");
      objects = query_int(db, path, "SELECT count(*) FROM sqlite_schema");
    } catch (const SqliteError& e) {
      // SQLite could not read its own header or schema: not a database, or
      // a damaged one.
      throw Error(not_ktune_database(path, "SQLite cannot read it: " + e.sqlite_message()));
    }
    if (application_id != kApplicationId) {
      if (application_id == 0 && version == 0 && objects == 0) return;  // empty: adopt it
      char id[16];
      std::snprintf(id, sizeof id, "0x%08llX",
                    static_cast<unsigned long long>(static_cast<uint32_t>(application_id)));
      throw Error(not_ktune_database(
          path, "it is an SQLite database of another application (application_id " +
                    std::string(id) + ", expected 0x6B74756E)"));
    }
    if (version > kSchemaVersion) {
      throw newer_schema(path, version);
    }
    std::string verdict;
    try {
      Statement check(db, path, "PRAGMA quick_check");
      while (check.step()) {
        if (!verdict.empty()) verdict += "; ";
        verdict += check.text(0);
      }
    } catch (const SqliteError& e) {
      throw Error(not_ktune_database(path, "it is corrupt: " + e.sqlite_message()));
    }
    if (verdict != "ok") {
      throw Error(not_ktune_database(path, "it is corrupt (integrity check: " + verdict + ")"));
    }
  }

  // Switching a file to WAL needs it to ourselves for a moment, and SQLite
  // reports "locked" at once, without its busy handler, when another process
  // holds it (two processes creating one new file). Retry as busy_timeout
  // would.
  void use_wal() { exec_waiting_while_busy(db, path, "PRAGMA journal_mode = WAL", "switching to WAL journal mode"); }

  // Applies the migrations the file lacks. Another process may be migrating
  // the same file: the write lock serializes us, and the version is re-read
  // under it.
  void migrate() {
    // Current already (the common case): no write lock, so a read-only file
    // opens, and another process's long write does not hold us up.
    if (query_int(db, path, "PRAGMA user_version") == kSchemaVersion &&
        query_int(db, path, "PRAGMA application_id") == kApplicationId) {
      return;
    }
    Transaction txn(db, path, Transaction::kWrite);
    int64_t version = query_int(db, path, "PRAGMA user_version");
    if (version > kSchemaVersion) {
      throw newer_schema(path, version);
    }
    if (version == kSchemaVersion) return;  // rolled back: nothing was written
    for (const Migration& m : kMigrations) {
      if (m.version > version) exec(db, path, m.sql);
    }
    exec(db, path, "PRAGMA application_id = " + std::to_string(kApplicationId));
    exec(db, path, "PRAGMA user_version = " + std::to_string(kSchemaVersion));
    txn.commit();
  }
};

namespace {
// Why an existing file must not be written, or "" if it may be. A file
// without any write permission bit counts as read-only even for root (who
// could write it): whoever took the bits away meant it.
std::string read_only_reason(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";  // a new database
  if ((st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) return "the file has no write permission";
  if (::access(path.c_str(), W_OK) != 0) return std::string("it cannot be written: ") + std::strerror(errno);
  return "";
}
}  // namespace

std::unique_ptr<Database> Database::open(const std::string& path, Access access) {
  check_sqlite_header(path);
  const std::string read_only = read_only_reason(path);
  if (!read_only.empty() && access == Access::kReadWrite) {
    throw Error("tuning database " + path + " is read-only (" + read_only +
                "), and this command stores results in it: make it writable (chmod u+w " + path +
                ") or give another database file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->lock_wait.path = path;
  const int flags = (read_only.empty() ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
                    SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    throw Error("cannot open tuning database " + path + ": " +
                (impl->db ? sqlite3_errmsg(impl->db) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_handler(impl->db, wait_for_lock, &impl->lock_wait);
  // Everything up to here only read the file; identity and soundness are
  // checked before the first write.
  impl->check_identity();
  if (!read_only.empty()) {
    const int64_t version = query_int(impl->db, path, "PRAGMA user_version");
    if (version != kSchemaVersion) {
      throw Error("tuning database " + path + " has schema version " + std::to_string(version) + ", older than " +
                  std::to_string(kSchemaVersion) + ", and is read-only (" + read_only +
                  "): make it writable once so that ktune can migrate it");
    }
    return std::unique_ptr<Database>(new Database(std::move(impl)));
  }
  // WAL lets readers run beside a writer, and several processes (tuner,
  // daemon, `ktune best`) share one file. synchronous=NORMAL: a power loss may
  // drop the last transactions but never corrupts the file.
  impl->use_wal();
  exec(impl->db, path, "PRAGMA synchronous = NORMAL");
  exec(impl->db, path, "PRAGMA foreign_keys = ON");
  impl->migrate();
  return std::unique_ptr<Database>(new Database(std::move(impl)));
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

const std::string& Database::path() const { return impl_->path; }

void Database::insert(std::vector<Record>& records) {
  const std::string& path = impl_->path;
  for (size_t i = 0; i < records.size(); ++i) check_insertable(records[i], i, path);
  std::lock_guard lock(impl_->mu);
  Transaction txn(impl_->db, path, Transaction::kWrite);
  Statement s(impl_->db, path, kInsertRecord);
  std::vector<int64_t> ids;
  ids.reserve(records.size());
  for (const Record& r : records) {
    bind_record(s, r);
    s.run();
    ids.push_back(sqlite3_last_insert_rowid(impl_->db));
  }
  txn.commit();
  // Only now that the batch is durable do the records learn their ids.
  for (size_t i = 0; i < records.size(); ++i) records[i].id = ids[i];
}

namespace {
// Database::best's answer, on a connection the caller holds.
std::optional<Record> find_best(sqlite3* db, const std::string& path, const std::string& workload_key,
                                const std::string& device_key) {
  // One statement, so the choice and the row come from one snapshot even
  // while another process writes.
  Statement s(db, path,
              "SELECT " + std::string(kRecordColumns) +
                  " FROM measurements WHERE id = coalesce("
                  "(SELECT record_id FROM best WHERE workload_key = ?1 AND device_key = ?2), "
                  "(SELECT id FROM measurements WHERE workload_key = ?1 AND device_key = ?2 "
                  "AND mean_cost IS NOT NULL ORDER BY mean_cost, id LIMIT 1))");
  s.bind(1, workload_key);
  s.bind(2, device_key);
  if (!s.step()) return std::nullopt;
  return read_record(s, path);
}
}  // namespace

bool Database::mark_best(int64_t record_id, const std::function<bool(const Record& current)>& keep_current) {
  const std::string& path = impl_->path;
  std::lock_guard lock(impl_->mu);
  Transaction txn(impl_->db, path, Transaction::kWrite);
  Statement find(impl_->db, path,
                 "SELECT workload_key, device_key, mean_cost IS NOT NULL, error_name "
                 "FROM measurements WHERE id = ?1");
  find.bind(1, record_id);
  if (!find.step()) {
    throw Error("tuning database " + path + ": cannot mark record " + std::to_string(record_id) +
                " as best: there is no record with that id");
  }
  if (find.int64(2) == 0) {
    throw Error("tuning database " + path + ": cannot mark record " + std::to_string(record_id) +
                " as best: it is not a successful measurement (error: " + find.text(3) + ")");
  }
  const std::string workload_key = find.text(0), device_key = find.text(1);
  if (keep_current) {
    // Decided under the write lock: no other process can mark this pair
    // between what we read here and what we write.
    std::optional<Record> current = find_best(impl_->db, path, workload_key, device_key);
    if (current && current->id != record_id && keep_current(*current)) return false;
  }
  Statement mark(impl_->db, path,
                 "INSERT OR REPLACE INTO best (workload_key, device_key, record_id, marked_at) "
                 "VALUES (?1, ?2, ?3, ?4)");
  mark.bind(1, workload_key);
  mark.bind(2, device_key);
  mark.bind(3, record_id);
  mark.bind(4, static_cast<int64_t>(std::time(nullptr)));
  mark.run();
  txn.commit();
  return true;
}


std::optional<Record> Database::best(const std::string& workload_key,
                                     const std::string& device_key) const {
  std::lock_guard lock(impl_->mu);
  return find_best(impl_->db, impl_->path, workload_key, device_key);
}

std::vector<Record> Database::history(const std::string& workload_key,
                                      const std::string& device_key, int limit) const {
  std::lock_guard lock(impl_->mu);
  // Newest = inserted last: ids grow with insertion, while timestamps come
  // from the workers' clocks.
  Statement s(impl_->db, impl_->path,
              "SELECT " + std::string(kRecordColumns) +
                  " FROM measurements WHERE workload_key = ?1 AND device_key = ?2 "
                  "ORDER BY id DESC LIMIT ?3");
  s.bind(1, workload_key);
  s.bind(2, device_key);
  s.bind(3, int64_t{limit > 0 ? limit : -1});
  std::vector<Record> records;
  while (s.step()) records.push_back(read_record(s, impl_->path));
  return records;
}

std::vector<Record> Database::device_history(const std::string& device_key,
                                             const std::string& exclude_workload,
                                             const std::string& preferred_op, int limit) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT " + std::string(kRecordColumns) +
                  " FROM measurements WHERE device_key = ?1 AND workload_key <> ?2 AND mean_cost IS NOT NULL "
                  "ORDER BY substr(workload_key, 1, length(?3) + 1) = ?3 || '(' DESC, id DESC LIMIT ?4");
  s.bind(1, device_key);
  s.bind(2, exclude_workload);
  s.bind(3, preferred_op);
  s.bind(4, int64_t{limit > 0 ? limit : 1});
  std::vector<Record> records;
  while (s.step()) records.push_back(read_record(s, impl_->path));
  return records;
}

std::vector<uint64_t> Database::measured_indices(const std::string& workload_key,
                                                 const std::string& device_key,
                                                 const std::string& template_name) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT DISTINCT config_index FROM measurements "
              "WHERE workload_key = ?1 AND device_key = ?2 AND template_name = ?3 "
              "ORDER BY config_index");
  s.bind(1, workload_key);
  s.bind(2, device_key);
  s.bind(3, template_name);
  std::vector<uint64_t> indices;
  while (s.step()) indices.push_back(static_cast<uint64_t>(s.int64(0)));
  return indices;
}

RecordCounts Database::counts(const std::string& workload_key,
                              const std::string& device_key) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT count(*), count(mean_cost), coalesce(sum(error_code != 0), 0) "
              "FROM measurements WHERE (?1 = '' OR workload_key = ?1) "
              "AND (?2 = '' OR device_key = ?2)");
  s.bind(1, workload_key);
  s.bind(2, device_key);
  RecordCounts c;
  if (s.step()) {
    c.total = s.int64(0);
    c.ok = s.int64(1);
    c.errors = s.int64(2);
  }
  return c;
}

std::optional<double> Database::peak_gflops(const std::string& device_key, int threads) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT gflops FROM device_peaks WHERE device_key = ?1 AND threads = ?2");
  s.bind(1, device_key);
  s.bind(2, int64_t{threads});
  if (!s.step()) return std::nullopt;
  return s.real(0);
}

void Database::set_peak_gflops(const std::string& device_key, int threads, double gflops) {
  if (!(gflops > 0) || !std::isfinite(gflops) || threads < 1) {
    throw Error("tuning database " + impl_->path + ": refusing peak of " + std::to_string(gflops) +
                " GFLOP/s for " + device_key + " with " + std::to_string(threads) +
                " threads: the peak must be a positive finite number and threads >= 1");
  }
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "INSERT OR REPLACE INTO device_peaks (device_key, threads, gflops, measured_at) "
              "VALUES (?1, ?2, ?3, ?4)");
  s.bind(1, device_key);
  s.bind(2, int64_t{threads});
  s.bind(3, gflops);
  s.bind(4, static_cast<int64_t>(std::time(nullptr)));
  s.run();
}

void Database::add_job(const JobRow& job) {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "INSERT INTO jobs (id, spec, state, message, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?5)");
  s.bind(1, job.id);
  s.bind(2, job.spec);
  s.bind(3, job.state);
  s.bind(4, job.message);
  s.bind(5, static_cast<int64_t>(std::time(nullptr)));
  s.run();
}

void Database::set_job_state(const std::string& id, const std::string& state, const std::string& message) {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path, "UPDATE jobs SET state = ?2, message = ?3, updated_at = ?4 WHERE id = ?1");
  s.bind(1, id);
  s.bind(2, state);
  s.bind(3, message);
  s.bind(4, static_cast<int64_t>(std::time(nullptr)));
  s.run();
}

namespace {
JobRow read_job(const Statement& s) {
  return JobRow{s.text(0), s.text(1), s.text(2), s.text(3), s.int64(4), s.int64(5)};
}
}  // namespace

std::optional<JobRow> Database::job(const std::string& id) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT id, spec, state, message, created_at, updated_at FROM jobs WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_job(s);
}

std::vector<JobRow> Database::jobs() const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT id, spec, state, message, created_at, updated_at FROM jobs ORDER BY created_at, rowid");
  std::vector<JobRow> rows;
  while (s.step()) rows.push_back(read_job(s));
  return rows;
}

JobTaskCounts Database::job_counts(const std::string& job, const std::string& workload_key,
                                   const std::string& template_name) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT coalesce(sum(kind = 'search'), 0), coalesce(sum(kind = 'final'), 0), "
              "coalesce(sum(kind = 'search' AND error_code != 0), 0), min(mean_cost) "
              "FROM measurements WHERE job = ?1 AND workload_key = ?2 AND (?3 = '' OR template_name = ?3)");
  s.bind(1, job);
  s.bind(2, workload_key);
  s.bind(3, template_name);
  JobTaskCounts c;
  if (s.step()) {
    c.search = s.int64(0);
    c.final = s.int64(1);
    c.errors = s.int64(2);
    if (!s.is_null(3)) c.best_cost = s.real(3);
  }
  return c;
}

void Database::set_device(const std::string& device_key, const std::string& description) {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "INSERT OR REPLACE INTO devices (device_key, description, updated_at) VALUES (?1, ?2, ?3)");
  s.bind(1, device_key);
  s.bind(2, description);
  s.bind(3, static_cast<int64_t>(std::time(nullptr)));
  s.run();
}

std::optional<std::string> Database::device(const std::string& device_key) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path, "SELECT description FROM devices WHERE device_key = ?1");
  s.bind(1, device_key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

std::vector<std::string> Database::device_keys() const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path, "SELECT DISTINCT device_key FROM measurements ORDER BY device_key");
  std::vector<std::string> keys;
  while (s.step()) keys.push_back(s.text(0));
  return keys;
}

std::vector<std::string> Database::workload_keys(const std::string& device_key) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT workload_key FROM measurements WHERE device_key = ?1 "
              "GROUP BY workload_key ORDER BY min(id)");
  s.bind(1, device_key);
  std::vector<std::string> keys;
  while (s.step()) keys.push_back(s.text(0));
  return keys;
}

std::vector<Record> Database::records(const std::string& device_key, const std::set<std::string>& workload_keys,
                                      std::vector<bool>* marked_best) const {
  std::lock_guard lock(impl_->mu);
  Statement s(impl_->db, impl_->path,
              "SELECT " + std::string(kRecordColumns) +
                  ", id IN (SELECT record_id FROM best) FROM measurements "
                  "WHERE (?1 = '' OR device_key = ?1) ORDER BY id");
  s.bind(1, device_key);
  std::vector<Record> records;
  if (marked_best) marked_best->clear();
  while (s.step()) {
    Record r = read_record(s, impl_->path);
    if (!workload_keys.empty() && !workload_keys.count(r.workload_key)) continue;
    records.push_back(std::move(r));
    if (marked_best) marked_best->push_back(s.int64(19) != 0);
  }
  return records;
}

MergeCounts Database::merge(const ImportBatch& batch,
                            const std::function<bool(const Record& existing, const Record& imported)>& keep_existing) {
  const std::string& path = impl_->path;
  const std::vector<Record>& records = batch.records;
  if (batch.marked_best.size() != records.size()) {
    throw Error("tuning database " + path + ": merge: " + std::to_string(batch.marked_best.size()) +
                " best marks for " + std::to_string(records.size()) + " records");
  }
  for (size_t i = 0; i < records.size(); ++i) {
    check_insertable(records[i], i, path);
    if (batch.marked_best[i] && !records[i].result.ok()) {
      throw Error("tuning database " + path + ": cannot mark record " + std::to_string(i) + " of the batch (" +
                  records[i].workload_key + ", config " + std::to_string(records[i].config_index) +
                  ") as best: it is not a successful measurement (error: " +
                  std::string(error_name(records[i].result.error)) + ")");
    }
  }
  std::lock_guard lock(impl_->mu);
  Transaction txn(impl_->db, path, Transaction::kWrite);
  using Pair = std::pair<std::string, std::string>;  // (workload, device)
  // The bests before this merge, of the pairs it may mark.
  std::map<Pair, std::optional<Record>> bests;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!batch.marked_best[i]) continue;
    Pair key{records[i].workload_key, records[i].device_key};
    if (!bests.count(key)) bests[key] = find_best(impl_->db, path, key.first, key.second);
  }
  Statement present(impl_->db, path,
                    "SELECT id FROM measurements WHERE workload_key = ?1 AND device_key = ?2 "
                    "AND template_name = ?3 AND template_version = ?4 AND config_index = ?5 AND kind = ?6 "
                    "AND timestamp = ?7 AND worker = ?8 AND costs = ?9 AND (?10 = 0 OR job = ?11) "
                    "ORDER BY id LIMIT 1");
  Statement insert(impl_->db, path, kInsertRecord);
  MergeCounts counts;
  std::vector<int64_t> ids;
  ids.reserve(records.size());
  for (const Record& r : records) {
    present.bind(1, r.workload_key);
    present.bind(2, r.device_key);
    present.bind(3, r.template_name);
    present.bind(4, int64_t{r.template_version});
    present.bind(5, static_cast<int64_t>(r.config_index));
    present.bind(6, r.kind);
    present.bind(7, r.result.timestamp);
    present.bind(8, r.result.worker);
    present.bind(9, costs_text(r.result));
    present.bind(10, int64_t{batch.match_job ? 1 : 0});
    present.bind(11, r.job);
    const bool found = present.step();
    const int64_t found_id = found ? present.int64(0) : 0;
    present.reset();
    if (found) {
      ids.push_back(found_id);
      ++counts.duplicates;
      continue;
    }
    bind_record(insert, r);
    insert.run();
    ids.push_back(sqlite3_last_insert_rowid(impl_->db));
    ++counts.inserted;
  }
  Statement store_device(impl_->db, path,
                         "INSERT OR IGNORE INTO devices (device_key, description, updated_at) VALUES (?1, ?2, ?3)");
  for (const auto& [key, description] : batch.devices) {
    store_device.bind(1, key);
    store_device.bind(2, description);
    store_device.bind(3, static_cast<int64_t>(std::time(nullptr)));
    store_device.run();
  }
  Statement mark(impl_->db, path,
                 "INSERT OR REPLACE INTO best (workload_key, device_key, record_id, marked_at) "
                 "VALUES (?1, ?2, ?3, ?4)");
  for (size_t i = 0; i < records.size(); ++i) {
    if (!batch.marked_best[i]) continue;
    std::optional<Record>& current = bests[{records[i].workload_key, records[i].device_key}];
    const bool already = current && current->id == ids[i];
    if (current && !already && keep_existing(*current, records[i])) {
      ++counts.kept_existing;
      continue;
    }
    mark.bind(1, records[i].workload_key);
    mark.bind(2, records[i].device_key);
    mark.bind(3, ids[i]);
    mark.bind(4, static_cast<int64_t>(std::time(nullptr)));
    mark.run();
    if (already) continue;  // it was the best already; now it is marked so
    current = records[i];
    current->id = ids[i];
    ++counts.marked;
  }
  txn.commit();
  return counts;
}

}  // namespace ktune
