// `ktune report`: the HTML page from a real tuning database — its table,
// totals, charts and escaping; that it references nothing on the network;
// that a headless browser runs it; and the command's errors and output.
#include "report/html_report.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "schedule_space/error.h"
#include "tests/ktune_command.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;
using testing::CommandOutput;
using testing::read_file;

const char* kDevice = "cpu/test/avx2/2t";
const char* kMatmul = "matmul(m=64,n=64,k=64)";
const char* kDense = "dense(batch=1,in=64,out=32,bias=0)";
// Not a real operator: a key with every character HTML must escape.
const char* kOdd = "odd<op>(a=\"1\"&b='2')";
const char* kOddEscaped = "odd&lt;op&gt;(a=&quot;1&quot;&amp;b=&#39;2&#39;)";
// As a browser serializes that text node (quotes need no escaping there).
const char* kOddInDom = "odd&lt;op&gt;(a=\"1\"&amp;b='2')";

constexpr double kFlops = 2.0 * 64 * 64 * 64;

Record make_record(const std::string& workload, uint64_t config_index, std::optional<double> cost,
                   const std::string& kind = "search", const std::string& device = kDevice) {
  Record r;
  r.workload_key = workload;
  r.device_key = device;
  r.template_name = "matmul.cpu.tiled";
  r.template_version = 2;
  r.config_index = config_index;
  r.config_text = "tile_m=[4,8] order=mnk #" + std::to_string(config_index);
  if (cost) {
    r.result.costs = {*cost, *cost};
  } else {
    r.result.error = MeasureError::kWrongAnswer;
    r.result.error_message = "failed: wrong_answer";
  }
  r.result.worker = "local";
  r.result.timestamp = 1700000000 + static_cast<int64_t>(config_index);
  r.flops = kFlops;
  r.kind = kind;
  r.tool_version = tool_version();
  r.build_flags = "c++ -O3 -march=native";
  return r;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

class ReportTest : public ::testing::Test {
 protected:
  // Three workloads whose searches get faster:
  //   matmul: 4, 3, (failed), 1, 2 ms, then a re-measured 0.9 ms marked best;
  //   dense:  2, 1, 0.5 ms, no mark (the fastest is the best);
  //   odd:    (failed), 8, 4 ms: its default config failed.
  void SetUp() override {
    db_ = Database::open(db_path());
    std::vector<Record> records = {
        make_record(kMatmul, 1, 4e-3), make_record(kMatmul, 2, 3e-3), make_record(kMatmul, 3, std::nullopt),
        make_record(kDense, 1, 2e-3),  make_record(kMatmul, 4, 1e-3), make_record(kMatmul, 5, 2e-3),
        make_record(kDense, 2, 1e-3),  make_record(kDense, 3, 0.5e-3), make_record(kOdd, 1, std::nullopt),
        make_record(kOdd, 2, 8e-3),    make_record(kOdd, 3, 4e-3),     make_record(kMatmul, 4, 0.9e-3, "final"),
    };
    db_->insert(records);
    db_->mark_best(records[11].id);
  }

  std::string db_path() const { return (dir_ / "k.db").string(); }

  testing::ScratchDir dir_{"ktune-report-test"};
  std::unique_ptr<Database> db_;
};

TEST_F(ReportTest, TableHasARowPerTaskWithBestSpeedupsAndTotals) {
  std::string html = render_html_report(*db_, {});
  EXPECT_EQ(count(html, "<tr class=\"task\">"), 3u);
  EXPECT_NE(html.find(kMatmul), std::string::npos);
  EXPECT_NE(html.find(kDense), std::string::npos);
  EXPECT_NE(html.find(kOddEscaped), std::string::npos);
  // The marked best, not the fastest search record; its GFLOP/s.
  EXPECT_NE(html.find(">0.9000</td>"), std::string::npos);
  EXPECT_NE(html.find(">0.58</td>"), std::string::npos);  // 2*64^3 flop in 0.9 ms
  // Speedup over the first search record: 4/0.9, 2/0.5; the odd one's default failed.
  EXPECT_NE(html.find(">4.44\u00d7</td>"), std::string::npos) << html;
  EXPECT_NE(html.find(">4.00\u00d7</td>"), std::string::npos);
  // Trials count search records, failed ones included.
  EXPECT_NE(html.find(">5 <span class=\"note\">(1 failed)</span></td>"), std::string::npos);
  // Total of weight x best: 0.9 + 0.5 + 4 ms; against the defaults over the
  // two tasks whose default ran: (4 + 2) / (0.9 + 0.5).
  EXPECT_NE(html.find("total (estimated)"), std::string::npos);
  EXPECT_NE(html.find(">5.400</td>"), std::string::npos);
  EXPECT_NE(html.find(">4.29\u00d7</td>"), std::string::npos);
  EXPECT_NE(html.find(tool_version()), std::string::npos);
  EXPECT_NE(html.find(kDevice), std::string::npos);
}

TEST_F(ReportTest, GivenTasksCarryWeightsAndBaselines) {
  ReportInput input;
  input.device_key = kDevice;
  input.model_name = "resnet<18>";
  input.tasks = {{.workload_key = kMatmul, .weight = 2, .baseline_s = 1.8e-3, .baseline_name = "OpenBLAS"},
                 {.workload_key = kDense},
                 {.workload_key = "matmul(m=8,n=8,k=8)", .weight = 3}};
  std::string html = render_html_report(*db_, input);
  EXPECT_EQ(count(html, "<tr class=\"task\">"), 3u);
  EXPECT_NE(html.find("resnet&lt;18&gt;"), std::string::npos);
  EXPECT_NE(html.find("vs baseline"), std::string::npos);
  EXPECT_NE(html.find(">2.00\u00d7 <span class=\"note\">OpenBLAS 1.800 ms</span></td>"), std::string::npos) << html;
  EXPECT_NE(html.find(">1.800</td>"), std::string::npos);  // weight 2 x 0.9 ms
  EXPECT_NE(html.find("not measured"), std::string::npos);  // the matmul never tuned
  EXPECT_EQ(html.find(kOddEscaped), std::string::npos);      // not asked for
}

TEST_F(ReportTest, ChartsAreInlineSvgWithACurvePerTask) {
  std::string html = render_html_report(*db_, {});
  EXPECT_EQ(count(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart curves\""), 1u);
  EXPECT_EQ(count(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart speedups\""), 1u);
  EXPECT_EQ(count(html, "<polyline class=\"curve\""), 3u);
  EXPECT_EQ(count(html, "<rect class=\"bar default\""), 3u);  // the legend's and two bars
  EXPECT_NE(html.find("the default config failed"), std::string::npos);
  EXPECT_NE(html.find("data-report-ok"), std::string::npos);
  EXPECT_EQ(html.find("odd<op>"), std::string::npos) << "unescaped workload key";
}

TEST_F(ReportTest, PageReferencesNothingOnTheNetwork) {
  std::string html = render_html_report(*db_, {});
  const std::string svg_namespace = "http://www.w3.org/2000/svg\"";
  for (const char* scheme : {"http://", "https://", "//fonts.", "@import", "<link", "src="}) {
    for (size_t at = html.find(scheme); at != std::string::npos; at = html.find(scheme, at + 1)) {
      EXPECT_EQ(html.compare(at, svg_namespace.size(), svg_namespace), 0)
          << "external reference at " << at << ": " << html.substr(at, 60);
    }
  }
}

TEST_F(ReportTest, EveryDeviceKeyGetsASection) {
  std::vector<Record> other = {make_record(kDense, 1, 3e-3, "search", "cpu/other/avx512/4t")};
  db_->insert(other);
  std::string html = render_html_report(*db_, {});
  EXPECT_EQ(count(html, "<section class=\"device\">"), 2u);
  EXPECT_EQ(count(html, "class=\"chart curves\""), 2u);
  EXPECT_NE(html.find("<h2>cpu/other/avx512/4t</h2>"), std::string::npos);
  // Asked for one device key: only its section.
  ReportInput input;
  input.device_key = "cpu/other/avx512/4t";
  EXPECT_EQ(count(render_html_report(*db_, input), "<section class=\"device\">"), 1u);
}

TEST_F(ReportTest, NothingToReportIsAnErrorNamingWhat) {
  ReportInput unknown_device;
  unknown_device.device_key = "cpu/nowhere/sse2/1t";
  try {
    render_html_report(*db_, unknown_device);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing to report"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpu/nowhere/sse2/1t"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(kDevice), std::string::npos) << "should list the device keys there are";
  }
  ReportInput untuned;
  untuned.tasks = {{.workload_key = "matmul(m=8,n=8,k=8)"}};
  EXPECT_THROW(render_html_report(*db_, untuned), Error);
  ReportInput bad_weight;
  bad_weight.tasks = {{.workload_key = kMatmul, .weight = 0}};
  EXPECT_THROW(render_html_report(*db_, bad_weight), Error);

  std::unique_ptr<Database> empty = Database::open((dir_ / "empty.db").string());
  EXPECT_THROW(render_html_report(*empty, {}), Error);
}

// --- In a headless browser -------------------------------------------------

std::optional<std::string> find_program(const std::vector<std::string>& names) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::vector<std::string> candidates;
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty()) candidates.push_back(dir);
  }
  for (const std::string& name : names) {
    for (const std::string& dir : candidates) {
      std::string exe = dir + "/" + name;
      if (::access(exe.c_str(), X_OK) == 0) return exe;
    }
  }
  return std::nullopt;
}

struct BrowserRun {
  bool timed_out = false;
  int exit_code = -1;
  std::string out;
};

// Runs argv (argv[0] a path) in its own process group with stdout captured
// and stderr to err_path; after timeout, kills the whole group.
BrowserRun run_with_timeout(std::vector<std::string> argv, const fs::path& err_path,
                            std::chrono::seconds timeout) {
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out_pipe[1], 1);
    dup2(open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    dup2(open("/dev/null", O_RDONLY), 0);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the kill below cannot miss the group
  ::close(out_pipe[1]);
  BrowserRun run;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool eof = false;
  int status = 0;
  while (!eof) {
    if (std::chrono::steady_clock::now() > deadline) {
      run.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {
      char buf[65536];
      ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n > 0) run.out.append(buf, static_cast<size_t>(n));
      eof = n == 0;
    }
    // A helper process left behind may hold the pipe open: the browser's
    // exit, with nothing more to read, ends the run too.
    if (!eof && ::waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      pollfd rest{out_pipe[0], POLLIN, 0};
      while (::poll(&rest, 1, 200) > 0) {
        char buf[65536];
        ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
        if (n <= 0) break;
        run.out.append(buf, static_cast<size_t>(n));
      }
      break;
    }
  }
  ::close(out_pipe[0]);
  if (pid > 0) ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

TEST_F(ReportTest, HeadlessChromiumRunsThePageScriptAndRendersTheCharts) {
  std::optional<std::string> chromium = find_program({"chromium", "chromium-browser"});
  if (!chromium) {
    GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  }
  ReportInput input;
  input.tasks = {{.workload_key = kMatmul, .weight = 2, .baseline_s = 1.8e-3, .baseline_name = "OpenBLAS"},
                 {.workload_key = kDense},
                 {.workload_key = kOdd}};
  fs::path page = dir_ / "report.html";
  std::ofstream(page) << render_html_report(*db_, input);
  fs::path err = dir_ / "chromium.stderr";
  BrowserRun run = run_with_timeout({*chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                     "--disable-dev-shm-usage", "--no-first-run",
                                     "--disable-background-networking",
                                     "--user-data-dir=" + (dir_ / "chromium-profile").string(), "--dump-dom",
                                     "file://" + page.string()},
                                    err, std::chrono::seconds(60));
  ASSERT_FALSE(run.timed_out) << "chromium did not finish in 60 s; stderr:\n" << read_file(err);
  ASSERT_EQ(run.exit_code, 0) << read_file(err);
  EXPECT_NE(run.out.find("data-report-ok=\"1\""), std::string::npos)
      << "the page's script did not run to the end; stderr:\n" << read_file(err) << "\nDOM:\n" << run.out;
  EXPECT_NE(run.out.find("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart curves\""), std::string::npos);
  EXPECT_NE(run.out.find("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart speedups\""), std::string::npos);
  EXPECT_EQ(count(run.out, "<polyline class=\"curve\""), 3u);
  EXPECT_NE(run.out.find(kOddInDom), std::string::npos) << "the key must be text, not markup";
}

// --- The command -----------------------------------------------------------

TEST_F(ReportTest, CommandWritesTheReportAndSaysSo) {
  fs::path out = dir_ / "out.html";
  CommandOutput r = testing::run_ktune(dir_.path(), {"report", "--db", db_path(), "--out", out.string(),
                                                     "--title", "nightly <run>"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote " + out.string() + " (3 tasks)\n");
  std::string html = read_file(out);
  EXPECT_NE(html.find("<title>nightly &lt;run&gt;</title>"), std::string::npos);
  EXPECT_EQ(count(html, "<tr class=\"task\">"), 3u);

  // --op picks workloads, in canonical form; given twice, weight 2.
  CommandOutput ops = testing::run_ktune(
      dir_.path(), {"report", "--db", db_path(), "--device-key", kDevice, "--op", "matmul(k=64,n=64,m=64)", "--op",
                    kMatmul, "--out", out.string()});
  ASSERT_EQ(ops.exit_code, 0) << ops.err;
  EXPECT_EQ(ops.out, "wrote " + out.string() + " (1 tasks)\n");
  EXPECT_NE(read_file(out).find(">1.800</td>"), std::string::npos);  // 2 x 0.9 ms
}

TEST_F(ReportTest, CommandErrorsAreOneLineAndExitTwo) {
  fs::path missing = dir_ / "missing.db";
  CommandOutput no_db = testing::run_ktune(dir_.path(), {"report", "--db", missing.string(), "--out", (dir_ / "x.html").string()});
  EXPECT_EQ(no_db.exit_code, 2);
  EXPECT_EQ(no_db.err, "ktune: error: no database " + missing.string() + "\n");
  EXPECT_FALSE(fs::exists(missing)) << "a missing database must not be created";

  CommandOutput nothing = testing::run_ktune(
      dir_.path(), {"report", "--db", db_path(), "--device-key", "cpu/nowhere/sse2/1t", "--out", (dir_ / "x.html").string()});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("nothing to report"), std::string::npos) << nothing.err;
  EXPECT_EQ(count(nothing.err, "\n"), 1u) << nothing.err;

  fs::path unwritable = dir_ / "no-such-dir" / "x.html";
  CommandOutput cannot = testing::run_ktune(dir_.path(), {"report", "--db", db_path(), "--out", unwritable.string()});
  EXPECT_EQ(cannot.exit_code, 2);
  EXPECT_NE(cannot.err.find("cannot write the report to " + unwritable.string()), std::string::npos) << cannot.err;

  CommandOutput help = testing::run_ktune(dir_.path(), {"report", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--out"), std::string::npos);
}

}  // namespace
}  // namespace ktune
