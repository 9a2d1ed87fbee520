// The cost model: program features (fixed length, strides right, fast and
// cached) and the XGBoost model (ranks held-out configs of a landscape it
// learned, deterministic, clear errors).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "cost_model/features.h"
#include "cost_model/xgb_model.h"
#include "schedule_space/error.h"
#include "schedule_space/templates/templates.h"
#include "tests/landscape.h"

namespace ktune::cost_model {
namespace {

using testing::distinct_valid_configs;
using testing::fixed_avx2_target;
using testing::synthetic_cost;


TEST(Features, ItervarStridesBytesAndLoopKindsOfAHandWrittenNest) {
  using namespace ir;
  // for i in 0..4 parallel: for j in 0..8 vectorized: C[i, j] = A[j, i] * 2
  Buffer a = make_buffer("A", {8, 4}), c = make_buffer("C", {4, 8});
  Program p;
  p.params = {a, c};
  p.body = for_loop("i", 4, LoopKind::kParallel,
                    for_loop("j", 8, LoopKind::kVectorized,
                             store(c, {var("i"), var("j")}, load(a, {var("j"), var("i")}) * float_imm(2))));
  const std::vector<float> f = itervar_features(p);
  ASSERT_EQ(f.size(), kItervarLength);
  const size_t per_loop = kLoopFeatures + kMaxBuffers * kBufferFeatures;
  auto lg = [](double x) { return static_cast<float>(std::log2(1 + x)); };
  // Loop i: extent 4, depth 0, nothing above, 8 below, parallel.
  EXPECT_FLOAT_EQ(f[0], lg(4));
  EXPECT_FLOAT_EQ(f[1], 0);
  EXPECT_FLOAT_EQ(f[2], lg(1));
  EXPECT_FLOAT_EQ(f[3], lg(8));
  EXPECT_FLOAT_EQ(f[4 + 1], 1);
  // Loop j: depth 1, 4 above, vectorized.
  EXPECT_FLOAT_EQ(f[per_loop + 1], 1);
  EXPECT_FLOAT_EQ(f[per_loop + 2], lg(4));
  EXPECT_FLOAT_EQ(f[per_loop + 4 + 3], 1);
  // Buffer A (first) in loop j: stride 4 (column access), 8 elements = 32
  // bytes touched, read once each. Buffer C in loop j: stride 1.
  const float* a_in_j = f.data() + per_loop + kLoopFeatures;
  EXPECT_FLOAT_EQ(a_in_j[0], lg(4));
  EXPECT_FLOAT_EQ(a_in_j[1], lg(32));
  EXPECT_FLOAT_EQ(a_in_j[2], lg(1));
  EXPECT_FLOAT_EQ(a_in_j[3], lg(8));
  const float* c_in_j = a_in_j + kBufferFeatures;
  EXPECT_FLOAT_EQ(c_in_j[0], lg(1));
  // Over the whole nest (loop i), each buffer's 32 elements are touched once.
  const float* a_in_i = f.data() + kLoopFeatures;
  EXPECT_FLOAT_EQ(a_in_i[1], lg(128));
  EXPECT_FLOAT_EQ(a_in_i[3], lg(32));
}

// On the CPU templates and the GPU ones (a GPU space's features must tell
// its thread layouts apart, or learned search is blind there).
TEST(Features, EveryKindHasOneLengthPerTaskAndTellsConfigsApart) {
  const Workload conv = Workload::parse("conv2d(n=1,c=32,h=28,w=28,k=64,r=3,s=3,pad=1)");
  const Workload gemm = Workload::parse("matmul(m=256,n=256,k=256)");
  const Target cpu = fixed_avx2_target(2), gpu = cuda_target_for_arch("sm_90");
  struct Case {
    const Workload& w;
    const Target& t;
    const Template& tmpl;
  };
  for (const Case& k : {Case{conv, cpu, conv2d_cpu_template()}, Case{conv, gpu, conv2d_cuda_template()},
                        Case{gemm, gpu, matmul_cuda_template()}}) {
    const Workload& w = k.w;
    const Target& t = k.t;
    const Template& tmpl = k.tmpl;
    const ConfigSpace space = tmpl.space(w, t);
    const std::vector<Config> configs = distinct_valid_configs(tmpl, w, t, space, 40, 3);
    for (FeatureKind kind : {FeatureKind::kItervar, FeatureKind::kCurve, FeatureKind::kKnob, FeatureKind::kItervarKnob}) {
      SCOPED_TRACE(tmpl.name() + " " + std::string(feature_kind_name(kind)));
      FeatureExtractor fx(w, t, tmpl, space, kind);
      std::set<std::vector<float>> distinct;
      for (const Config& c : configs) {
        const std::vector<float>& f = fx.get(c);
        ASSERT_EQ(f.size(), fx.length());
        for (float v : f) ASSERT_TRUE(std::isfinite(v));
        distinct.insert(f);
      }
      // The curve summarizes the program, template-independently: coarser.
      const size_t enough = kind == FeatureKind::kCurve ? configs.size() / 4 : configs.size() * 3 / 4;
      EXPECT_GT(distinct.size(), enough) << "features do not tell configs apart";
      EXPECT_EQ(fx.cached(), configs.size());
      EXPECT_EQ(fx.get(configs[0]), FeatureExtractor(w, t, tmpl, space, kind).get(configs[0]));
    }
  }
  EXPECT_EQ(parse_feature_kind("curve"), FeatureKind::kCurve);
  EXPECT_EQ(parse_feature_kind("itervar+knob"), FeatureKind::kItervarKnob);
  EXPECT_THROW(parse_feature_kind("pixels"), Error);
}

// A GPU kernel's loops bound to blocks and to threads have their own kind
// slots, and the curve's parallel extent is blocks x threads.
TEST(Features, GpuBoundLoopsAreTheirOwnKindsAndTheirProductIsTheParallelism) {
  using namespace ir;
  Buffer a = make_buffer("A", {64}), c = make_buffer("C", {64});
  Program p;
  p.params = {a, c};
  const Expr i = var("b") * int_imm(16) + var("t");
  p.body = for_loop("b", 4, LoopKind::kBlockX, for_loop("t", 16, LoopKind::kThreadX, store(c, {i}, load(a, {i}))));
  const std::vector<float> f = itervar_features(p);
  const size_t per_loop = kLoopFeatures + kMaxBuffers * kBufferFeatures;
  EXPECT_FLOAT_EQ(f[4 + 4], 1);             // b: block-bound
  EXPECT_FLOAT_EQ(f[per_loop + 4 + 5], 1);  // t: thread-bound
  EXPECT_FLOAT_EQ(f[per_loop + 4 + 4], 0);
  const std::vector<float> g = curve_features(p);
  EXPECT_FLOAT_EQ(g[kCurveBuffers * kCurvePoints], static_cast<float>(std::log2(1 + 64.0)));
}

// Thousands of configs per second, as the search needs (a generous bound:
// the point is the order of magnitude, not a timing of this machine).
TEST(Features, ItervarExtractionIsFastEnoughForTheSearch) {
  const Workload w = Workload::parse("matmul(m=512,n=512,k=512)");
  const Target t = fixed_avx2_target(2);
  const Template& tmpl = matmul_cpu_template();
  const ConfigSpace space = tmpl.space(w, t);
  const std::vector<Config> configs = distinct_valid_configs(tmpl, w, t, space, 300, 4);
  FeatureExtractor fx(w, t, tmpl, space, FeatureKind::kItervar);
  const auto start = std::chrono::steady_clock::now();
  for (const Config& c : configs) fx.get(c);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(s, 3.0) << configs.size() << " configs took " << s << " s";
}

// Trained on 240 configs of a landscape, the model ranks 120 others it has
// not seen close to their true order.
void expect_ranks_held_out_configs(FeatureKind kind, const std::string& objective, double at_least) {
  const Workload w = Workload::parse("matmul(m=512,n=512,k=512)");
  const Target t = fixed_avx2_target(2);
  const Template& tmpl = matmul_cpu_template();
  const ConfigSpace space = tmpl.space(w, t);
  const std::vector<Config> configs = distinct_valid_configs(tmpl, w, t, space, 360, 5);
  FeatureExtractor fx(w, t, tmpl, space, kind);
  Matrix train, test;
  std::vector<float> y_train, y_test;
  for (size_t i = 0; i < configs.size(); ++i) {
    const float score = static_cast<float>(1e-3 / synthetic_cost(space, configs[i]));
    (i < 240 ? train : test).push_back(fx.get(configs[i]));
    (i < 240 ? y_train : y_test).push_back(score);
  }
  XgbOptions o;
  o.objective = objective;
  XgbModel model(o);
  model.fit(train, y_train);
  const double rho = spearman(model.predict(test), y_test);
  EXPECT_GT(rho, at_least) << feature_kind_name(kind) << " features, " << objective;
}

TEST(XgbModel, RanksHeldOutConfigsOfALearnedLandscape) {
  expect_ranks_held_out_configs(FeatureKind::kKnob, "rank:pairwise", 0.8);
  expect_ranks_held_out_configs(FeatureKind::kKnob, "reg:squarederror", 0.8);
  // The landscape is defined over knob choices, which program features see
  // only through the loops they shape.
  expect_ranks_held_out_configs(FeatureKind::kItervar, "rank:pairwise", 0.6);
}

TEST(XgbModel, IsDeterministicAndUsesTheBaseMargin) {
  Matrix x;
  std::vector<float> y;
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<float> u(0, 1);
  for (int i = 0; i < 100; ++i) {
    x.push_back({u(rng), u(rng), u(rng)});
    y.push_back(x.back()[0] * 2 + x.back()[1]);
  }
  XgbOptions o;
  o.objective = "reg:squarederror";
  XgbModel a(o), b(o);
  a.fit(x, y);
  b.fit(x, y);
  EXPECT_EQ(a.predict(x), b.predict(x));
  // A margin of 5 on every row takes the place of the model's global bias
  // (base_score, 0.5): every prediction moves by the same 4.5.
  const std::vector<float> margin(x.size(), 5.0f);
  const std::vector<float> plain = a.predict(x), shifted = a.predict(x, margin);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(shifted[i] - plain[i], 4.5f, 1e-3);
}

TEST(XgbModel, BadInputIsAClearError) {
  XgbModel m;
  EXPECT_FALSE(m.trained());
  EXPECT_THROW(m.predict({{1, 2}}), Error);
  EXPECT_THROW(m.fit({}, {}), Error);
  EXPECT_THROW(m.fit({{1, 2}, {3}}, {1, 2}), Error);
  EXPECT_THROW(m.fit({{1, 2}, {3, 4}}, {1}), Error);
  EXPECT_THROW(XgbModel(XgbOptions{.objective = "binary:hinge"}), Error);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3}, {10, 20, 30}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3}, {3, 2, 1}), -1.0);
}

}  // namespace
}  // namespace ktune::cost_model
