// The template registry and the packed GEMM templates (matmul, dense,
// batch_matmul): every sampled config computes the right answer on awkward
// shapes, spaces are large and stable, and check() explains what it rejects.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "schedule_space/templates/templates.h"
#include "tests/kernel_check.h"
#include "tests/landscape.h"

namespace ktune {
namespace {

// A fixed AVX2-like target, so spaces do not depend on the test machine.
Target test_target(int threads = 1) {
  Target t;
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  t.cpu.threads = threads;
  return t;
}

TEST(TemplateRegistry, FindsTemplatesByNameAndOperator) {
  EXPECT_EQ(find_template("matmul_cpu_packed").op(), OpKind::kMatmul);
  EXPECT_EQ(find_template("dense_cpu_packed").op(), OpKind::kDense);
  EXPECT_EQ(find_template("batch_matmul_cpu_packed").op(), OpKind::kBatchMatmul);
  const auto dense = templates_for(OpKind::kDense, TargetKind::kCpu);
  ASSERT_FALSE(dense.empty());
  EXPECT_EQ(dense.front()->name(), "dense_cpu_packed");
  EXPECT_EQ(templates_for(OpKind::kMatmul, TargetKind::kCuda).front()->name(), "matmul_cuda_tiled");
  for (const Template* t : all_templates()) {
    EXPECT_EQ(&find_template(t->name()), t);
    EXPECT_GE(t->version(), 1);
  }
}

TEST(TemplateRegistry, UnknownNameListsTheKnownOnes) {
  try {
    find_template("matmul_gpu_magic");
    FAIL() << "an unknown template was found";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul_gpu_magic"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("matmul_cpu_packed"), std::string::npos) << e.what();
  }
}

TEST(GemmTemplates, SpaceForALargeMatmulIsLargeAndStable) {
  const Workload w = Workload::parse("matmul(m=1024,n=1024,k=1024)");
  const Template& t = matmul_cpu_template();
  const ConfigSpace a = t.space(w, test_target(2)), b = t.space(w, test_target(2));
  EXPECT_GE(a.size(), 100000u);
  EXPECT_EQ(a.size(), b.size());
  for (uint64_t index : {uint64_t{0}, a.size() / 3, a.size() - 1}) {
    EXPECT_EQ(a.describe(a.get(index)), b.describe(b.get(index)));
  }
  // A good share of the space is valid, so search does not starve (register
  // tiles that do not fit and parallel loops that would reach k0 are not).
  std::mt19937_64 rng(3);
  int valid = 0;
  for (int i = 0; i < 1000; ++i) valid += !t.check(w, test_target(2), a, a.random(rng)).has_value();
  EXPECT_GT(valid, 50);
}

TEST(GemmTemplates, CheckExplainsRejectedConfigs) {
  const Workload w = Workload::parse("matmul(m=1024,n=1024,k=1024)");
  const Template& t = matmul_cpu_template();
  const Target target = test_target(2);
  const ConfigSpace s = t.space(w, target);
  auto reason = [&](const std::string& config) {
    return t.check(w, target, s, s.parse(config)).value_or("");
  };
  const std::string good =
      "tile_m=[16,64] mr=4 tile_n=[4,256] nr=16 tile_k=[4,64,4] order=[m0,n0,k0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 "
      "parallel=2";
  EXPECT_EQ(reason(good), "");
  EXPECT_NO_THROW(t.instantiate(w, target, s, s.parse(good)));
  // 8 rows x 4 vectors of accumulators do not fit in 16 AVX2 registers.
  const std::string too_big =
      "tile_m=[8,128] mr=8 tile_n=[4,256] nr=32 tile_k=[4,64,4] order=[m0,n0,k0] inner_order=[n1,m1] pack=1 pack_rows=1 pack_a=1 "
      "parallel=0";
  EXPECT_NE(reason(too_big).find("vector registers"), std::string::npos) << reason(too_big);
  EXPECT_THROW(t.instantiate(w, target, s, s.parse(too_big)), Error);
  // Parallel iterations of k0 would race on the output.
  const std::string racy =
      "tile_m=[16,64] mr=4 tile_n=[4,256] nr=16 tile_k=[4,64,4] order=[k0,m0,n0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 "
      "parallel=1";
  EXPECT_NE(reason(racy).find("k0"), std::string::npos) << reason(racy);
}

TEST(GemmTemplates, UnpackedBNeedsWholeVectors) {
  const Workload w = Workload::parse("matmul(m=8,n=17,k=4)");
  const Template& t = matmul_cpu_template();
  const ConfigSpace s = t.space(w, test_target());
  const std::string unpacked =
      "tile_m=[1,8] mr=4 tile_n=[1,17] nr=8 tile_k=[1,1,4] order=[m0,n0,k0] inner_order=[m1,n1] pack=0 pack_rows=0 pack_a=1 parallel=0";
  const auto why = t.check(w, test_target(), s, s.parse(unpacked));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("pack=0"), std::string::npos) << *why;
}

TEST(GemmTemplates, DensePacksItsWeightOutsideTheTimedBody) {
  const Workload w = Workload::parse("dense(batch=4,in=32,out=24,bias=1)");
  const Template& t = dense_cpu_template();
  const ConfigSpace s = t.space(w, test_target());
  std::mt19937_64 rng(1);
  Config c = s.random(rng);
  while (t.check(w, test_target(), s, c)) c = s.random(rng);
  const ir::Program p = t.instantiate(w, test_target(), s, c);
  ASSERT_TRUE(p.prepare);
  ASSERT_EQ(p.workspace.size(), 1u);
  EXPECT_TRUE(p.workspace[0]->prepared);
  EXPECT_EQ(p.params.size(), 4u);  // X, W, bias, Y
}

TEST(GemmTemplates, MicroKernelKeepsAccumulatorsInVectorRegisters) {
  const Workload w = Workload::parse("matmul(m=64,n=64,k=64)");
  const Template& t = matmul_cpu_template();
  const ConfigSpace s = t.space(w, test_target());
  const Config c = s.parse(
      "tile_m=[4,16] mr=4 tile_n=[1,64] nr=16 tile_k=[2,8,4] order=[m0,n0,k0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=0 parallel=0");
  const std::string src = emit_cpp(t.instantiate(w, test_target(), s, c));
  // 4 rows x 2 vectors of 8 lanes.
  EXPECT_NE(src.find("kt_f32x8 acc[8];"), std::string::npos) << src;
  EXPECT_NE(src.find("acc[7] += (kt_splat8("), std::string::npos) << src;
}

// Odd shapes on purpose: primes, 1, extents that are not multiples of the
// vector width, a single-row dense, a bias, several batches.
TEST(GemmTemplates, SampledConfigsComputeTheRightAnswer) {
  const Target t = detect_cpu_target(1);
  const struct {
    const Template& tmpl;
    std::vector<std::string> specs;
  } cases[] = {
      {matmul_cpu_template(),
       {"matmul(m=13,n=17,k=5)", "matmul(m=1,n=1,k=1)", "matmul(m=17,n=9,k=13)", "matmul(m=5,n=24,k=7)",
        "matmul(m=64,n=48,k=32)"}},
      {dense_cpu_template(),
       {"dense(batch=1,in=37,out=20,bias=1)", "dense(batch=7,in=16,out=13)",
        "dense(batch=16,in=64,out=48,bias=1)"}},
      {batch_matmul_cpu_template(),
       {"batch_matmul(b=3,m=13,n=17,k=5)", "batch_matmul(b=1,m=8,n=16,k=4)",
        "batch_matmul(b=3,m=16,n=24,k=9)"}},
  };
  for (const auto& c : cases) {
    for (const std::string& spec : c.specs) testing::expect_configs_correct(c.tmpl, spec, t, 10);
  }
}

// The paths random samples may miss: several k blocks (store, then
// accumulate), register tiles that do not divide their block (partial row
// and column tiles, packed and unpacked), unpacked B, parallel
// packing and fused parallel loops.
TEST(GemmTemplates, HandPickedConfigsCoverEveryWriteBackPath) {
  const std::optional<Target> machine = testing::avx2_machine_target(2);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  testing::expect_configs_correct(
      matmul_cpu_template(), "matmul(m=13,n=17,k=12)", t,
      {"tile_m=[1,13] mr=7 tile_n=[1,17] nr=8 tile_k=[3,2,2] order=[k0,m0,n0] inner_order=[n1,m1] pack=1 pack_rows=1 pack_a=1 parallel=0",
       "tile_m=[13,1] mr=2 tile_n=[1,17] nr=24 tile_k=[2,1,6] order=[m0,n0,k0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=0 parallel=2",
       "tile_m=[1,13] mr=13 tile_n=[17,1] nr=8 tile_k=[12,1,1] order=[n0,k0,m0] inner_order=[m1,n1] pack=1 pack_rows=1 pack_a=1 parallel=1"});
  testing::expect_configs_correct(
      matmul_cpu_template(), "matmul(m=12,n=32,k=9)", t,
      {"tile_m=[2,6] mr=3 tile_n=[2,16] nr=16 tile_k=[3,1,3] order=[n0,m0,k0] inner_order=[m1,n1] pack=0 pack_rows=0 pack_a=0 parallel=2",
       "tile_m=[1,12] mr=5 tile_n=[4,8] nr=8 tile_k=[1,9,1] order=[m0,n0,k0] inner_order=[n1,m1] pack=0 pack_rows=0 pack_a=0 parallel=1"});
  testing::expect_configs_correct(
      dense_cpu_template(), "dense(batch=3,in=10,out=19,bias=1)", t,
      {"tile_m=[1,3] mr=3 tile_n=[1,19] nr=8 tile_k=[5,1,2] order=[k0,n0,m0] inner_order=[n1,m1] pack_a=1 parallel=0"});
  testing::expect_configs_correct(
      batch_matmul_cpu_template(), "batch_matmul(b=3,m=11,n=9,k=8)", t,
      {"tile_m=[1,11] mr=4 tile_n=[1,9] nr=8 tile_k=[2,2,2] order=[m0,n0,k0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=0 parallel=2",
       "tile_m=[1,11] mr=6 tile_n=[1,9] nr=16 tile_k=[4,1,2] order=[n0,m0,k0] inner_order=[n1,m1] pack=1 pack_rows=1 pack_a=1 parallel=1"});
}

// One thread, operands packed block by block inside the block loops
// (pack_block=1): A and B, B alone, A alone (dense, whose B is the weight),
// a batch, a strided 1x1 conv read through its strides; partial register
// tiles (zero past the block), several k blocks, orders that pack a block
// again for each outer block; and a config that packs nothing is refused.
TEST(GemmTemplates, BlockByBlockPackingComputesTheRightAnswer) {
  const std::optional<Target> machine = testing::avx2_machine_target(1);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  testing::expect_configs_correct(
      matmul_cpu_template(), "matmul(m=30,n=40,k=24)", t,
      {"tile_m=[2,15] mr=4 tile_n=[2,20] nr=8 tile_k=[3,2,4] order=[n0,k0,m0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 parallel=0 pack_block=1",
       "tile_m=[2,15] mr=6 tile_n=[2,20] nr=16 tile_k=[2,3,4] order=[m0,n0,k0] inner_order=[m1,n1] pack=1 pack_rows=1 pack_a=0 parallel=0 pack_block=1",
       "tile_m=[1,30] mr=5 tile_n=[5,8] nr=8 tile_k=[4,6,1] order=[k0,m0,n0] inner_order=[n1,m1] pack=0 pack_rows=0 pack_a=1 parallel=0 pack_block=1"});
  testing::expect_configs_correct(
      dense_cpu_template(), "dense(batch=5,in=24,out=20,bias=1)", t,
      {"tile_m=[1,5] mr=3 tile_n=[1,20] nr=8 tile_k=[2,3,4] order=[n0,k0,m0] inner_order=[n1,m1] pack_a=1 parallel=0 pack_block=1"});
  testing::expect_configs_correct(
      batch_matmul_cpu_template(), "batch_matmul(b=2,m=9,n=16,k=12)", t,
      {"tile_m=[1,9] mr=3 tile_n=[1,16] nr=16 tile_k=[2,3,2] order=[k0,n0,m0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=1 parallel=0 pack_block=1"});
  testing::expect_configs_correct(
      conv2d_1x1_cpu_template(), "conv2d(n=2,c=12,h=9,w=9,k=10,r=1,s=1,stride=2,pad=0)", t,
      {"tile_m=[1,10] mr=5 tile_n=[1,25] nr=16 tile_k=[3,2,2] order=[n0,k0,m0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 gather=0 parallel=0 pack_block=1"});
  // The block buffers hold one block: kc x the block's tiles.
  const Workload w = Workload::parse("matmul(m=30,n=40,k=24)");
  const ConfigSpace space = matmul_cpu_template().space(w, t);
  const ir::Program p = matmul_cpu_template().instantiate(
      w, t, space,
      space.parse("tile_m=[2,15] mr=4 tile_n=[2,20] nr=8 tile_k=[3,2,4] order=[n0,k0,m0] inner_order=[n1,m1] "
                  "pack=1 pack_rows=0 pack_a=1 parallel=0 pack_block=1"));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ir::Buffer& b : p.workspace) shapes[b->name] = b->shape;
  EXPECT_EQ(shapes["Ab"], (std::vector<int64_t>{4, 8, 4}));
  EXPECT_EQ(shapes["Bb"], (std::vector<int64_t>{3, 8, 8}));
  EXPECT_EQ(shapes.count("Ap") + shapes.count("Bp"), 0u);
  const auto why = matmul_cpu_template().check(
      w, t, space,
      space.parse("tile_m=[2,15] mr=4 tile_n=[5,8] nr=8 tile_k=[3,2,4] order=[n0,k0,m0] inner_order=[n1,m1] "
                  "pack=0 pack_rows=0 pack_a=0 parallel=0 pack_block=1"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("pack_block"), std::string::npos) << *why;
}

// A's row panels [panel][k][row] are filled by vectors of k written through
// in-register transposes where k splits into whole vectors and a panel has
// at least half a vector of rows; element by element otherwise. Both give
// the right answer, with rows past the block zero.
TEST(GemmTemplates, RowPanelsArePackedThroughTransposesWhereTheyFit) {
  const std::optional<Target> machine = testing::avx2_machine_target(1);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  struct Case {
    const Template& tmpl;
    std::string workload, config;
    bool transposed;
  };
  const std::vector<Case> cases = {
      // whole A, 7-row panels past the 15-row blocks
      {matmul_cpu_template(), "matmul(m=30,n=40,k=32)",
       "tile_m=[2,15] mr=7 tile_n=[1,40] nr=8 tile_k=[2,4,4] order=[n0,k0,m0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 parallel=0",
       true},
      // block by block
      {matmul_cpu_template(), "matmul(m=30,n=40,k=32)",
       "tile_m=[2,15] mr=5 tile_n=[1,40] nr=8 tile_k=[2,4,4] order=[n0,k0,m0] inner_order=[n1,m1] pack=0 pack_rows=0 pack_a=1 parallel=0 pack_block=1",
       true},
      // 3 rows, under half a vector: element by element
      {matmul_cpu_template(), "matmul(m=30,n=40,k=32)",
       "tile_m=[2,15] mr=3 tile_n=[1,40] nr=8 tile_k=[2,4,4] order=[n0,k0,m0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 parallel=0",
       false},
      // k = 20: not whole vectors
      {matmul_cpu_template(), "matmul(m=30,n=40,k=20)",
       "tile_m=[2,15] mr=5 tile_n=[1,40] nr=8 tile_k=[1,5,4] order=[n0,k0,m0] inner_order=[n1,m1] pack=1 pack_rows=0 pack_a=1 parallel=0",
       false},
      // per batch
      {batch_matmul_cpu_template(), "batch_matmul(b=2,m=9,n=16,k=16)",
       "tile_m=[1,9] mr=5 tile_n=[1,16] nr=16 tile_k=[2,4,2] order=[k0,n0,m0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=1 parallel=0",
       true},
      // dense's data
      {dense_cpu_template(), "dense(batch=6,in=24,out=20,bias=1)",
       "tile_m=[1,6] mr=6 tile_n=[1,20] nr=8 tile_k=[2,3,4] order=[n0,k0,m0] inner_order=[n1,m1] pack_a=1 parallel=0",
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.workload + " " + c.config);
    const Workload w = Workload::parse(c.workload);
    const ConfigSpace space = c.tmpl.space(w, t);
    const Config config = space.parse(c.config);
    ASSERT_FALSE(c.tmpl.check(w, t, space, config).has_value()) << *c.tmpl.check(w, t, space, config);
    const std::string src = emit_cpp(c.tmpl.instantiate(w, t, space, config));
    EXPECT_EQ(src.find("kt_transpose8(") != std::string::npos, c.transposed) << src;
    testing::expect_configs_correct(c.tmpl, c.workload, t, {c.config});
  }
}

// Parallel configs (fused outer loops, parallel packing) on two threads.
TEST(GemmTemplates, SampledParallelConfigsComputeTheRightAnswer) {
  const Target t = detect_cpu_target(2);
  testing::expect_configs_correct(matmul_cpu_template(), "matmul(m=36,n=40,k=12)", t, 6, 5);
  testing::expect_configs_correct(dense_cpu_template(), "dense(batch=9,in=20,out=35,bias=1)", t, 6, 5);
  testing::expect_configs_correct(batch_matmul_cpu_template(), "batch_matmul(b=4,m=12,n=20,k=6)", t, 6, 5);
}

// 1x1 convolutions go through the GEMM path: the specialized template is
// offered first for them and never for other kernel sizes.
TEST(Conv1x1Template, IsOfferedFirstForPointwiseConvsOnly) {
  const Workload pointwise = Workload::parse("conv2d(n=1,c=64,h=14,w=14,k=32,r=1,s=1,stride=2,pad=0)");
  const Workload spatial = Workload::parse("conv2d(n=1,c=64,h=14,w=14,k=32,r=3,s=3,stride=1,pad=1)");
  const Workload padded = Workload::parse("conv2d(n=1,c=8,h=14,w=14,k=8,r=1,s=1,stride=1,pad=1)");
  const Template& t = conv2d_1x1_cpu_template();
  const auto for_pointwise = templates_for(pointwise, TargetKind::kCpu);
  ASSERT_GE(for_pointwise.size(), 2u);
  EXPECT_EQ(for_pointwise.front(), &t);
  for (const Workload& other : {spatial, padded}) {
    for (const Template* candidate : templates_for(other, TargetKind::kCpu)) EXPECT_NE(candidate, &t);
    ASSERT_TRUE(t.unsupported(other).has_value());
    EXPECT_NE(t.unsupported(other)->find("r=s=1"), std::string::npos) << *t.unsupported(other);
    EXPECT_THROW(t.space(other, test_target()), Error);
  }
  // The general template stays the operator's default and takes every shape.
  EXPECT_EQ(templates_for(OpKind::kConv2d, TargetKind::kCpu).front(), &conv2d_cpu_template());
  EXPECT_FALSE(conv2d_cpu_template().unsupported(pointwise).has_value());
  // Other operators are unaffected.
  EXPECT_EQ(templates_for(Workload::parse("matmul(m=4,n=4,k=4)"), TargetKind::kCpu).front(),
            &matmul_cpu_template());
}

// Reading the input in place was faster in 59 of 66 configs measured both
// ways: where a seed can, it comes first, even of a narrower tile.
TEST(Conv1x1Template, SeedsThatReadTheInputInPlaceComeFirst) {
  const Target t = testing::fixed_avx512_target(2);
  const Template& tmpl = conv2d_1x1_cpu_template();
  const Workload w = Workload::parse("conv2d(n=1,c=144,h=56,w=56,k=24,r=1,s=1)");
  const ConfigSpace space = tmpl.space(w, t);
  const std::vector<Config> seeds = tmpl.seed_configs(w, t, space);
  ASSERT_GE(seeds.size(), 2u);
  EXPECT_EQ(space.value(seeds.front(), "pack"), 0) << space.describe(seeds.front());
  bool packed_later = false;
  for (const Config& c : seeds) packed_later |= space.value(c, "pack") == 1;
  EXPECT_TRUE(packed_later);
}

// Two activation operands (matmul): a seed reads B in place with A packed,
// on one thread also with A packed block by block (m=128, n=768, k=3072:
// 6.0-6.2 ms against 6.5 for both packed), and no seed reads A in place with
// more than 16 rows at once (25 ms against 7 there).
TEST(MatmulTemplate, SeedsReadBInPlaceWithAPackedAndNeverAInPlaceWithManyRows) {
  const Workload w = Workload::parse("matmul(m=128,n=768,k=3072)");
  const Template& tmpl = matmul_cpu_template();
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << threads << " thread(s)");
    const Target t = testing::fixed_avx512_target(threads);
    const ConfigSpace space = tmpl.space(w, t);
    const std::vector<Config> seeds = tmpl.seed_configs(w, t, space);
    bool b_in_place_a_packed = false, by_block = false;
    for (const Config& c : seeds) {
      EXPECT_FALSE(tmpl.check(w, t, space, c).has_value()) << space.describe(c);
      const bool a_packed = space.value(c, "pack_a") == 1, b_packed = space.value(c, "pack") == 1;
      if (!a_packed) {
        EXPECT_LE(space.value(c, "mr"), 16) << space.describe(c);
      }
      if (a_packed && !b_packed) {
        b_in_place_a_packed = true;
        by_block |= threads == 1 && space.value(c, "pack_block") == 1;
      }
    }
    EXPECT_TRUE(b_in_place_a_packed);
    EXPECT_EQ(by_block, threads == 1);
  }
}

TEST(Conv1x1Template, PacksTheWeightOnceAndReadsStridedPixelsInPlaceOnlyGathered) {
  const Workload w = Workload::parse("conv2d(n=2,c=16,h=8,w=8,k=16,r=1,s=1,stride=2,pad=0)");
  const Template& t = conv2d_1x1_cpu_template();
  const ConfigSpace s = t.space(w, test_target());
  const std::string tiles =
      "tile_m=[1,16] mr=4 tile_n=[1,16] nr=8 tile_k=[2,2,4] order=[m0,n0,k0] inner_order=[m1,n1] ";
  const Config packed = s.parse(tiles + "pack=1 pack_rows=0 pack_a=1 gather=0 parallel=0");
  ASSERT_FALSE(t.check(w, test_target(), s, packed).has_value());
  const ir::Program p = t.instantiate(w, test_target(), s, packed);
  ASSERT_TRUE(p.prepare);
  int prepared = 0;
  for (const ir::Buffer& b : p.workspace) prepared += b->prepared;
  EXPECT_EQ(prepared, 1);  // the weight; the data panels are packed in the timed body
  // Strided pixels cannot be read in place...
  const Config in_place = s.parse(tiles + "pack=0 pack_rows=0 pack_a=1 gather=0 parallel=0");
  const auto why = t.check(w, test_target(), s, in_place);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("strided"), std::string::npos) << *why;
  // ...unless they are gathered into a compact buffer first, in the timed body.
  const Config gathered = s.parse(tiles + "pack=0 pack_rows=0 pack_a=1 gather=1 parallel=0");
  ASSERT_FALSE(t.check(w, test_target(), s, gathered).has_value());
  std::vector<std::string> timed;
  for (const ir::Buffer& b : t.instantiate(w, test_target(), s, gathered).workspace) {
    if (!b->prepared) timed.push_back(b->name);
  }
  EXPECT_EQ(timed, std::vector<std::string>{"Bs"});
}

// Odd shapes: primes, single channels, pixel counts that are not multiples
// of the vector width, stride 2 (and unequal strides), two images.
TEST(Conv1x1Template, SampledConfigsComputeTheRightAnswer) {
  const Target t = detect_cpu_target(1);
  for (const char* spec :
       {"conv2d(n=1,c=7,h=5,w=9,k=13,r=1,s=1,stride=1,pad=0)",
        "conv2d(n=2,c=16,h=7,w=7,k=24,r=1,s=1,stride=2,pad=0)",
        "conv2d(n=1,c=1,h=3,w=3,k=1,r=1,s=1,stride=1,pad=0)",
        "conv2d(n=2,c=5,h=11,w=6,k=17,r=1,s=1,stride=3x2,pad=0)",
        "conv2d(n=1,c=32,h=8,w=8,k=16,r=1,s=1,stride=1,pad=0)"}) {
    testing::expect_configs_correct(conv2d_1x1_cpu_template(), spec, t, 8);
  }
}

TEST(Conv1x1Template, HandPickedAndParallelConfigsComputeTheRightAnswer) {
  const std::optional<Target> machine = testing::avx2_machine_target(2);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  testing::expect_configs_correct(
      conv2d_1x1_cpu_template(), "conv2d(n=2,c=12,h=8,w=8,k=10,r=1,s=1,stride=1,pad=0)", t,
      {"tile_m=[1,10] mr=5 tile_n=[2,32] nr=16 tile_k=[3,2,2] order=[m0,k0,n0] inner_order=[n1,m1] pack=0 pack_rows=0 pack_a=1 "
       "parallel=1",
       "tile_m=[2,5] mr=3 tile_n=[1,64] nr=24 tile_k=[1,3,4] order=[n0,m0,k0] inner_order=[m1,n1] pack=1 pack_rows=1 pack_a=0 "
       "parallel=2"});
  testing::expect_configs_correct(conv2d_1x1_cpu_template(),
                                  "conv2d(n=2,c=9,h=9,w=9,k=20,r=1,s=1,stride=2,pad=0)", t, 6, 5);
  // Gathered strided pixels, read in place and packed, on two threads.
  testing::expect_configs_correct(
      conv2d_1x1_cpu_template(), "conv2d(n=1,c=12,h=16,w=13,k=10,r=1,s=1,stride=2,pad=0)", t,
      {"tile_m=[2,5] mr=3 tile_n=[7,8] nr=8 tile_k=[3,2,2] order=[m0,n0,k0] inner_order=[n1,m1] pack=0 pack_rows=0 pack_a=1 "
       "gather=1 parallel=2",
       "tile_m=[1,10] mr=4 tile_n=[2,28] nr=16 tile_k=[1,3,4] order=[n0,k0,m0] inner_order=[m1,n1] pack=1 pack_rows=0 pack_a=0 "
       "gather=1 parallel=1"});
  // The threads split the gather by output rows, as the compute splits the
  // pixels: each reads back what it gathered itself.
  const Workload w = Workload::parse("conv2d(n=1,c=12,h=16,w=13,k=10,r=1,s=1,stride=2,pad=0)");
  const ConfigSpace space = conv2d_1x1_cpu_template().space(w, t);
  const ir::Program p = conv2d_1x1_cpu_template().instantiate(
      w, t, space,
      space.parse("tile_m=[2,5] mr=3 tile_n=[7,8] nr=8 tile_k=[3,2,2] order=[m0,n0,k0] inner_order=[n1,m1] pack=0 "
                  "pack_rows=0 pack_a=1 gather=1 parallel=2"));
  ASSERT_EQ(p.body->kind, ir::StmtKind::kSeq);
  EXPECT_EQ(p.body->seq.front()->loop_var, "g0_g2_fused");
}

}  // namespace
}  // namespace ktune

namespace ktune {
namespace {

// Every template's analytical seeds are valid configs of its space and
// compute the right answer, on this machine's vector width, on one thread
// and on two, for benchmark shapes and odd ones (primes, tiny extents).
TEST(SeedConfigs, EveryTemplatesSeedsAreValidAndComputeTheRightAnswer) {
  const std::vector<std::pair<const Template*, std::vector<std::string>>> cases = {
      {&matmul_cpu_template(), {"matmul(m=64,n=96,k=48)", "matmul(m=13,n=17,k=11)"}},
      {&dense_cpu_template(), {"dense(batch=1,in=64,out=100,bias=1)", "dense(batch=5,in=7,out=3)"}},
      {&batch_matmul_cpu_template(), {"batch_matmul(b=2,m=9,n=33,k=16)"}},
      {&conv2d_1x1_cpu_template(),
       {"conv2d(n=1,c=16,h=14,w=14,k=32,r=1,s=1)", "conv2d(n=2,c=8,h=9,w=7,k=24,r=1,s=1,stride=2)"}},
      {&conv2d_cpu_template(),
       {"conv2d(n=1,c=16,h=14,w=14,k=32,r=3,s=3,pad=1)", "conv2d(n=1,c=3,h=23,w=19,k=16,r=7,s=7,stride=2,pad=3)"}},
      {&depthwise_conv2d_cpu_template(),
       {"depthwise_conv2d(n=1,c=32,h=14,w=14,r=3,s=3,pad=1)", "depthwise_conv2d(n=1,c=24,h=9,w=11,r=3,s=3,stride=2,pad=1)"}},
      {&depthwise_conv2d_nchw_cpu_template(),
       {"depthwise_conv2d(n=1,c=32,h=14,w=14,r=3,s=3,pad=1)", "depthwise_conv2d(n=1,c=24,h=9,w=11,r=3,s=3,stride=2,pad=1)",
        "depthwise_conv2d(n=1,c=5,h=13,w=13,r=3,s=3,stride=3,pad=1)"}},
  };
  for (int threads : {1, 2}) {
    const Target t = detect_cpu_target(threads);
    for (const auto& [tmpl, specs] : cases) {
      for (const std::string& spec : specs) {
        SCOPED_TRACE(tmpl->name() + " on " + spec + ", " + std::to_string(threads) + " thread(s)");
        const Workload w = Workload::parse(spec);
        const ConfigSpace space = tmpl->space(w, t);
        const std::vector<Config> seeds = tmpl->seed_configs(w, t, space);
        ASSERT_FALSE(seeds.empty()) << "no seed config";
        std::set<uint64_t> distinct;
        for (const Config& c : seeds) {
          EXPECT_FALSE(tmpl->check(w, t, space, c).has_value()) << space.describe(c);
          EXPECT_TRUE(distinct.insert(c.index).second) << "seed repeated: " << space.describe(c);
        }
        testing::expect_correct(*tmpl, w, t, space, seeds);
      }
    }
  }
}

// A seed for several threads uses them on shapes with work enough: its
// kernel has a parallel loop of an iteration or more per thread (batch-1 1x1
// convs once had none, and ran on one thread).
TEST(SeedConfigs, SeedsForSeveralThreadsHaveAParallelLoop) {
  const int threads = 2;
  const Target t = detect_cpu_target(threads);
  const std::vector<std::pair<const Template*, std::vector<std::string>>> cases = {
      {&matmul_cpu_template(), {"matmul(m=256,n=256,k=256)", "matmul(m=64,n=768,k=768)"}},
      {&dense_cpu_template(), {"dense(batch=1,in=512,out=1000,bias=1)"}},
      {&batch_matmul_cpu_template(), {"batch_matmul(b=1,m=128,n=128,k=64)", "batch_matmul(b=4,m=64,n=64,k=64)"}},
      {&conv2d_1x1_cpu_template(),
       {"conv2d(n=1,c=64,h=56,w=56,k=64,r=1,s=1)", "conv2d(n=1,c=64,h=56,w=56,k=128,r=1,s=1,stride=2)"}},
      {&conv2d_cpu_template(),
       {"conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,pad=1)", "conv2d(n=1,c=512,h=7,w=7,k=512,r=3,s=3,pad=1)",
        "conv2d(n=1,c=256,h=14,w=14,k=512,r=1,s=1,stride=2)"}},
      {&depthwise_conv2d_cpu_template(), {"depthwise_conv2d(n=1,c=96,h=112,w=112,r=3,s=3,stride=2,pad=1)"}},
      {&depthwise_conv2d_nchw_cpu_template(),
       {"depthwise_conv2d(n=1,c=96,h=112,w=112,r=3,s=3,stride=2,pad=1)", "depthwise_conv2d(n=1,c=960,h=7,w=7,r=3,s=3,pad=1)"}},
  };
  for (const auto& [tmpl, specs] : cases) {
    for (const std::string& spec : specs) {
      SCOPED_TRACE(tmpl->name() + " on " + spec);
      const Workload w = Workload::parse(spec);
      const ConfigSpace space = tmpl->space(w, t);
      const std::vector<Config> seeds = tmpl->seed_configs(w, t, space);
      ASSERT_FALSE(seeds.empty()) << "no seed config";
      for (const Config& c : seeds) {
        int64_t widest = 0;
        ir::visit(tmpl->instantiate(w, t, space, c).body, [&](const ir::StmtNode& n) {
          if (n.kind == ir::StmtKind::kFor && n.loop_kind == ir::LoopKind::kParallel) {
            widest = std::max(widest, n.extent);
          }
        });
        EXPECT_GE(widest, threads) << "no parallel loop for " << threads << " threads in " << space.describe(c);
      }
    }
  }
}

}  // namespace
}  // namespace ktune
