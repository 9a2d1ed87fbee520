// Moving tuning results between machines: the JSONL record log and the best
// pack (db/jsonl.h), and `ktune export` / `ktune import` / `ktune best`
// through the real executable.
#include "db/jsonl.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "tests/ktune_command.h"
#include "tests/sample_record.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing::CommandOutput;
using testing::read_file;
using testing::run_ktune;
using testing::ScratchDir;

const std::string kDevice = "cpu/test/avx2/2t";
const std::string kOtherDevice = "cpu/other/avx512/4t";
const std::string kMatmul = "matmul(m=64,n=64,k=64)";
const std::string kDense = "dense(batch=1,in=64,out=32,bias=0)";

// A device description as the farm daemon stores it (protobuf's JSON).
const std::string kDeviceJson =
    R"({"target":{"kind":"cpu","device_key":"cpu/test/avx2/2t","cpu":{"model":"test","isa":"avx2",)"
    R"("vector_lanes":8,"threads":2,"l1d_bytes":"32768","l2_bytes":"524288","l3_bytes":"8388608",)"
    R"("compiler":"c++","flags":["-O3"]}},"host":"bench-1","description":"a test CPU",)"
    R"("cpu_model_name":"Test CPU @ 3 GHz","tool_version":"ktune 0.1.0"})";

const Template& matmul_template() { return *templates_for(OpKind::kMatmul, TargetKind::kCpu).at(0); }
const Template& dense_template() { return *templates_for(OpKind::kDense, TargetKind::kCpu).at(0); }

Record make_record(const std::string& workload, const Template& t, uint64_t config_index, std::vector<double> costs,
                   MeasureError error = MeasureError::kNone) {
  return testing::sample_record(Workload::parse(workload).key(), kDevice, t.name(), t.version(), config_index,
                                std::move(costs), error);
}

std::string export_text(const Database& db, const RecordFilter& filter = {}) {
  std::ostringstream out;
  export_jsonl(db, filter, out);
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  return text;
}

class ExportTest : public ::testing::Test {
 protected:
  std::unique_ptr<Database> open(const std::string& name) { return Database::open((dir_ / name).string()); }

  // Two workloads on two device keys: successes with awkward doubles, a
  // re-measured final marked best, failures with messages, a device
  // description. Returns the number of records.
  size_t fill(Database& db) {
    const Template& mm = matmul_template();
    std::vector<Record> batch = {
        make_record(kMatmul, mm, 0, {0.1 + 0.2, 1.0 / 3e5, 2.5e-3}),
        make_record(kMatmul, mm, 1, {}, MeasureError::kCompileError),
        make_record(kMatmul, mm, 2, {1e-3, 9.87654321012345e-4}),
        make_record(kMatmul, mm, 3, {}, MeasureError::kWrongAnswer),
        make_record(kDense, dense_template(), 5, {4.9406564584124654e-324, 7.000000000000001e-5}),
    };
    batch[1].result.error_message = "error: 'x' \"quoted\"\nnext line, µs, tab\t";
    batch[3].result.error_message = "output[3] = 1.5, expected 2";
    Record final = make_record(kMatmul, mm, 2, {1.0 / 1024, 1.0 / 1000});
    final.kind = "final";
    final.job = "job-7";
    batch.push_back(final);
    Record other = make_record(kMatmul, mm, 4, {7e-4});
    other.device_key = kOtherDevice;
    other.result.worker = "farm-host-3";
    batch.push_back(other);
    db.insert(batch);
    db.mark_best(batch[5].id);  // the final
    db.set_device(kDevice, kDeviceJson);
    return batch.size();
  }

  ScratchDir dir_{"ktune-export-test"};
};

TEST_F(ExportTest, RoundTripThroughAFreshDatabaseIsByteIdentical) {
  auto a = open("a.db");
  const size_t n = fill(*a);
  const std::string first = export_text(*a);
  ASSERT_EQ(lines_of(first).size(), n);

  auto b = open("b.db");
  std::istringstream in(first);
  ImportSummary s = import_jsonl(*b, in, "a.jsonl", false);
  EXPECT_EQ(s.lines, static_cast<int64_t>(n));
  EXPECT_EQ(s.imported, static_cast<int64_t>(n));
  EXPECT_EQ(s.duplicates, 0);
  EXPECT_EQ(s.skipped, 0);
  EXPECT_EQ(export_text(*b), first);

  // What a user sees: the same best, failures kept with their messages,
  // the device description.
  std::optional<Record> best = b->best(kMatmul, kDevice);
  ASSERT_TRUE(best);
  EXPECT_EQ(best->kind, "final");
  EXPECT_EQ(best->job, "job-7");
  EXPECT_EQ(best->result.costs, (std::vector<double>{1.0 / 1024, 1.0 / 1000}));
  EXPECT_EQ(b->counts().errors, 2);
  bool found_message = false;
  for (const Record& r : b->history(kMatmul, kDevice)) {
    if (r.result.error == MeasureError::kCompileError) {
      found_message = r.result.error_message == "error: 'x' \"quoted\"\nnext line, µs, tab\t";
    }
  }
  EXPECT_TRUE(found_message);
  ASSERT_TRUE(b->device(kDevice));
  EXPECT_EQ(nlohmann::json::parse(*b->device(kDevice)), nlohmann::json::parse(kDeviceJson));
  EXPECT_FALSE(b->device(kOtherDevice));
}

TEST_F(ExportTest, LinesCarryEveryFieldWithoutDatabaseIds) {
  auto a = open("a.db");
  fill(*a);
  const std::vector<std::string> lines = lines_of(export_text(*a));
  const nlohmann::json first = nlohmann::json::parse(lines.at(0));
  EXPECT_EQ(first["format"], "ktune-record");
  EXPECT_EQ(first["version"], 1);
  EXPECT_EQ(first["workload"], kMatmul);
  EXPECT_EQ(first["device"]["host"], "bench-1");
  EXPECT_EQ(first["template"], matmul_template().name());
  EXPECT_EQ(first["costs"][0].get<double>(), 0.1 + 0.2);  // exact
  EXPECT_EQ(first["marked_best"], false);
  EXPECT_FALSE(first.contains("id"));
  const nlohmann::json failed = nlohmann::json::parse(lines.at(1));
  EXPECT_EQ(failed["error"], "compile_error");
  EXPECT_TRUE(failed["mean_cost_s"].is_null());
  EXPECT_EQ(nlohmann::json::parse(lines.at(5))["marked_best"], true);
  EXPECT_TRUE(nlohmann::json::parse(lines.at(6))["device"].is_null());  // the other device key has none

  RecordFilter only_dense;
  only_dense.workload_keys = {kDense};
  EXPECT_EQ(lines_of(export_text(*a, only_dense)).size(), 1u);
  RecordFilter other;
  other.device_key = kOtherDevice;
  EXPECT_EQ(lines_of(export_text(*a, other)).size(), 1u);
  RecordFilter bests;
  bests.best_only = true;
  EXPECT_EQ(lines_of(export_text(*a, bests)).size(), 3u);  // matmul and dense on kDevice, matmul on the other
}

TEST_F(ExportTest, ImportingTheSameFileTwiceAddsNothing) {
  auto a = open("a.db");
  const size_t n = fill(*a);
  const std::string log = export_text(*a);
  auto b = open("b.db");
  std::istringstream first(log);
  import_jsonl(*b, first, "a.jsonl", false);
  const std::string after_first = export_text(*b);

  std::istringstream second(log);
  ImportSummary s = import_jsonl(*b, second, "a.jsonl", false);
  EXPECT_EQ(s.imported, 0);
  EXPECT_EQ(s.duplicates, static_cast<int64_t>(n));
  EXPECT_EQ(s.marked, 0);
  EXPECT_EQ(b->counts().total, static_cast<int64_t>(n));
  EXPECT_EQ(export_text(*b), after_first);

  // And into the database it came from.
  std::istringstream back(log);
  EXPECT_EQ(import_jsonl(*a, back, "a.jsonl", false).imported, 0);
  EXPECT_EQ(export_text(*a), log);
}

TEST_F(ExportTest, ACorruptLineImportsNothingAndNamesTheLine) {
  auto a = open("a.db");
  fill(*a);
  std::vector<std::string> lines = lines_of(export_text(*a));
  lines[2] = lines[2].substr(0, lines[2].size() / 2);  // truncated JSON
  const std::string log = joined(lines);

  auto b = open("b.db");
  std::vector<Record> existing = {make_record(kMatmul, matmul_template(), 9, {5e-3})};
  b->insert(existing);
  const std::string before = export_text(*b);
  std::istringstream in(log);
  try {
    import_jsonl(*b, in, "a.jsonl", false);
    ADD_FAILURE() << "a truncated line was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith("a.jsonl:3: not valid JSON"));
  }
  EXPECT_EQ(b->counts().total, 1);
  EXPECT_EQ(export_text(*b), before);

  std::istringstream again(log);
  ImportSummary s = import_jsonl(*b, again, "a.jsonl", true);
  EXPECT_EQ(s.imported, static_cast<int64_t>(lines.size()) - 1);
  EXPECT_EQ(s.skipped, 1);
  ASSERT_EQ(s.problems.size(), 1u);
  EXPECT_THAT(s.problems[0], StartsWith("a.jsonl:3: "));
  EXPECT_EQ(b->counts().total, static_cast<int64_t>(lines.size()));
}

// Each bad line is refused with a reason that names what is wrong.
TEST_F(ExportTest, BadLinesAreRefusedWithTheirReason) {
  auto a = open("a.db");
  fill(*a);
  const std::string good = lines_of(export_text(*a)).at(0);
  const int version = matmul_template().version();
  struct Case {
    std::string what;
    std::function<void(nlohmann::ordered_json&)> spoil;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"newer template version", [&](auto& j) { j["template_version"] = version + 1; },
       "is version " + std::to_string(version) + " in this build, not version " + std::to_string(version + 1)},
      {"unknown template", [](auto& j) { j["template"] = "matmul_cpu_from_the_future"; },
       "template 'matmul_cpu_from_the_future' is not in this build"},
      {"template of another operator", [](auto& j) { j["template"] = dense_template().name(); },
       "template " + dense_template().name()},
      {"unknown error", [](auto& j) { j["error"] = "exploded"; }, "field 'error'"},
      {"unknown kind", [](auto& j) { j["kind"] = "guess"; }, "field 'kind': 'guess'"},
      {"cost of the wrong type", [](auto& j) { j["costs"][1] = "fast"; }, "field 'costs'[1]"},
      {"infinite cost", [](auto& j) { j["costs"][0] = std::numeric_limits<double>::infinity(); },
       "field 'costs'[0]"},  // dumped as null
      {"missing field", [](auto& j) { j.erase("timestamp"); }, "missing field 'timestamp'"},
      {"string index", [](auto& j) { j["config_index"] = "7"; }, "field 'config_index': expected an integer"},
      {"negative index", [](auto& j) { j["config_index"] = -7; }, "field 'config_index': -7 is negative"},
      {"bad workload", [](auto& j) { j["workload"] = "matmul(m=0,n=4,k=4)"; }, "field 'workload'"},
      {"other format", [](auto& j) { j["format"] = "tvm-log"; }, "format 'tvm-log'"},
      {"newer format version", [](auto& j) { j["version"] = 2; }, "format version 2"},
      {"best of a failure", [](auto& j) { j["error"] = "wrong_answer"; j["mean_cost_s"] = nullptr; j["marked_best"] = true; },
       "field 'marked_best'"},
      {"device of another key", [](auto& j) { j["device"]["target"]["device_key"] = "cpu/x"; }, "field 'device'"},
      {"device without a target", [](auto& j) { j["device"].erase("target"); }, "field 'device': device description: field 'target': missing"},
      {"device of an unusable target", [](auto& j) { j["device"]["target"]["cpu"]["threads"] = 0; },
       "field 'device': device description: target: cpu.threads must be positive"},
  };
  for (const Case& c : cases) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(good);
    c.spoil(j);
    std::istringstream in("\n" + good + "\n" + j.dump() + "\n");
    auto db = open("bad-" + std::to_string(&c - cases.data()) + ".db");
    try {
      import_jsonl(*db, in, "x.jsonl", false);
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), StartsWith("x.jsonl:3: ")) << c.what;
      EXPECT_THAT(e.what(), HasSubstr(c.reason)) << c.what;
    }
    EXPECT_EQ(db->counts().total, 0) << c.what;
  }
  std::istringstream not_object("[1,2]\n");
  EXPECT_THROW(read_jsonl(not_object, "x.jsonl", false), Error);
}

TEST_F(ExportTest, BestPackCarriesTheBestConfigToAFreshDatabase) {
  auto a = open("a.db");
  fill(*a);
  const nlohmann::ordered_json pack = best_pack(*a, {});
  EXPECT_EQ(pack["format"], "ktune-best-pack");
  EXPECT_EQ(pack["version"], 1);
  EXPECT_EQ(pack["generated_by"], tool_version());
  ASSERT_EQ(pack["entries"].size(), 3u);

  auto b = open("b.db");
  ImportSummary s = import_best_pack(*b, pack.dump(2), "pack.json");
  EXPECT_EQ(s.imported, 3);
  EXPECT_EQ(s.marked, 3);
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {kMatmul, kDevice}, {kDense, kDevice}, {kMatmul, kOtherDevice}};
  for (const auto& [workload, device] : pairs) {
    std::optional<Record> from = a->best(workload, device), to = b->best(workload, device);
    ASSERT_TRUE(from && to) << workload << " on " << device;
    EXPECT_EQ(to->template_name, from->template_name);
    EXPECT_EQ(to->template_version, from->template_version);
    EXPECT_EQ(to->config_index, from->config_index);
    EXPECT_EQ(to->config_text, from->config_text);
    EXPECT_EQ(to->result.mean_cost(), from->result.mean_cost());
    EXPECT_EQ(to->kind, from->kind);
    EXPECT_EQ(to->job, "import");
  }
  EXPECT_TRUE(b->device(kDevice));
  // Twice: nothing more. Back into its origin: its records are there already.
  EXPECT_EQ(import_best_pack(*b, pack.dump(), "pack.json").imported, 0);
  EXPECT_EQ(b->counts().total, 3);
  const int64_t total = a->counts().total;
  EXPECT_EQ(import_best_pack(*a, pack.dump(), "pack.json").duplicates, 3);
  EXPECT_EQ(a->counts().total, total);
}

TEST_F(ExportTest, ASlowerImportedBestKeepsTheFasterOne) {
  auto a = open("a.db");
  fill(*a);  // matmul's best on kDevice: mean of 1/1024 and 1/1000 s
  const nlohmann::ordered_json pack = best_pack(*a, {});

  auto b = open("b.db");
  std::vector<Record> fast = {make_record(kMatmul, matmul_template(), 11, {2e-4})};
  b->insert(fast);
  b->mark_best(fast[0].id);
  std::vector<Record> slow = {make_record(kDense, dense_template(), 12, {9e-3})};
  b->insert(slow);
  b->mark_best(slow[0].id);

  ImportSummary s = import_best_pack(*b, pack.dump(), "pack.json");
  EXPECT_EQ(s.imported, 3);      // the records are kept either way
  EXPECT_EQ(s.kept_existing, 1);  // matmul: the database's is faster
  EXPECT_EQ(s.marked, 2);         // dense: the pack's is faster; matmul on the other key: new
  EXPECT_EQ(b->best(kMatmul, kDevice)->config_index, 11u);
  EXPECT_EQ(b->best(kDense, kDevice)->config_index, 5u);
}

TEST_F(ExportTest, ABadPackEntryImportsNothing) {
  auto a = open("a.db");
  fill(*a);
  nlohmann::ordered_json pack = best_pack(*a, {});
  pack["entries"][1]["template_version"] = 999;
  auto b = open("b.db");
  try {
    import_best_pack(*b, pack.dump(), "pack.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith("pack.json: entries[1]: template "));
    EXPECT_THAT(e.what(), HasSubstr("version 999"));
  }
  EXPECT_EQ(b->counts().total, 0);
  EXPECT_THROW(import_best_pack(*b, "{\"format\":\"ktune-record\"}", "pack.json"), Error);
  EXPECT_THROW(import_best_pack(*b, "not json", "pack.json"), Error);
}

// Found by fuzz/fuzz_best_pack: a number too large for a double is not a
// JSON parse error to nlohmann (out_of_range 406), and escaped the import's
// error handling.
TEST_F(ExportTest, ANumberTooLargeForADoubleIsABadLine) {
  auto a = open("a.db");
  fill(*a);
  const std::string good = lines_of(export_text(*a)).at(0);
  std::string huge = good;
  huge.replace(huge.find("\"timestamp\":") + 12, 0, "1e999,\"x\":");
  std::istringstream in(good + "\n" + huge + "\n");
  try {
    read_jsonl(in, "x.jsonl", false);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith("x.jsonl:2: not valid JSON"));
  }
  std::istringstream again(good + "\n" + huge + "\n");
  const ImportFile skipping = read_jsonl(again, "x.jsonl", true);
  EXPECT_EQ(skipping.batch.records.size(), 1u);
  EXPECT_EQ(skipping.skipped, 1);
  std::string pack = best_pack(*a, {}).dump();
  pack.replace(pack.find("\"version\":") + 10, 0, "1.5e977,\"x\":");
  try {
    read_best_pack(pack, "pack.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith("pack.json: not valid JSON"));
  }
}

// The commands, through the real executable.
class ExportCliTest : public ExportTest {
 protected:
  CommandOutput ktune(std::vector<std::string> args) { return run_ktune(dir_.path(), std::move(args)); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
};

TEST_F(ExportCliTest, TunedRecordsTravelToAnotherDatabase) {
  const std::string op = "matmul(m=32,n=32,k=32)";
  CommandOutput tune = ktune({"tune", "--op", op, "--trials", "4", "--db", path("a.db"), "--threads", "1",
                              "--repeat", "1", "--final-top", "1", "--format", "json"});
  ASSERT_EQ(tune.exit_code, 0) << tune.err;
  const std::string device_key = nlohmann::json::parse(tune.out)[0]["device_key"];

  CommandOutput exported = ktune({"export", "--format", "jsonl", "--db", path("a.db")});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::vector<std::string> lines = lines_of(exported.out);
  ASSERT_GE(lines.size(), 5u);  // 4 trials and the re-measured best
  const nlohmann::json line = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(line["device"]["target"]["device_key"], device_key) << "ktune tune stores the device description";
  EXPECT_FALSE(line["device"]["cpu_model_name"].is_null());

  std::ofstream(path("a.jsonl")) << exported.out;
  CommandOutput imported = ktune({"import", path("a.jsonl"), "--db", path("b.db")});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(imported.out, "imported " + std::to_string(lines.size()) + " records (0 already present, 0 bad lines skipped)\n");
  CommandOutput again = ktune({"export", "--format", "jsonl", "--db", path("b.db"), "--out", path("b.jsonl")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_file(path("b.jsonl")), exported.out);
  CommandOutput twice = ktune({"import", path("a.jsonl"), "--db", path("b.db")});
  EXPECT_EQ(twice.out, "imported 0 records (" + std::to_string(lines.size()) + " already present, 0 bad lines skipped)\n");

  // The best pack, and `ktune best` without --op lists what it holds.
  CommandOutput pack = ktune({"export", "--format", "json", "--best", "--db", path("a.db"), "--out", path("p.json")});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  EXPECT_EQ(pack.out, "wrote " + path("p.json") + " (1 best config)\n");
  ASSERT_EQ(ktune({"import", "--best", path("p.json"), "--db", path("c.db")}).exit_code, 0);
  CommandOutput a_best = ktune({"best", "--db", path("a.db"), "--device-key", device_key, "--format", "json"});
  CommandOutput c_best = ktune({"best", "--db", path("c.db"), "--device-key", device_key, "--format", "json"});
  ASSERT_EQ(c_best.exit_code, 0) << c_best.err;
  const nlohmann::json a_list = nlohmann::json::parse(a_best.out), c_list = nlohmann::json::parse(c_best.out);
  ASSERT_EQ(c_list.size(), 1u);
  EXPECT_EQ(c_list[0]["workload"], op);
  EXPECT_EQ(c_list[0]["config_index"], a_list[0]["config_index"]);
  EXPECT_EQ(c_list[0]["mean_cost_s"], a_list[0]["mean_cost_s"]);
}

TEST_F(ExportCliTest, BestWithoutOpListsEveryWorkloadOfTheDevice) {
  {
    auto db = open("a.db");
    fill(*db);
  }
  CommandOutput text = ktune({"best", "--db", path("a.db"), "--device-key", kDevice});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr(kMatmul + " on " + kDevice));
  EXPECT_THAT(text.out, HasSubstr(kDense + " on " + kDevice));
  EXPECT_THAT(text.out, HasSubstr("final measurement"));
  CommandOutput json = ktune({"best", "--db", path("a.db"), "--device-key", kDevice, "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out).size(), 2u);
  CommandOutput one = ktune({"best", "--db", path("a.db"), "--device-key", kDevice, "--op", kDense});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.out, Not(HasSubstr(kMatmul)));
  CommandOutput none = ktune({"best", "--db", path("a.db"), "--device-key", "cpu/none/sse2/1t"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.out, HasSubstr("no valid best on cpu/none/sse2/1t"));
}

TEST_F(ExportCliTest, BadInputIsRefusedWithExitCode2) {
  {
    auto db = open("a.db");
    fill(*db);
    std::vector<std::string> lines = lines_of(export_text(*db));
    lines[2] = lines[2].substr(0, 20);
    std::ofstream(path("bad.jsonl")) << joined(lines);
  }
  CommandOutput bad = ktune({"import", path("bad.jsonl"), "--db", path("b.db")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, StartsWith("ktune: error: " + path("bad.jsonl") + ":3: not valid JSON"));
  EXPECT_FALSE(fs::exists(path("b.db"))) << "a bad file must not create a database";

  CommandOutput skipped = ktune({"import", path("bad.jsonl"), "--db", path("b.db"), "--skip-bad"});
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_EQ(skipped.out, "imported 6 records (0 already present, 1 bad lines skipped)\n");
  EXPECT_THAT(skipped.err, HasSubstr("skipped " + path("bad.jsonl") + ":3: "));

  CommandOutput json_all = ktune({"export", "--format", "json", "--db", path("a.db")});
  EXPECT_EQ(json_all.exit_code, 2);
  EXPECT_THAT(json_all.err, HasSubstr("give --best"));
  CommandOutput yaml = ktune({"export", "--format", "yaml", "--db", path("a.db")});
  EXPECT_EQ(yaml.exit_code, 2);
  EXPECT_THAT(yaml.err, HasSubstr("accepted formats are jsonl, json, cpp"));
  CommandOutput missing = ktune({"export", "--format", "jsonl", "--db", path("typo.db")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no database " + path("typo.db")));
  EXPECT_FALSE(fs::exists(path("typo.db")));
  CommandOutput cpp = ktune({"export", "--format", "cpp", "--db", path("a.db")});
  EXPECT_EQ(cpp.exit_code, 2);
  EXPECT_THAT(cpp.err, HasSubstr("--out DIR"));
  CommandOutput nothing = ktune({"export", "--format", "jsonl", "--db", path("a.db"), "--device-key", "cpu/none"});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_EQ(nothing.out, "");
}

}  // namespace
}  // namespace ktune
