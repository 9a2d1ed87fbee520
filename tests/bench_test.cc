// `ktune bench`: the agreement check in front of the timing, the library
// baselines, the FMA peak, and the command end to end.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "db/database.h"
#include "measure/baselines.h"
#include "measure/bench.h"
#include "measure/builder.h"
#include "measure/peak.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/template.h"

#include "tests/ktune_command.h"
#include "tests/scratch_dir.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;

class BenchTest : public ::testing::Test {
 protected:

  Builder builder() const { return Builder((dir_ / "cache").string(), 1); }

  std::string build(const std::string& source) const {
    BuildResult built = builder().build(source, target_.cpu, 120);
    EXPECT_EQ(built.error, MeasureError::kNone) << built.message;
    return built.artifact_path;
  }

  // A valid config of the operator's default template, built.
  std::string build_default_kernel(const Workload& w, std::string* transforms = nullptr) const {
    const Template& tmpl = *templates_for(w.op(), TargetKind::kCpu).front();
    const ConfigSpace space = tmpl.space(w, target_);
    for (uint64_t i = 0; i < space.size(); ++i) {
      const Config c = space.get(i);
      if (tmpl.check(w, target_, space, c)) continue;
      const ir::Program p = tmpl.instantiate(w, target_, space, c);
      if (transforms) *transforms = describe_timed_transforms(p);
      return build(emit_cpp(p));
    }
    ADD_FAILURE() << "no valid config of " << tmpl.name() << " for " << w.key();
    return "";
  }

  static BenchOptions quick() {
    BenchOptions o;
    o.rounds = 2;
    o.min_sample_s = 0.001;
    return o;
  }

  Target target_ = detect_cpu_target(1);
  ktune::testing::ScratchDir dir_{"ktune-bench-test"};
};

// A matmul kernel that forgets the last step of the reduction: close to the
// right answer, but not within the tolerance.
std::string wrong_matmul_source(int n) {
  std::ostringstream s;
  s << "#include <cstdint>\n"
    << "extern \"C\" int ktune_abi_version(void) { return " << kKernelAbiVersion << "; }\n"
    << "extern \"C\" int64_t ktune_workspace_floats(void) { return 0; }\n"
    << "extern \"C\" void ktune_prepare(const float* const*, float*) {}\n"
    << "extern \"C\" void ktune_run(const float* const* in, float* out, float*) {\n"
    << "  const int n = " << n << ";\n"
    << "  for (int i = 0; i < n; ++i)\n"
    << "    for (int j = 0; j < n; ++j) {\n"
    << "      float acc = 0;\n"
    << "      for (int k = 0; k < n - 1; ++k) acc += in[0][i * n + k] * in[1][k * n + j];\n"
    << "      out[i * n + j] = acc;\n"
    << "    }\n"
    << "}\n";
  return s.str();
}

TEST_F(BenchTest, TheAgreementCheckCatchesAWrongKernelAndNamesIt) {
  const Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  BenchData data(w);
  auto tuned = make_tuned_contender(build(wrong_matmul_source(16)), data, "none");
  Baselines baselines = make_baselines(data, 1);
  std::vector<Contender*> contenders = {tuned.get()};
  for (auto& b : baselines.contenders) contenders.push_back(b.get());

  BenchResult r = run_bench(data, contenders, quick());
  EXPECT_FALSE(r.agree());
  ASSERT_EQ(r.disagreements.size(), 1u) << "only the wrong kernel disagrees";
  EXPECT_EQ(r.disagreements[0].who, "ktune");
  EXPECT_NE(r.disagreements[0].message.find("elements wrong"), std::string::npos)
      << r.disagreements[0].message;
  EXPECT_TRUE(r.timings.empty()) << "nothing is timed once a side disagrees";
}

TEST_F(BenchTest, ATunedMatmulAgreesWithOpenBlasAndBothAreTimed) {
  const Workload w = Workload::parse("matmul(m=24,n=40,k=16)");
  BenchData data(w);
  auto tuned = make_tuned_contender(build_default_kernel(w), data, "none");
  Baselines baselines = make_baselines(data, 1);
  std::vector<Contender*> contenders = {tuned.get()};
  for (auto& b : baselines.contenders) contenders.push_back(b.get());

  BenchResult r = run_bench(data, contenders, quick());
  ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
  ASSERT_EQ(r.timings.size(), contenders.size());
  EXPECT_EQ(r.timings[0].library, "ktune");
  for (const ContenderTiming& t : r.timings) {
    EXPECT_EQ(t.seconds.size(), 2u) << t.display_name();
    EXPECT_GT(t.gflops, 0) << t.display_name();
    EXPECT_LE(t.min_s, t.median_s);
    EXPECT_LE(t.median_s, t.max_s);
  }
  if (!have_openblas()) {
    ASSERT_EQ(baselines.missing.size(), 1u);
    EXPECT_NE(baselines.missing[0].find("install libopenblas-dev and rebuild"), std::string::npos);
    GTEST_SKIP() << "built without OpenBLAS: no sgemm baseline to compare with";
  }
  ASSERT_NE(r.best_primary("openblas"), nullptr);
  EXPECT_EQ(r.best_primary("openblas")->variant, "sgemm");
}

TEST_F(BenchTest, Batch1DenseHasBothSgemmAndSgemvBaselines) {
  if (!have_openblas()) GTEST_SKIP() << "built without OpenBLAS";
  const Workload w = Workload::parse("dense(batch=1,in=32,out=20,bias=1)");
  BenchData data(w);
  Baselines baselines = make_baselines(data, 1);
  std::vector<Contender*> contenders;
  for (auto& b : baselines.contenders) contenders.push_back(b.get());
  ASSERT_EQ(contenders.size(), 2u);
  BenchResult r = run_bench(data, contenders, quick());
  ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
  EXPECT_EQ(r.timings[0].variant, "sgemm");
  EXPECT_EQ(r.timings[1].variant, "sgemv");
}

TEST_F(BenchTest, ConvolutionsAgreeWithOneDnnAndSayWhatIsTimed) {
  for (const char* spec : {"conv2d(n=1,c=8,h=10,w=10,k=16,r=3,s=3,stride=2,pad=1)",
                           "depthwise_conv2d(n=1,c=16,h=9,w=9,r=3,s=3,stride=1,pad=1)"}) {
    SCOPED_TRACE(spec);
    const Workload w = Workload::parse(spec);
    BenchData data(w);
    std::string transforms;
    auto tuned = make_tuned_contender(build_default_kernel(w, &transforms), data, transforms);
    EXPECT_FALSE(transforms.empty());
    Baselines baselines = make_baselines(data, 1);
    if (!have_onednn()) {
      ASSERT_EQ(baselines.missing.size(), 1u);
      EXPECT_NE(baselines.missing[0].find("install libdnnl-dev and rebuild"), std::string::npos);
      GTEST_SKIP() << "built without oneDNN: no convolution baseline to compare with";
    }
    std::vector<Contender*> contenders = {tuned.get()};
    for (auto& b : baselines.contenders) contenders.push_back(b.get());
    BenchResult r = run_bench(data, contenders, quick());
    ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
    const ContenderTiming* blocked = r.best_primary("onednn");
    ASSERT_NE(blocked, nullptr);
    EXPECT_EQ(blocked->variant, "blocked");
    EXPECT_NE(blocked->timed_transforms.find("reorders untimed"), std::string::npos);
  }
}

TEST_F(BenchTest, TheFmaPeakIsMeasured) {
  const double peak = measure_fma_peak(target_, builder(), 0.05);
  EXPECT_GT(peak, 0.1);  // GFLOP/s; any machine that runs the tests does more
}

// ---- the command ----

using testing::CommandOutput;

class BenchCliTest : public BenchTest {
 protected:
  CommandOutput ktune(std::vector<std::string> args) { return testing::run_ktune(dir_.path(), std::move(args)); }
  std::string db() const { return (dir_ / "k.db").string(); }
  // Stores a record of w's first template, with this version and config
  // text, marked as w's best on this machine.
  void store_marked_best(const Workload& w, int template_version, const std::string& config_text,
                         double cost) {
    const Template& tmpl = *templates_for(w.op(), TargetKind::kCpu).front();
    Record r;
    r.workload_key = w.key();
    r.device_key = target_.device_key();
    r.template_name = tmpl.name();
    r.template_version = template_version;
    r.config_index = 0;
    r.config_text = config_text;
    r.result.costs = {cost};
    r.flops = w.flops();
    std::vector<Record> batch = {r};
    auto database = Database::open(db());
    database->insert(batch);
    database->mark_best(batch[0].id);
  }
};

TEST_F(BenchCliTest, WithoutATunedRecordSaysHowToGetOne) {
  CommandOutput r = ktune({"bench", "--op", "matmul(m=16,n=16,k=16)", "--db", db(), "--threads", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tuned record for matmul(m=16,n=16,k=16) on cpu/"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run `ktune tune --op"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("or pass --trials N"), std::string::npos) << r.err;
}

// A record whose config index no longer decodes to the config it stored (a
// template changed its knobs) must not be benched as if it were that config.
TEST_F(BenchCliTest, RefusesARecordItsTemplateNoLongerDecodes) {
  const Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  const Template& tmpl = *templates_for(w.op(), TargetKind::kCpu).front();
  store_marked_best(w, tmpl.version(), "tile_m=[16] an older knob list", 1e-6);
  CommandOutput out = ktune({"bench", "--op", w.key(), "--db", db(), "--threads", "1"});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("decodes it as"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("tune it again"), std::string::npos) << out.err;
}

// A record made by an older version of its template: without --trials bench
// says to tune again; with --trials it tunes with this version and benches
// the new best.
TEST_F(BenchCliTest, ARecordOfAnOlderTemplateVersionIsRetunedWithTrials) {
  const Workload w = Workload::parse("matmul(m=16,n=16,k=16)");
  const Template& tmpl = *templates_for(w.op(), TargetKind::kCpu).front();
  // Faster than anything this build will measure.
  store_marked_best(w, tmpl.version() - 1, "an older version's config", 1e-9);
  CommandOutput refused = ktune({"bench", "--op", w.key(), "--db", db(), "--threads", "1"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("version " + std::to_string(tmpl.version() - 1)), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("tune it again"), std::string::npos) << refused.err;

  CommandOutput retuned = ktune({"bench", "--op", w.key(), "--db", db(), "--threads", "1", "--trials",
                                 "3", "--repeat", "3", "--min-sample-ms", "2", "--format", "json"});
  ASSERT_EQ(retuned.exit_code, 0) << retuned.err;
  const nlohmann::json report = nlohmann::json::parse(retuned.out);
  EXPECT_TRUE(report["workloads"][0]["error"].is_null()) << report["workloads"][0]["error"];
  auto database = Database::open(db());
  const std::optional<Record> best = database->best(w.key(), target_.device_key());
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->template_version, tmpl.version());
}

TEST_F(BenchCliTest, AnUnknownSetIsABadInput) {
  CommandOutput r = ktune({"bench", "--set", "vgg", "--db", db()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("accepted sets are resnet18, matmul, depthwise"), std::string::npos) << r.err;
}

TEST_F(BenchCliTest, TunesFirstWithTrialsAndReportsJson) {
  CommandOutput r = ktune({"bench", "--op", "matmul(m=16,n=16,k=16)", "--trials", "4", "--db", db(),
                           "--threads", "1", "--repeat", "3", "--min-sample-ms", "2", "--format",
                           "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["threads"], 1);
  EXPECT_GT(report["peak_gflops"].get<double>(), 0);
  ASSERT_EQ(report["workloads"].size(), 1u);
  const nlohmann::json& w = report["workloads"][0];
  EXPECT_EQ(w["key"], "matmul(m=16,n=16,k=16)");
  EXPECT_EQ(w["threads"], 1);
  EXPECT_TRUE(w["error"].is_null()) << w["error"];
  const nlohmann::json& tuned = w["tuned"];
  for (const char* field : {"gflops", "median_s", "spread", "percent_of_peak"}) {
    EXPECT_TRUE(tuned[field].is_number()) << field;
  }
  EXPECT_TRUE(tuned["timed_layout_transforms"].is_string());
  EXPECT_GT(tuned["gflops"].get<double>(), 0);
  if (!have_openblas()) {
    EXPECT_TRUE(w["baselines"].empty());
    EXPECT_NE(w["missing_baselines"][0].get<std::string>().find("OpenBLAS baseline not available"),
              std::string::npos);
    GTEST_SKIP() << "built without OpenBLAS: no baseline fields to check";
  }
  ASSERT_EQ(w["baselines"].size(), 1u);
  const nlohmann::json& blas = w["baselines"][0];
  EXPECT_EQ(blas["name"], "openblas sgemm");
  EXPECT_GT(blas["gflops"].get<double>(), 0);
  EXPECT_GT(blas["ratio"].get<double>(), 0);
  EXPECT_EQ(blas["timed_layout_transforms"].get<std::string>().rfind("none", 0), 0u);
  EXPECT_GT(w["ratios"]["openblas"].get<double>(), 0);
  EXPECT_GT(report["geomean_ratios"]["openblas"].get<double>(), 0);

  // The peak is measured once per device and thread count, then reused.
  CommandOutput again = ktune({"bench", "--op", "matmul(m=16,n=16,k=16)", "--db", db(), "--threads",
                               "1", "--repeat", "2", "--min-sample-ms", "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("measuring the FMA peak"), std::string::npos) << again.err;
  EXPECT_NE(again.out.find("openblas sgemm"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace ktune
