// The tuning log database: queries, reopening, refusing files that are not
// ours without touching them, surviving a crash mid-batch, sharing a file
// between threads and processes, a full disk and a read-only file.
#include "db/database.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "schedule_space/error.h"
#include "tests/sample_record.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Record make_record(const std::string& workload, uint64_t config_index, std::vector<double> costs,
                   MeasureError error = MeasureError::kNone) {
  return ktune::testing::sample_record(workload, "cpu/test/avx2/2t", "matmul.cpu.tiled", 2, config_index,
                                       std::move(costs), error);
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs SQL on a file with plain SQLite, as another program would.
void raw_sql(const fs::path& p, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  std::string text = message ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << text;
}

std::string raw_query(const fs::path& p, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string value = "<error>";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void expect_same_record(const Record& a, const Record& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.workload_key, b.workload_key);
  EXPECT_EQ(a.device_key, b.device_key);
  EXPECT_EQ(a.template_name, b.template_name);
  EXPECT_EQ(a.template_version, b.template_version);
  EXPECT_EQ(a.config_index, b.config_index);
  EXPECT_EQ(a.config_text, b.config_text);
  EXPECT_EQ(a.result.costs, b.result.costs);  // exact: the text form round-trips doubles
  EXPECT_EQ(a.result.error, b.result.error);
  EXPECT_EQ(a.result.error_message, b.result.error_message);
  EXPECT_EQ(a.result.build_seconds, b.result.build_seconds);
  EXPECT_EQ(a.result.run_seconds, b.result.run_seconds);
  EXPECT_EQ(a.result.worker, b.result.worker);
  EXPECT_EQ(a.result.timestamp, b.result.timestamp);
  EXPECT_EQ(a.flops, b.flops);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.job, b.job);
  EXPECT_EQ(a.tool_version, b.tool_version);
  EXPECT_EQ(a.build_flags, b.build_flags);
}

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ktune_db_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ / "ktune.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs body(i) for i in [0, n) in n forked processes at once, each with
  // the database open; every one must exit normally (an exception is its
  // failure, printed on stderr).
  void in_processes(int n, const std::function<void(int, Database&)>& body) {
    std::vector<pid_t> children;
    for (int i = 0; i < n; ++i) {
      pid_t child = fork();
      ASSERT_GE(child, 0);
      if (child == 0) {
        try {
          auto db = Database::open(path_);
          body(i, *db);
          _exit(0);
        } catch (const std::exception& e) {
          fprintf(stderr, "child %d: %s\n", i, e.what());
          _exit(1);
        }
      }
      children.push_back(child);
    }
    for (pid_t child : children) {
      int status = 0;
      ASSERT_EQ(waitpid(child, &status, 0), child);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
  }

  // A closed ktune database holding `n` records, spread over several pages.
  void make_database(int n) {
    auto db = Database::open(path_);
    std::vector<Record> batch;
    for (int i = 0; i < n; ++i) batch.push_back(make_record("matmul(m=64,n=64,k=64)", i, {1e-3}));
    db->insert(batch);
  }

  // Opening `path_` must fail naming the file and `why`, and leave the file
  // byte for byte as it was, with no WAL files left beside it.
  void expect_refused_unchanged(const std::string& why) {
    std::string before = read_bytes(path_);
    try {
      Database::open(path_);
      ADD_FAILURE() << "opened " << path_ << ", expected: " << why;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(path_.string()));
      EXPECT_THAT(e.what(), HasSubstr(why));
    }
    EXPECT_EQ(read_bytes(path_), before) << "the refused file was modified";
    EXPECT_FALSE(fs::exists(path_.string() + "-wal"));
    EXPECT_FALSE(fs::exists(path_.string() + "-shm"));
  }

  fs::path dir_;
  fs::path path_;
};

TEST_F(DatabaseTest, InsertedRecordsComeBackWithEveryField) {
  auto db = Database::open(path_);
  Record ok = make_record("matmul(m=64,n=64,k=64)", 7, {1.5e-3, 1.25e-3, 1.0 / 3.0});
  ok.kind = "final";
  ok.job = "job-42";
  ok.config_text = "quotes ' and \" and unicode µs";
  Record compile_error = make_record("matmul(m=64,n=64,k=64)", 8, {}, MeasureError::kCompileError);
  Record timeout = make_record("matmul(m=64,n=64,k=64)", 9, {}, MeasureError::kRunTimeout);
  Record big_index = make_record("matmul(m=64,n=64,k=64)", (uint64_t{1} << 62) + 5, {2e-3});
  std::vector<Record> batch = {ok, compile_error, timeout, big_index};
  db->insert(batch);

  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_GT(batch[i].id, 0);
    if (i > 0) {
      EXPECT_GT(batch[i].id, batch[i - 1].id);
    }
  }
  std::vector<Record> got = db->history("matmul(m=64,n=64,k=64)", "cpu/test/avx2/2t");
  ASSERT_EQ(got.size(), 4u);
  // Newest first: reverse insertion order.
  for (size_t i = 0; i < batch.size(); ++i) expect_same_record(got[batch.size() - 1 - i], batch[i]);
  EXPECT_EQ(got[2].result.error, MeasureError::kCompileError);
  EXPECT_EQ(got[1].result.error, MeasureError::kRunTimeout);
}

TEST_F(DatabaseTest, GflopsIsFlopsOverMeanCostAndZeroForFailures) {
  Record ok = make_record("w", 1, {1e-3, 3e-3});
  ok.flops = 4e9;
  EXPECT_DOUBLE_EQ(ok.gflops(), 4e9 / 2e-3 / 1e9);
  Record failed = make_record("w", 2, {1e-3}, MeasureError::kWrongAnswer);
  EXPECT_EQ(failed.gflops(), 0);
}

TEST_F(DatabaseTest, BestIsTheFastestOkRecordUntilOneIsMarked) {
  auto db = Database::open(path_);
  std::vector<Record> batch = {
      make_record("w", 1, {3e-3}),
      make_record("w", 2, {1e-3, 2e-3}),  // mean 1.5e-3: the fastest ok
      make_record("w", 3, {2e-3}),
      // Faster numbers, but not ok measurements: never the best.
      make_record("w", 4, {1e-9}, MeasureError::kWrongAnswer),
      make_record("w", 5, {}, MeasureError::kCompileError),
  };
  Record other_device = make_record("w", 6, {1e-6});
  other_device.device_key = "cpu/other";
  batch.push_back(other_device);
  db->insert(batch);

  std::optional<Record> best = db->best("w", "cpu/test/avx2/2t");
  ASSERT_TRUE(best);
  EXPECT_EQ(best->config_index, 2u);

  db->mark_best(batch[2].id);  // what the final re-measurement chose
  best = db->best("w", "cpu/test/avx2/2t");
  ASSERT_TRUE(best);
  EXPECT_EQ(best->id, batch[2].id);
  EXPECT_EQ(db->best("w", "cpu/other")->config_index, 6u);  // other device unaffected

  db->mark_best(batch[0].id);  // a later mark replaces the earlier one
  EXPECT_EQ(db->best("w", "cpu/test/avx2/2t")->id, batch[0].id);

  EXPECT_FALSE(db->best("no such workload", "cpu/test/avx2/2t"));
  try {
    db->mark_best(batch[3].id);
    ADD_FAILURE() << "marked a wrong answer as best";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("wrong_answer"));
  }
  try {
    db->mark_best(999999);
    ADD_FAILURE() << "marked a missing record as best";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no record with that id"));
  }
}

TEST_F(DatabaseTest, HistoryIsNewestFirstAndHonoursTheLimit) {
  auto db = Database::open(path_);
  for (uint64_t i = 0; i < 5; ++i) {
    std::vector<Record> one = {make_record("w", i, {1e-3})};
    db->insert(one);
  }
  std::vector<Record> other = {make_record("other", 100, {1e-3})};
  db->insert(other);

  std::vector<Record> all = db->history("w", "cpu/test/avx2/2t");
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].config_index, 4 - i);
  std::vector<Record> last_two = db->history("w", "cpu/test/avx2/2t", 2);
  ASSERT_EQ(last_two.size(), 2u);
  EXPECT_EQ(last_two[0].config_index, 4u);
  EXPECT_EQ(last_two[1].config_index, 3u);
  EXPECT_TRUE(db->history("w", "cpu/elsewhere").empty());
}

// Transfer learning's history: valid records of the other workloads on the
// device, the preferred operator's first, newest first within each.
TEST_F(DatabaseTest, DeviceHistoryPrefersAnOperatorThenTheNewest) {
  auto db = Database::open(path_);
  std::vector<Record> batch = {
      make_record("matmul(m=8,n=8,k=8)", 1, {1e-3}),
      make_record("conv2d(n=1,c=8,h=8,w=8,k=8,r=3,s=3)", 2, {1e-3}),
      make_record("matmul(m=16,n=16,k=16)", 3, {1e-3}),
      make_record("matmul(m=16,n=16,k=16)", 4, {}, MeasureError::kWrongAnswer),
      make_record("matmulx(m=1)", 5, {1e-3}),  // not the matmul operator
      make_record("matmul(m=32,n=32,k=32)", 6, {1e-3}),  // the task's own workload
      make_record("conv2d(n=1,c=4,h=8,w=8,k=8,r=3,s=3)", 7, {1e-3}),
  };
  batch.push_back(make_record("matmul(m=8,n=8,k=8)", 8, {1e-3}));
  batch.back().device_key = "cpu/elsewhere/avx2/2t";
  db->insert(batch);
  std::vector<uint64_t> order;
  for (const Record& r : db->device_history("cpu/test/avx2/2t", "matmul(m=32,n=32,k=32)", "matmul", 10)) {
    order.push_back(r.config_index);
  }
  EXPECT_THAT(order, ElementsAre(3, 1, 7, 5, 2));
  EXPECT_EQ(db->device_history("cpu/test/avx2/2t", "", "conv2d", 2).size(), 2u);
  EXPECT_EQ(db->device_history("cpu/test/avx2/2t", "", "conv2d", 2)[0].config_index, 7u);
}

TEST_F(DatabaseTest, MeasuredIndicesAreDistinctSortedAndPerTemplate) {
  auto db = Database::open(path_);
  std::vector<Record> batch = {make_record("w", 30, {1e-3}), make_record("w", 10, {1e-3}),
                               make_record("w", 30, {2e-3}),  // measured twice
                               make_record("w", 20, {}, MeasureError::kRuntimeError)};
  Record other_template = make_record("w", 5, {1e-3});
  other_template.template_name = "matmul.cpu.packed";
  batch.push_back(other_template);
  db->insert(batch);

  EXPECT_THAT(db->measured_indices("w", "cpu/test/avx2/2t", "matmul.cpu.tiled"),
              ElementsAre(10u, 20u, 30u));
  EXPECT_THAT(db->measured_indices("w", "cpu/test/avx2/2t", "matmul.cpu.packed"), ElementsAre(5u));
  EXPECT_TRUE(db->measured_indices("w", "cpu/other", "matmul.cpu.tiled").empty());
}

TEST_F(DatabaseTest, CountsSplitOkAndErrorsAndFilter) {
  auto db = Database::open(path_);
  std::vector<Record> batch = {make_record("a", 1, {1e-3}), make_record("a", 2, {1e-3}),
                               make_record("a", 3, {}, MeasureError::kCompileTimeout),
                               make_record("b", 1, {1e-3})};
  batch[3].device_key = "cpu/other";
  db->insert(batch);

  RecordCounts all = db->counts();
  EXPECT_EQ(all.total, 4);
  EXPECT_EQ(all.ok, 3);
  EXPECT_EQ(all.errors, 1);
  RecordCounts a = db->counts("a", "cpu/test/avx2/2t");
  EXPECT_EQ(a.total, 3);
  EXPECT_EQ(a.ok, 2);
  EXPECT_EQ(a.errors, 1);
  EXPECT_EQ(db->counts("", "cpu/other").total, 1);
  EXPECT_EQ(db->counts("none").total, 0);
}

TEST_F(DatabaseTest, ABadRecordRejectsTheWholeBatch) {
  auto db = Database::open(path_);
  std::vector<Record> batch = {make_record("w", 1, {1e-3}), make_record("w", 2, {1e-3})};
  batch[1].kind = "bogus";
  try {
    db->insert(batch);
    ADD_FAILURE() << "inserted a record of kind 'bogus'";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("kind is 'bogus'; accepted: search, final"));
  }
  EXPECT_EQ(db->counts().total, 0);
  EXPECT_EQ(batch[0].id, 0);
}

TEST_F(DatabaseTest, ReopeningKeepsRecordsBestMarkAndSchemaVersion) {
  std::vector<Record> batch = {make_record("w", 1, {1e-3}), make_record("w", 2, {2e-3})};
  {
    auto db = Database::open(path_);
    db->insert(batch);
    db->mark_best(batch[1].id);
  }
  {
    auto db = Database::open(path_);
    EXPECT_EQ(db->path(), path_.string());
    std::vector<Record> got = db->history("w", "cpu/test/avx2/2t");
    ASSERT_EQ(got.size(), 2u);
    expect_same_record(got[0], batch[1]);
    expect_same_record(got[1], batch[0]);
    EXPECT_EQ(db->best("w", "cpu/test/avx2/2t")->id, batch[1].id);
  }
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "3");
  EXPECT_EQ(raw_query(path_, "PRAGMA application_id"), std::to_string(0x6B74756E));
  EXPECT_EQ(raw_query(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(DatabaseTest, AnEmptyFileBecomesADatabase) {
  write_bytes(path_, "");
  auto db = Database::open(path_);
  std::vector<Record> batch = {make_record("w", 1, {1e-3})};
  db->insert(batch);
  EXPECT_EQ(db->counts().total, 1);
}

TEST_F(DatabaseTest, RefusesATextFileUnchanged) {
  write_bytes(path_, "hello\n");
  expect_refused_unchanged("is not a ktune database: it is not an SQLite file");
}

TEST_F(DatabaseTest, RefusesATruncatedDatabaseUnchanged) {
  make_database(2000);
  std::string bytes = read_bytes(path_);
  ASSERT_GT(bytes.size(), 16u * 4096u);
  write_bytes(path_, bytes.substr(0, bytes.size() / 2));
  expect_refused_unchanged("is not a ktune database");
}

TEST_F(DatabaseTest, RefusesADatabaseWithAGarbledPageUnchanged) {
  make_database(2000);
  std::string bytes = read_bytes(path_);
  ASSERT_GT(bytes.size(), 16u * 4096u);
  // Scribble over a page in the middle of the table.
  for (size_t i = 8 * 4096; i < 9 * 4096; ++i) bytes[i] = static_cast<char>(i * 7 + 13);
  write_bytes(path_, bytes);
  expect_refused_unchanged("is not a ktune database: it is corrupt");
}

TEST_F(DatabaseTest, RefusesAnotherApplicationsDatabaseUnchanged) {
  raw_sql(path_, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL);"
                 "INSERT INTO invoices (amount) VALUES (12.5);");
  expect_refused_unchanged("is not a ktune database: it is an SQLite database of another application");
  EXPECT_EQ(raw_query(path_, "SELECT count(*) FROM sqlite_schema"), "1");  // no tables of ours
}

TEST_F(DatabaseTest, RefusesANewerSchemaVersionUnchanged) {
  make_database(3);
  raw_sql(path_, "PRAGMA user_version = 99");
  expect_refused_unchanged("schema version 99, newer than this build understands (up to 3)");
}

TEST_F(DatabaseTest, StoresTheMeasuredPeakPerDeviceAndThreadCount) {
  {
    auto db = Database::open(path_);
    EXPECT_FALSE(db->peak_gflops("cpu/test/avx2/2t", 2).has_value());
    db->set_peak_gflops("cpu/test/avx2/2t", 2, 150.5);
    db->set_peak_gflops("cpu/test/avx2/2t", 1, 75.0);
    db->set_peak_gflops("cpu/test/avx2/2t", 1, 80.0);  // re-measured: replaces
  }
  auto db = Database::open(path_);
  EXPECT_EQ(db->peak_gflops("cpu/test/avx2/2t", 2), 150.5);
  EXPECT_EQ(db->peak_gflops("cpu/test/avx2/2t", 1), 80.0);
  EXPECT_FALSE(db->peak_gflops("cpu/other/avx2/2t", 2).has_value());
  EXPECT_EQ(raw_query(path_, "SELECT count(*) FROM device_peaks"), "2");
}

TEST_F(DatabaseTest, RefusesANonsensePeak) {
  auto db = Database::open(path_);
  EXPECT_THROW(db->set_peak_gflops("cpu/test/avx2/2t", 2, 0), Error);
  EXPECT_THROW(db->set_peak_gflops("cpu/test/avx2/2t", 2, NAN), Error);
  EXPECT_THROW(db->set_peak_gflops("cpu/test/avx2/2t", 0, 10), Error);
  EXPECT_FALSE(db->peak_gflops("cpu/test/avx2/2t", 2).has_value());
}

// A file written by a build with schema version 1 (before device_peaks and
// the daemon's tables): opening it migrates it to the current version and
// keeps its records.
TEST_F(DatabaseTest, MigratesAVersion1DatabaseKeepingItsRecords) {
  make_database(3);
  // Turn it back into what version 1 left: no peaks, jobs or devices tables, user_version 1.
  raw_sql(path_,
          "DROP TABLE device_peaks; DROP TABLE jobs; DROP TABLE devices; DROP INDEX measurements_by_job; "
          "PRAGMA user_version = 1;");
  ASSERT_EQ(raw_query(path_, "SELECT count(*) FROM sqlite_schema WHERE name = 'device_peaks'"), "0");
  auto db = Database::open(path_);
  EXPECT_EQ(db->counts().total, 3);
  db->set_peak_gflops("cpu/test/avx2/2t", 2, 99.0);
  EXPECT_EQ(db->peak_gflops("cpu/test/avx2/2t", 2), 99.0);
  db->add_job(JobRow{"j1", "{}", "queued", "", 0, 0});
  EXPECT_EQ(db->jobs().size(), 1u);
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "3");
}

// The daemon's jobs survive reopening; a job's counts come from its records.
TEST_F(DatabaseTest, JobsAndDevicesPersistAndJobCountsComeFromRecords) {
  {
    auto db = Database::open(path_);
    db->add_job(JobRow{"job-1", R"j({"ops":["matmul(m=8,n=8,k=8)"]})j", "queued", "", 0, 0});
    db->add_job(JobRow{"job-2", "{}", "queued", "", 0, 0});
    EXPECT_THROW(db->add_job(JobRow{"job-1", "{}", "queued", "", 0, 0}), Error);
    db->set_job_state("job-1", "running", "");
    db->set_device("cpu/test/avx2/2t", R"({"isa":"avx2"})");
    std::vector<Record> batch = {make_record("w", 1, {1e-3}), make_record("w", 2, {2e-3}),
                                 make_record("w", 3, {}, MeasureError::kRunTimeout)};
    for (Record& r : batch) r.job = "job-1";
    batch[1].kind = "final";
    db->insert(batch);
  }
  auto db = Database::open(path_);
  std::vector<JobRow> jobs = db->jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, "job-1");
  EXPECT_EQ(jobs[0].state, "running");
  EXPECT_EQ(jobs[0].spec, R"j({"ops":["matmul(m=8,n=8,k=8)"]})j");
  EXPECT_GT(jobs[0].created_at, 0);
  EXPECT_FALSE(db->job("job-3").has_value());
  EXPECT_EQ(db->device("cpu/test/avx2/2t").value(), R"({"isa":"avx2"})");
  EXPECT_FALSE(db->device("cpu/other/avx2/2t").has_value());
  JobTaskCounts c = db->job_counts("job-1", "w");
  EXPECT_EQ(c.search, 2);
  EXPECT_EQ(c.final, 1);
  EXPECT_EQ(c.errors, 1);
  EXPECT_DOUBLE_EQ(c.best_cost, 1e-3);
  EXPECT_EQ(db->job_counts("job-2", "w").search, 0);
}

// The point of one transaction per batch: a process killed halfway through a
// batch leaves the earlier batches intact, none of the partial one, and a file
// that opens cleanly.
TEST_F(DatabaseTest, AProcessKilledMidBatchLosesOnlyThatBatch) {
  constexpr int kCommittedBatches = 3;
  constexpr int kBatchSize = 10;
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child commits a few batches, then starts one too big for the page
    // cache, so SQLite spills it into the WAL before committing. A file-size
    // limit just above the committed WAL stops the first spill inside the
    // kernel's write() with SIGXFSZ: the handler tells the parent and waits
    // there, mid-transaction, for the parent's SIGKILL.
    static int report_fd;
    report_fd = pipe_fds[1];
    close(pipe_fds[0]);
    try {
      auto db = Database::open(path_);
      for (int b = 0; b < kCommittedBatches; ++b) {
        std::vector<Record> batch;
        for (int i = 0; i < kBatchSize; ++i) batch.push_back(make_record("w", b * kBatchSize + i, {1e-3}));
        db->insert(batch);
      }
      std::vector<Record> big;
      for (int i = 0; i < 20000; ++i) {
        big.push_back(make_record("w", 1000000 + i, {1e-3}));
        big.back().config_text.append(200, 'x');
      }
      int64_t committed_wal = static_cast<int64_t>(fs::file_size(path_.string() + "-wal"));
      if (write(report_fd, &committed_wal, sizeof committed_wal) != sizeof committed_wal) _exit(2);
      struct sigaction action = {};
      action.sa_handler = [](int) {
        if (write(report_fd, "k", 1) != 1) _exit(3);
        for (;;) pause();
      };
      sigaction(SIGXFSZ, &action, nullptr);
      rlim_t biggest = std::max({fs::file_size(path_), fs::file_size(path_.string() + "-wal"),
                                 fs::file_size(path_.string() + "-shm")});
      struct rlimit limit = {biggest + 256 * 1024, RLIM_INFINITY};
      setrlimit(RLIMIT_FSIZE, &limit);
      db->insert(big);
      _exit(4);  // the batch committed: the limit did not stop it
    } catch (...) {
      _exit(5);
    }
  }
  close(pipe_fds[1]);
  int64_t committed_wal = 0;
  char killed_mid_batch = 0;
  bool reported = read(pipe_fds[0], &committed_wal, sizeof committed_wal) == sizeof committed_wal &&
                  read(pipe_fds[0], &killed_mid_batch, 1) == 1;
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(pipe_fds[0]);
  ASSERT_TRUE(reported) << "child exited with status " << status << " before reaching the big batch";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  // The partial batch really reached the disk: recovery has to ignore it.
  EXPECT_GT(static_cast<int64_t>(fs::file_size(path_.string() + "-wal")), committed_wal);

  auto db = Database::open(path_);  // runs quick_check
  RecordCounts counts = db->counts();
  EXPECT_EQ(counts.total, kCommittedBatches * kBatchSize);
  std::vector<Record> got = db->history("w", "cpu/test/avx2/2t");
  ASSERT_EQ(got.size(), size_t{kCommittedBatches * kBatchSize});
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].config_index, got.size() - 1 - i);
    EXPECT_EQ(got[i].result.costs, std::vector<double>{1e-3});
  }
  std::vector<Record> after = {make_record("w", 77777, {1e-3})};
  db->insert(after);
  EXPECT_EQ(db->counts().total, kCommittedBatches * kBatchSize + 1);
  EXPECT_EQ(raw_query(path_, "PRAGMA integrity_check"), "ok");
}

TEST_F(DatabaseTest, TwoThreadsInsertIntoOneDatabase) {
  auto db = Database::open(path_);
  auto second = Database::open(path_);  // a second connection to the same file
  auto writer = [](Database* target, const std::string& workload) {
    for (int b = 0; b < 20; ++b) {
      std::vector<Record> batch;
      for (int i = 0; i < 25; ++i) batch.push_back(make_record(workload, b * 25 + i, {1e-3}));
      target->insert(batch);
    }
  };
  std::thread a(writer, db.get(), "a");
  std::thread b(writer, db.get(), "b");
  std::thread c(writer, second.get(), "c");
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(db->counts().total, 1500);
  for (const char* w : {"a", "b", "c"}) {
    EXPECT_EQ(db->measured_indices(w, "cpu/test/avx2/2t", "matmul.cpu.tiled").size(), 500u) << w;
  }
}

// Two processes creating and filling the same new file at once: one creates
// the schema, the other waits for it, and every row lands.
TEST_F(DatabaseTest, TwoProcessesShareOneFile) {
  const char* workloads[] = {"a", "b"};
  in_processes(2, [&](int p, Database& db) {
    for (int b = 0; b < 20; ++b) {
      std::vector<Record> batch;
      for (int i = 0; i < 25; ++i) batch.push_back(make_record(workloads[p], b * 25 + i, {1e-3}));
      db.insert(batch);
    }
  });
  auto db = Database::open(path_);
  EXPECT_EQ(db->counts("a").total, 500);
  EXPECT_EQ(db->counts("b").total, 500);
}

// What a tuner does when it ends: store its winner, then mark it unless the
// current best is at least as fast. Several processes doing it at once for
// one workload must end with the fastest winner marked: the decision is made
// under the write lock, against the other processes' marks, never a stale
// read of them.
TEST_F(DatabaseTest, ProcessesMarkingOneWorkloadAtOnceKeepTheFastestWinner) {
  make_database(0);  // the schema exists before the children race
  constexpr int kProcesses = 6, kRounds = 20;
  in_processes(kProcesses, [&](int p, Database& db) {
    for (int r = 0; r < kRounds; ++r) {
      // A permutation of 1..120 ms over all processes and rounds: one fastest.
      const double cost = 1e-3 * (1 + (p * kRounds + r) * 37 % (kProcesses * kRounds));
      std::vector<Record> winner = {make_record("w", static_cast<uint64_t>(p * 1000 + r), {cost})};
      db.insert(winner);
      db.mark_best(winner[0].id, [&](const Record& current) { return current.result.mean_cost() <= cost; });
    }
  });
  auto db = Database::open(path_);
  EXPECT_EQ(db->counts("w").total, kProcesses * kRounds);
  EXPECT_EQ(raw_query(path_, "SELECT count(*) FROM best"), "1");
  std::optional<Record> best = db->best("w", "cpu/test/avx2/2t");
  ASSERT_TRUE(best);
  EXPECT_EQ(best->result.costs, std::vector<double>{1e-3});
  EXPECT_EQ(raw_query(path_, "SELECT record_id FROM best"), std::to_string(best->id));
}

// A full disk (here: the file-size limit, which makes write() fail with
// EFBIG) fails the batch with an error that says so, and everything
// committed before stays, in a file that opens cleanly.
TEST_F(DatabaseTest, AFullDiskIsAClearErrorAndKeepsEverythingCommitted) {
  make_database(30);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing us
    try {
      auto db = Database::open(path_);
      struct rlimit limit = {static_cast<rlim_t>(fs::file_size(path_)) + 64 * 1024, RLIM_INFINITY};
      setrlimit(RLIMIT_FSIZE, &limit);
      std::vector<Record> big;
      for (int i = 0; i < 5000; ++i) {
        big.push_back(make_record("w", 1000000 + i, {1e-3}));
        big.back().config_text.append(200, 'x');
      }
      db->insert(big);
      _exit(4);  // stored: the limit did not stop it
    } catch (const Error& e) {
      const std::string message = e.what();
      if (write(pipe_fds[1], message.data(), message.size()) != static_cast<ssize_t>(message.size())) _exit(3);
      _exit(0);
    } catch (...) {
      _exit(5);
    }
  }
  close(pipe_fds[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) message.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_THAT(message, HasSubstr(path_.string()));
  EXPECT_THAT(message, HasSubstr("full"));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;

  auto db = Database::open(path_);  // runs quick_check
  EXPECT_EQ(db->counts().total, 30);
  std::vector<Record> after = {make_record("w", 77777, {1e-3})};
  db->insert(after);
  EXPECT_EQ(db->counts().total, 31);
  EXPECT_EQ(raw_query(path_, "PRAGMA integrity_check"), "ok");
}

// chmod a-w says "do not write this", and ktune obeys even as root (who
// could): reading works, writing is refused up front, the bytes stay.
TEST_F(DatabaseTest, AFileWithoutWritePermissionIsOnlyRead) {
  make_database(5);
  fs::permissions(path_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  const std::string before = read_bytes(path_);
  try {
    Database::open(path_);
    ADD_FAILURE() << "opened a read-only file for writing";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path_.string()));
    EXPECT_THAT(e.what(), HasSubstr("read-only"));
  }
  {
    auto db = Database::open(path_, Database::Access::kReadOnly);
    EXPECT_EQ(db->counts().total, 5);
    EXPECT_TRUE(db->best("matmul(m=64,n=64,k=64)", "cpu/test/avx2/2t"));
    std::vector<Record> more = {make_record("w", 1, {1e-3})};
    try {
      db->insert(more);
      ADD_FAILURE() << "wrote a read-only file";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("read-only"));
    }
  }
  EXPECT_EQ(read_bytes(path_), before);
  fs::permissions(path_, fs::perms::owner_write, fs::perm_options::add);
  EXPECT_EQ(Database::open(path_)->counts().total, 5);
}

TEST(ToolVersionTest, NamesKtuneAndItsVersion) {
  EXPECT_EQ(tool_version(), std::string("ktune ") + KTUNE_VERSION);
}

}  // namespace
}  // namespace ktune
