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
#include "measure/verify.h"
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

  // The contender of that display name ("onednn matmul"), or nullptr.
  static Contender* find(const Baselines& b, const std::string& name) {
    for (const auto& c : b.contenders) {
      if (c->display_name() == name) return c.get();
    }
    return nullptr;
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
  const size_t libraries_missing = (have_openblas() ? 0 : 1) + (have_onednn() ? 0 : 1);
  EXPECT_EQ(baselines.missing.size(), libraries_missing);
  if (have_onednn()) {
    ASSERT_NE(r.best_primary("onednn"), nullptr);
    EXPECT_EQ(r.best_primary("onednn")->variant, "matmul");
  }
  if (!have_openblas()) {
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
  Contender* sgemm = find(baselines, "openblas sgemm");
  Contender* sgemv = find(baselines, "openblas sgemv");
  ASSERT_NE(sgemm, nullptr);
  ASSERT_NE(sgemv, nullptr);
  BenchResult r = run_bench(data, {sgemm, sgemv}, quick());
  ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
  EXPECT_TRUE(r.timings[0].primary && r.timings[1].primary) << "both are OpenBLAS baselines";
}

// oneDNN's matmul primitive is a baseline of every GEMM-like operator, with
// dense's bias as the primitive's bias (at batch 1 and above, where oneDNN
// takes different paths) and batch_matmul as one call on 3-D tensors. The
// bench checks every side against the reference before it times anything.
TEST_F(BenchTest, OneDnnMatmulIsABaselineOfMatmulDenseAndBatchMatmulAndAgrees) {
  if (!have_onednn()) {
    const BenchData data(Workload::parse("matmul(m=8,n=8,k=8)"));
    Baselines b = make_baselines(data, 1);
    ASSERT_FALSE(b.missing.empty());
    EXPECT_NE(b.missing.back().find("oneDNN baseline not available"), std::string::npos) << b.missing.back();
    GTEST_SKIP() << "built without oneDNN (install libdnnl-dev and rebuild): no matmul primitive baseline";
  }
  for (const char* spec : {"matmul(m=24,n=40,k=16)", "matmul(m=1,n=33,k=7)",
                           "dense(batch=1,in=32,out=20,bias=1)", "dense(batch=4,in=32,out=20,bias=1)",
                           "dense(batch=4,in=19,out=13,bias=0)", "batch_matmul(b=3,m=5,n=7,k=9)",
                           "batch_matmul(b=3,m=16,n=24,k=8)"}) {
    SCOPED_TRACE(spec);
    const Workload w = Workload::parse(spec);
    BenchData data(w);
    Baselines baselines = make_baselines(data, 1);
    Contender* onednn = find(baselines, "onednn matmul");
    ASSERT_NE(onednn, nullptr);
    EXPECT_TRUE(onednn->primary());
    const std::string transforms = onednn->timed_transforms();
    EXPECT_EQ(transforms.rfind("none", 0), 0u) << "activations are not reordered: " << transforms;
    if (w.op() == OpKind::kDense) {
      EXPECT_NE(transforms.find("reordered once, untimed"), std::string::npos) << transforms;
    }
    std::vector<Contender*> contenders;
    for (auto& b : baselines.contenders) contenders.push_back(b.get());
    BenchResult r = run_bench(data, contenders, quick());
    ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
    // After the timed calls the answer is still right: no call accumulates
    // into the last one's output (a bias added twice would).
    std::vector<float> out(data.reference.size());
    onednn->read_output(out.data());
    const auto wrong = compare_with_reference(w, out.data(), data.reference.data(),
                                              static_cast<int64_t>(out.size()));
    EXPECT_FALSE(wrong.has_value()) << *wrong;
  }
}

// Without a batched sgemm in the installed OpenBLAS the baseline is a loop
// of sgemm calls, and says so.
TEST_F(BenchTest, OpenBlasBatchMatmulNamesHowItIsCalledAndAgrees) {
  if (!have_openblas()) GTEST_SKIP() << "built without OpenBLAS";
  const Workload w = Workload::parse("batch_matmul(b=3,m=5,n=7,k=9)");
  BenchData data(w);
  Baselines baselines = make_baselines(data, 1);
  std::vector<Contender*> contenders;
  for (auto& b : baselines.contenders) contenders.push_back(b.get());
  BenchResult r = run_bench(data, contenders, quick());
  ASSERT_TRUE(r.agree()) << r.disagreements[0].who << ": " << r.disagreements[0].message;
  const ContenderTiming* blas = r.best_primary("openblas");
  ASSERT_NE(blas, nullptr);
  EXPECT_TRUE(blas->variant == "sgemm_batch" || blas->variant == "sgemm loop") << blas->variant;
}

ContenderTiming timing(const std::string& library, const std::string& variant, double median_s,
                       bool primary = true) {
  ContenderTiming t;
  t.library = library;
  t.variant = variant;
  t.median_s = median_s;
  t.gflops = 1 / median_s;
  t.primary = primary;
  return t;
}

TEST(BenchResultTest, TheFastestBaselineIsTheFastestPrimaryVariantOfAnyLibraryButKtune) {
  BenchResult r;
  r.timings = {timing("ktune", "", 1.0), timing("openblas", "sgemm", 3.0), timing("openblas", "sgemv", 2.5),
               timing("onednn", "matmul", 2.0), timing("onednn", "nchw", 1.5, /*primary=*/false)};
  ASSERT_NE(r.fastest_baseline(), nullptr);
  EXPECT_EQ(r.fastest_baseline()->display_name(), "onednn matmul");
  EXPECT_EQ(r.best_primary("openblas")->display_name(), "openblas sgemv");

  r.timings = {timing("ktune", "", 1.0), timing("onednn", "nchw", 1.5, /*primary=*/false)};
  EXPECT_EQ(r.fastest_baseline(), nullptr) << "information-only variants are no baseline";
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
  if (!have_openblas() && !have_onednn()) {
    EXPECT_TRUE(w["baselines"].empty());
    EXPECT_TRUE(w["fastest_baseline"].is_null());
    EXPECT_TRUE(w["ratio_vs_fastest"].is_null());
    EXPECT_NE(w["missing_baselines"][0].get<std::string>().find("OpenBLAS baseline not available"),
              std::string::npos);
    GTEST_SKIP() << "built without OpenBLAS and oneDNN: no baseline fields to check";
  }
  std::vector<std::string> names;
  for (const nlohmann::json& b : w["baselines"]) {
    names.push_back(b["name"]);
    EXPECT_GT(b["gflops"].get<double>(), 0) << b["name"];
    EXPECT_GT(b["ratio"].get<double>(), 0) << b["name"];
    EXPECT_EQ(b["timed_layout_transforms"].get<std::string>().rfind("none", 0), 0u) << b["name"];
  }
  auto named = [&](const std::string& name) { return std::count(names.begin(), names.end(), name) == 1; };
  if (have_openblas()) {
    EXPECT_TRUE(named("openblas sgemm"));
    EXPECT_GT(w["ratios"]["openblas"].get<double>(), 0);
    EXPECT_GT(report["geomean_ratios"]["openblas"].get<double>(), 0);
  }
  if (have_onednn()) {
    EXPECT_TRUE(named("onednn matmul"));
    EXPECT_GT(w["ratios"]["onednn"].get<double>(), 0);
  }
  // The headline ratio is against the fastest baseline of all libraries:
  // named, the fastest of the rows, and never kinder to ktune than any
  // library's own ratio.
  const nlohmann::json& fastest = w["fastest_baseline"];
  ASSERT_TRUE(fastest.is_object()) << w.dump();
  EXPECT_TRUE(named(fastest["name"].get<std::string>())) << fastest["name"];
  for (const nlohmann::json& b : w["baselines"]) {
    if (b["primary"].get<bool>()) {
      EXPECT_GE(fastest["gflops"].get<double>(), b["gflops"].get<double>()) << b["name"];
    }
  }
  const double ratio = w["ratio_vs_fastest"].get<double>();
  EXPECT_NEAR(ratio, tuned["gflops"].get<double>() / fastest["gflops"].get<double>(), 1e-9 * ratio);
  for (const auto& [library, library_ratio] : w["ratios"].items()) {
    EXPECT_LE(ratio, library_ratio.get<double>() * (1 + 1e-12)) << library;
  }
  EXPECT_NEAR(report["geomean_ratio_vs_fastest"].get<double>(), ratio, 1e-9 * ratio)
      << "one workload: the geometric mean is its ratio";

  // The peak is measured once per device and thread count, then reused.
  CommandOutput again = ktune({"bench", "--op", "matmul(m=16,n=16,k=16)", "--db", db(), "--threads",
                               "1", "--repeat", "2", "--min-sample-ms", "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("measuring the FMA peak"), std::string::npos) << again.err;
  EXPECT_NE(again.out.find("openblas sgemm"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("tuned/fastest baseline ("), std::string::npos) << again.out;
}

}  // namespace
}  // namespace ktune
