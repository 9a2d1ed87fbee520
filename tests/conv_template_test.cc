// The direct conv2d / depthwise conv2d CPU templates: every sampled config
// computes the right answer on awkward shapes, the space is big and mostly
// valid on a real layer, and check() explains what it rejects.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "schedule_space/codegen_cpp.h"
#include "schedule_space/error.h"
#include "schedule_space/templates/templates.h"
#include "tests/kernel_check.h"
#include "tests/landscape.h"

namespace ktune {
namespace {

// A fixed AVX2-like target, so spaces do not depend on the test machine.
Target test_target(int threads = 2) {
  Target t;
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  t.cpu.threads = threads;
  return t;
}

// Measures `per_workload` random valid configs of tmpl on each workload on
// this machine (with two threads, so parallel configs run too) and expects
// every one to match the reference.
void expect_all_correct(const Template& tmpl, const std::vector<std::string>& specs,
                        size_t per_workload) {
  const Target t = detect_cpu_target(2);
  for (const std::string& spec : specs) {
    testing::expect_configs_correct(tmpl, spec, t, per_workload);
  }
}

TEST(Conv2dTemplate, SampledConfigsComputeTheRightAnswerOnAwkwardShapes) {
  expect_all_correct(conv2d_cpu_template(),
                     {
                         // a small real layer
                         "conv2d(n=1,c=16,h=14,w=14,k=32,r=3,s=3,stride=1,pad=1)",
                         // three input channels, 7x7 window, stride 2 (a ResNet stem, small)
                         "conv2d(n=1,c=3,h=15,w=15,k=16,r=7,s=7,stride=2,pad=3)",
                         // prime channel counts, odd sizes
                         "conv2d(n=1,c=13,h=9,w=11,k=7,r=3,s=3,stride=1,pad=1)",
                         // 1x1, stride 2 (the packing subsamples), and unequal
                         // strides with two images
                         "conv2d(n=1,c=16,h=13,w=13,k=24,r=1,s=1,stride=2,pad=0)",
                         "conv2d(n=2,c=5,h=10,w=11,k=16,r=1,s=1,stride=3x2,pad=0)",
                         // asymmetric padding (top, left, bottom, right), non-square window
                         "conv2d(n=1,c=8,h=10,w=9,k=16,r=3,s=2,stride=1,pad=0x1x1x0)",
                         // dilation 2, batch 2
                         "conv2d(n=2,c=8,h=12,w=12,k=8,r=3,s=3,stride=1,pad=2,dilation=2)",
                         // per-dimension stride and dilation
                         "conv2d(n=1,c=4,h=11,w=12,k=16,r=3,s=3,stride=2x1,pad=1,dilation=1x2)",
                     },
                     5);
}

TEST(DepthwiseConv2dTemplate, SampledConfigsComputeTheRightAnswerOnAwkwardShapes) {
  expect_all_correct(depthwise_conv2d_cpu_template(),
                     {
                         "depthwise_conv2d(n=1,c=32,h=14,w=14,r=3,s=3,stride=1,pad=1)",
                         // channel multiplier 2, odd channel count
                         "depthwise_conv2d(n=1,c=3,h=9,w=9,r=3,s=3,stride=1,pad=1,multiplier=2)",
                         // stride 2, asymmetric padding, prime channel count
                         "depthwise_conv2d(n=2,c=13,h=11,w=10,r=3,s=3,stride=2,pad=0x1x1x0)",
                         // dilation 2, 5x5 window
                         "depthwise_conv2d(n=1,c=16,h=12,w=13,r=5,s=5,stride=1,pad=4,dilation=2)",
                     },
                     5);
}

// The NCHW depthwise template on the same awkward shapes, plus stride 3 and
// a 1-wide image: its plane's phase split and partial tiles.
TEST(DepthwiseConv2dTemplate, TheNchwTemplateComputesTheRightAnswerOnAwkwardShapes) {
  expect_all_correct(depthwise_conv2d_nchw_cpu_template(),
                     {
                         "depthwise_conv2d(n=1,c=32,h=14,w=14,r=3,s=3,stride=1,pad=1)",
                         "depthwise_conv2d(n=1,c=3,h=9,w=9,r=3,s=3,stride=1,pad=1,multiplier=2)",
                         "depthwise_conv2d(n=2,c=13,h=11,w=10,r=3,s=3,stride=2,pad=0x1x1x0)",
                         "depthwise_conv2d(n=1,c=16,h=12,w=13,r=5,s=5,stride=1,pad=4,dilation=2)",
                         "depthwise_conv2d(n=1,c=5,h=17,w=19,r=3,s=3,stride=3x2,pad=1,dilation=1x2)",
                         "depthwise_conv2d(n=1,c=4,h=9,w=1,r=3,s=1,stride=1,pad=1x0x1x0)",
                     },
                     6);
}

// The NCHW conv2d template for few input channels: bands of rows with a
// partial last band, partial tiles along the rows, strides (its phase split),
// dilation, asymmetric padding, batch 2, and the 1x1 and stem shapes.
TEST(Conv2dTemplate, TheNchwTemplateComputesTheRightAnswerOnAwkwardShapes) {
  expect_all_correct(conv2d_nchw_cpu_template(),
                     {
                         "conv2d(n=1,c=3,h=31,w=29,k=16,r=3,s=3,stride=2,pad=0)",
                         "conv2d(n=1,c=3,h=15,w=15,k=16,r=7,s=7,stride=2,pad=3)",
                         "conv2d(n=2,c=5,h=10,w=11,k=6,r=3,s=2,stride=1,pad=0x1x1x0)",
                         "conv2d(n=1,c=8,h=13,w=13,k=24,r=1,s=1,stride=2,pad=0)",
                         "conv2d(n=1,c=4,h=11,w=12,k=16,r=3,s=3,stride=2x3,pad=1,dilation=1x2)",
                         "conv2d(n=1,c=1,h=9,w=1,k=3,r=3,s=1,stride=1,pad=1x0x1x0)",
                     },
                     6);
}

// Unblocked input channels without padding read the NCHW input in place:
// no packed copy in the workspace, the same answer; 1x1 at stride 1 and 2
// (every other pixel read where it lies), a 3x3 without padding, two images.
// A tile that runs past the row (a padded width) keeps the copy.
// On a 7-wide output, 7 columns x 2 vectors and 4 columns x 4 vectors do
// the same work, but the 4-column tile computes 8 columns, takes a remainder
// path and cannot read unblocked channels in place: the whole row comes
// first (every 7x7 winner of ResNet-18 and MobileNetV2 tuned as models had
// it), and wider outputs keep their largest tile.
TEST(Conv2dTemplate, TheFirstSeedsTileDividesTheOutputRowWhenItDoesAsMuchWork) {
  const Target t = testing::fixed_avx512_target(2);
  const Template& tmpl = conv2d_cpu_template();
  for (auto [spec, ow] : std::vector<std::pair<std::string, int64_t>>{
           {"conv2d(n=1,c=960,h=7,w=7,k=320,r=1,s=1)", 7},
           {"conv2d(n=1,c=512,h=7,w=7,k=512,r=3,s=3,pad=1)", 7},
           {"conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,pad=1)", 14}}) {
    SCOPED_TRACE(spec);
    const Workload w = Workload::parse(spec);
    const ConfigSpace space = tmpl.space(w, t);
    const std::vector<Config> seeds = tmpl.seed_configs(w, t, space);
    ASSERT_FALSE(seeds.empty());
    EXPECT_EQ(space.value(seeds.front(), "tile_ow"), ow);
  }
}

TEST(Conv2dTemplate, UnblockedChannelsWithoutPaddingReadTheInputInPlace) {
  const Target t = detect_cpu_target(2);
  const Template& tmpl = conv2d_cpu_template();
  struct Case {
    std::string spec, config;
    bool in_place;
  };
  const std::vector<Case> cases = {
      {"conv2d(n=1,c=32,h=7,w=7,k=48,r=1,s=1)",
       "tile_ic=[32,1] tile_oc=[3,16] tile_oh=[7,1] tile_ow=7 ow_block=1 order=[k0,oh0,oh1,ow0,ow1] "
       "order_reduce=[c0,r,s,c1] unroll=1 fma_order=0 parallel=2",
       true},
      {"conv2d(n=2,c=24,h=14,w=13,k=32,r=1,s=1,stride=2)",
       "tile_ic=[24,1] tile_oc=[2,16] tile_oh=[7,1] tile_ow=7 ow_block=1 order=[k0,oh0,oh1,ow0,ow1] "
       "order_reduce=[c0,r,s,c1] unroll=0 fma_order=1 parallel=2",
       true},
      {"conv2d(n=1,c=8,h=11,w=12,k=16,r=3,s=3,stride=2)",
       "tile_ic=[8,1] tile_oc=[1,16] tile_oh=[5,1] tile_ow=5 ow_block=1 order=[k0,oh0,oh1,ow0,ow1] "
       "order_reduce=[r,c0,s,c1] unroll=2 fma_order=0 parallel=2",
       true},
      {"conv2d(n=1,c=32,h=7,w=7,k=48,r=1,s=1)",  // tiles of 4 over 7 columns: the copy
       "tile_ic=[32,1] tile_oc=[3,16] tile_oh=[7,1] tile_ow=4 ow_block=1 order=[k0,oh0,oh1,ow0,ow1] "
       "order_reduce=[c0,r,s,c1] unroll=1 fma_order=0 parallel=2",
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec + " " + c.config);
    const Workload w = Workload::parse(c.spec);
    const ConfigSpace space = tmpl.space(w, t);
    const ir::Program p = tmpl.instantiate(w, t, space, space.parse(c.config));
    bool copies = false;
    for (const ir::Buffer& b : p.workspace) copies |= b->name == "data_packed";
    EXPECT_EQ(copies, !c.in_place);
    testing::expect_configs_correct(tmpl, c.spec, t, {c.config});
  }
  // Without padding the first seed is such a config (with padding, blocked channels).
  for (const auto& [spec, in_place] : std::vector<std::pair<std::string, bool>>{
           {"conv2d(n=1,c=576,h=7,w=7,k=160,r=1,s=1)", true},
           {"conv2d(n=1,c=64,h=14,w=14,k=64,r=3,s=3,pad=1)", false}}) {
    SCOPED_TRACE(spec);
    const Workload w = Workload::parse(spec);
    const ConfigSpace space = tmpl.space(w, t);
    const ir::Program p = tmpl.instantiate(w, t, space, tmpl.seed_configs(w, t, space).front());
    bool copies = false;
    for (const ir::Buffer& b : p.workspace) copies |= b->name == "data_packed";
    EXPECT_EQ(copies, !in_place);
  }
}

// It is offered for few input channels only, and first there: a stem conv's
// untuned default is one of its seeds.
TEST(Conv2dTemplate, TheNchwTemplateIsForFewInputChannels) {
  const Workload stem = Workload::parse("conv2d(n=1,c=3,h=224,w=224,k=64,r=7,s=7,stride=2,pad=3)");
  EXPECT_EQ(templates_for(stem, TargetKind::kCpu).front(), &conv2d_nchw_cpu_template());
  EXPECT_FALSE(conv2d_nchw_cpu_template().seed_configs(stem, test_target(), conv2d_nchw_cpu_template().space(stem, test_target())).empty());
  const Workload wide = Workload::parse("conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)");
  for (const Template* t : templates_for(wide, TargetKind::kCpu)) EXPECT_NE(t, &conv2d_nchw_cpu_template());
  EXPECT_TRUE(conv2d_nchw_cpu_template().unsupported(wide).has_value());
}

// Rows narrower than their tiles: above a plane's last row the cut vector is
// stored whole, spilling into the next row that is written after it; two
// threads on neighbouring channels, one tile per row band and several tiles
// per row, and tiles of several rows, where that would not hold.
TEST(DepthwiseConv2dTemplate, TheNchwTemplateSpillsCutVectorsOnlyIntoRowsWrittenLater) {
  const Target t = detect_cpu_target(2);
  const std::string v = std::to_string(std::max(2, t.cpu.vector_lanes));
  const std::string h = std::to_string(std::max(1, t.cpu.vector_lanes / 2));
  for (const std::string& spec : std::vector<std::string>{"depthwise_conv2d(n=1,c=8,h=14,w=14,r=3,s=3,stride=1,pad=1)",
                                 "depthwise_conv2d(n=2,c=5,h=9,w=" + std::to_string(2 * std::stoi(v) + 3) +
                                     ",r=3,s=3,stride=1,pad=1)"}) {
    testing::expect_configs_correct(depthwise_conv2d_nchw_cpu_template(), spec, t,
                                    {"tile_y=1 tile_x=1 vec=" + v + " unroll=2 window=0", "tile_y=2 tile_x=1 vec=" + v + " unroll=2 window=0",
                                     "tile_y=3 tile_x=1 vec=" + h + " unroll=1 window=0", "tile_y=2 tile_x=2 vec=" + h + " unroll=0 window=0"});
  }
}

// The masked window (no plane, masked loads from the input): a whole plane
// in one tile, many row tiles (the row tests at run time) with a partial last
// one, a row stride of 2, batch 2, a channel multiplier, dilation with padding
// wider than the kernel reaches, asymmetric padding, a 1-wide image, column
// stride 2; vectors of the full and half width, one or several per row, at 2
// threads.
TEST(DepthwiseConv2dTemplate, TheMaskedWindowComputesTheRightAnswer) {
  const Target t = detect_cpu_target(2);
  const std::string v = std::to_string(std::max(2, t.cpu.vector_lanes));
  const std::string h = std::to_string(std::max(1, t.cpu.vector_lanes / 2));
  for (const std::string spec : {"depthwise_conv2d(n=1,c=8,h=7,w=7,r=3,s=3,stride=1,pad=1)",
                                  "depthwise_conv2d(n=2,c=5,h=61,w=19,r=3,s=3,stride=2x1,pad=1)",
                                  "depthwise_conv2d(n=1,c=3,h=9,w=9,r=3,s=3,stride=1,pad=1,multiplier=2)",
                                  "depthwise_conv2d(n=1,c=4,h=12,w=13,r=5,s=5,stride=1,pad=4,dilation=2)",
                                  "depthwise_conv2d(n=1,c=3,h=10,w=9,r=3,s=2,stride=1,pad=0x1x1x0)",
                                  "depthwise_conv2d(n=1,c=4,h=9,w=1,r=3,s=1,stride=1,pad=1x0x1x0)",
                                  // column stride 2: even and odd widths, padding on one side only
                                  "depthwise_conv2d(n=1,c=6,h=23,w=23,r=3,s=3,stride=2,pad=1)",
                                  "depthwise_conv2d(n=2,c=3,h=16,w=40,r=3,s=3,stride=2,pad=0x0x1x1)",
                                  "depthwise_conv2d(n=1,c=4,h=13,w=14,r=5,s=5,stride=2,pad=2,dilation=2)"}) {
    const int64_t oh = Workload::parse(spec).conv2d().out_h();
    auto rows = [&](int64_t y) { return std::to_string(std::min(y, oh)); };
    testing::expect_configs_correct(depthwise_conv2d_nchw_cpu_template(), spec, t,
                                    {"tile_y=" + rows(8) + " tile_x=1 vec=" + v + " unroll=2 window=1",
                                     "tile_y=" + rows(3) + " tile_x=2 vec=" + h + " unroll=2 window=1",
                                     "tile_y=" + rows(5) + " tile_x=1 vec=" + h + " unroll=0 window=1",
                                     "tile_y=1 tile_x=3 vec=" + v + " unroll=1 window=1"});
  }
}

// Only column strides of 1 and 2 read the input's rows as vectors.
TEST(DepthwiseConv2dTemplate, TheMaskedWindowIsOfferedForColumnStridesOneAndTwo) {
  const Target t = detect_cpu_target(1);
  const Template& tmpl = depthwise_conv2d_nchw_cpu_template();
  const Workload unit = Workload::parse("depthwise_conv2d(n=1,c=8,h=14,w=14,r=3,s=3,stride=3x2,pad=1)");
  const Workload two = Workload::parse("depthwise_conv2d(n=1,c=8,h=14,w=14,r=3,s=3,stride=3,pad=1)");
  const ConfigSpace unit_space = tmpl.space(unit, t);
  EXPECT_EQ(unit_space.knob(unit_space.knob_index("window")).size(), 2);
  const ConfigSpace strided = tmpl.space(two, t);
  EXPECT_EQ(strided.knob(strided.knob_index("window")).size(), 1);
  for (const Config& c : tmpl.seed_configs(two, t, strided)) EXPECT_EQ(strided.value(c, "window"), 0);
}

// The masked window's first seed: one vector per row, of the width that
// pads the output row least (the wider at a tie).
TEST(DepthwiseConv2dTemplate, TheFirstMaskedSeedIsOneVectorPerRowOfTheLeastPaddedWidth) {
  const Target t = testing::fixed_avx512_target(2);
  const Template& tmpl = depthwise_conv2d_nchw_cpu_template();
  for (auto [spec, vec] : std::vector<std::pair<std::string, int64_t>>{
           {"depthwise_conv2d(n=1,c=960,h=7,w=7,r=3,s=3,pad=1)", 8},
           {"depthwise_conv2d(n=1,c=144,h=56,w=56,r=3,s=3,pad=1)", 8},
           {"depthwise_conv2d(n=1,c=192,h=28,w=28,r=3,s=3,pad=1)", 16},
           {"depthwise_conv2d(n=1,c=96,h=112,w=112,r=3,s=3,stride=2,pad=1)", 8},
           {"depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,pad=1)", 16}}) {
    SCOPED_TRACE(spec);
    const Workload w = Workload::parse(spec);
    const ConfigSpace space = tmpl.space(w, t);
    const std::vector<Config> seeds = tmpl.seed_configs(w, t, space);
    ASSERT_GE(seeds.size(), 2u);
    EXPECT_EQ(space.value(seeds.front(), "window"), 1);
    EXPECT_EQ(space.value(seeds.front(), "tile_x"), 1);
    EXPECT_EQ(space.value(seeds.front(), "vec"), vec);
    EXPECT_EQ(space.value(seeds[1], "tile_x"), 1);  // then the other width
    EXPECT_NE(space.value(seeds[1], "vec"), vec);
  }
}

TEST(Conv2dTemplate, ResNetLayerSpaceIsLargeAndMostlyValid) {
  const Template& tmpl = conv2d_cpu_template();
  const Workload w = Workload::parse("conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)");
  const Target t = test_target();
  const ConfigSpace space = tmpl.space(w, t);
  std::mt19937_64 rng(7);
  const int samples = 2000;
  int valid = 0;
  for (int i = 0; i < samples; ++i) valid += !tmpl.check(w, t, space, space.random(rng));
  const double valid_configs = static_cast<double>(valid) / samples * static_cast<double>(space.size());
  EXPECT_GE(valid_configs, 1e6) << "space size " << space.size() << ", " << valid << "/" << samples
                                << " sampled configs valid";
  EXPECT_GT(valid, samples / 2);
}

// The config of `space` closest to `base` with knob `knob` set to the choice
// described as `choice` (e.g. "[1,2,14]").
Config with_choice(const ConfigSpace& space, const Config& base, const std::string& knob,
                   const std::string& choice) {
  const size_t i = space.knob_index(knob);
  std::vector<int64_t> choices = base.choices;
  for (int64_t ch = 0; ch < space.knob(i).size(); ++ch) {
    if (space.knob(i).describe(ch) == choice) {
      choices[i] = ch;
      return space.get(space.index_of(choices));
    }
  }
  ADD_FAILURE() << "knob " << knob << " has no choice " << choice;
  return base;
}

TEST(Conv2dTemplate, CheckRejectsRegisterTilesThatDoNotFit) {
  const Template& tmpl = conv2d_cpu_template();
  const Workload w = Workload::parse("conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)");
  const Target t = test_target();
  const ConfigSpace space = tmpl.space(w, t);
  Config c = space.get(0);
  c = with_choice(space, c, "unroll", "0");
  c = with_choice(space, c, "tile_oc", "[4,32]");
  c = with_choice(space, c, "tile_ow", "7");  // 7 columns x 4 vectors: 28 accumulators
  const std::optional<std::string> reason = tmpl.check(w, t, space, c);
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("accumulators"), std::string::npos) << *reason;
  EXPECT_THROW(tmpl.instantiate(w, t, space, c), Error);

  c = with_choice(space, c, "tile_ow", "3");  // 3 x 4 vectors fit, though 3 does not divide 28
  c = with_choice(space, c, "ow_block", "8");   // 10 tiles: the second group is partial
  EXPECT_EQ(tmpl.check(w, t, space, c), std::nullopt);
}

// Register tiles whose width does not divide the output width (the last tile
// of a row is partial) and groups of tiles that do not divide the tile count
// (the last group is partial) still compute every output exactly once.
TEST(Conv2dTemplate, PartialRegisterTilesComputeTheRightAnswer) {
  const std::optional<Target> machine = testing::avx2_machine_target(2);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  const std::string order = " order=[k0,oh0,oh1,ow0,ow1] order_reduce=[c0,r,s,c1]";
  testing::expect_configs_correct(
      conv2d_cpu_template(), "conv2d(n=1,c=16,h=14,w=14,k=32,r=3,s=3,stride=1,pad=1)", t,
      {// 5 tiles of 3 columns (the last has 2) in groups of 4 (the last has 1)
       "tile_ic=[2,8] tile_oc=[1,32] tile_oh=[2,7] tile_ow=3 ow_block=4" + order +
           " unroll=1 fma_order=1 parallel=0",
       "tile_ic=[1,16] tile_oc=[2,16] tile_oh=[14,1] tile_ow=6 ow_block=2" + order +
           " unroll=2 fma_order=0 parallel=2",
       "tile_ic=[4,4] tile_oc=[4,8] tile_oh=[7,2] tile_ow=5 ow_block=1" + order +
           " unroll=0 fma_order=1 parallel=3"});
  // stride 2, batch 2, three input channels: 7 output columns in tiles of 4
  testing::expect_configs_correct(
      conv2d_cpu_template(), "conv2d(n=2,c=3,h=13,w=13,k=16,r=7,s=7,stride=2,pad=3)", t,
      {"tile_ic=[1,3] tile_oc=[1,16] tile_oh=[1,7] tile_ow=4 ow_block=2" + order +
       " unroll=1 fma_order=1 parallel=1"});
  testing::expect_configs_correct(
      depthwise_conv2d_cpu_template(),
      "depthwise_conv2d(n=1,c=8,h=11,w=11,r=3,s=3,stride=1,pad=1,multiplier=2)", t,
      {"tile_c=[1,16] tile_oh=[1,11] tile_ow=4 ow_block=2 order=[k0,oh0,oh1,ow0,ow1]"
       " unroll=2 fma_order=1 parallel=1"});
}

// Kernel taps that read only padding are skipped: kernel rows by a runtime
// test per output row, and, for a register tile spanning the whole output
// row with the kernel columns unrolled, the padded columns' multiply-adds
// are not emitted at all. The answer stays right at every border: unequal
// padding, stride, dilation, padding wider than the kernel reaches.
TEST(Conv2dTemplate, SkipsTapsInThePaddingAndStillComputesTheRightAnswer) {
  const std::optional<Target> machine = testing::avx2_machine_target(2);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  const std::string order = " order=[k0,oh0,oh1,ow0,ow1] order_reduce=[c0,r,s,c1]";
  const std::string spanning = "tile_ic=[2,4] tile_oc=[1,16] tile_oh=[7,1] tile_ow=7 ow_block=1" + order;
  const std::string spec = "conv2d(n=1,c=8,h=7,w=7,k=16,r=3,s=3,pad=1)";
  testing::expect_configs_correct(conv2d_cpu_template(), spec, t,
                                  {spanning + " unroll=2 fma_order=0 parallel=0",
                                   spanning + " unroll=1 fma_order=1 parallel=1"});
  // Multiply-adds emitted for one (c0, r) step: 7 columns x 3 kernel
  // columns, less the 2 that read the left and right padding, x 4 channels
  // x 2 vectors of 8 lanes.
  const Workload w = Workload::parse(spec);
  const ConfigSpace space = conv2d_cpu_template().space(w, t);
  const std::string code = emit_cpp(conv2d_cpu_template().instantiate(
      w, t, space, space.parse(spanning + " unroll=2 fma_order=0 parallel=0")));
  size_t fmas = 0;
  for (size_t at = code.find("] += "); at != std::string::npos; at = code.find("] += ", at + 1)) ++fmas;
  EXPECT_EQ(fmas, (7u * 3 - 2) * 4 * 2);
  testing::expect_configs_correct(
      conv2d_cpu_template(), "conv2d(n=1,c=4,h=9,w=10,k=8,r=3,s=5,stride=2,pad=2x3x0x1,dilation=2)", t,
      {"tile_ic=[1,4] tile_oc=[1,8] tile_oh=[1,4] tile_ow=3 ow_block=1" + order +
           " unroll=2 fma_order=1 parallel=2",
       "tile_ic=[2,2] tile_oc=[1,8] tile_oh=[4,1] tile_ow=2 ow_block=2" + order +
           " unroll=0 fma_order=0 parallel=0"});
  testing::expect_configs_correct(
      depthwise_conv2d_cpu_template(), "depthwise_conv2d(n=1,c=8,h=5,w=5,r=5,s=5,stride=1,pad=4)", t,
      {"tile_c=[1,8] tile_oh=[9,1] tile_ow=8 ow_block=1 order=[k0,oh0,oh1,ow0,ow1]"
       " unroll=2 fma_order=0 parallel=0",
       "tile_c=[1,8] tile_oh=[3,3] tile_ow=3 ow_block=2 order=[k0,oh0,oh1,ow0,ow1]"
       " unroll=1 fma_order=1 parallel=2"});
}

// With threads, the input is packed split the way the compute splits the
// output: by rows where the compute's parallel loop splits rows first (each
// thread then reads mostly rows it packed itself, not ones in the other
// core's cache), by channel blocks where it splits the output channels
// first. Either way every border is right: padding on some sides only, two
// images, a subsampled strided 1x1, a depthwise multiplier.
TEST(Conv2dTemplate, ThreadsPackTheInputTheWayTheComputeSplitsIt) {
  const std::optional<Target> machine = testing::avx2_machine_target(2);
  if (!machine) GTEST_SKIP() << "these hand-picked configs are AVX2 code; this machine has no AVX2";
  const Target t = *machine;
  struct Case {
    const Template& tmpl;
    std::string spec, config, pack_loop;
  };
  const std::vector<Case> cases = {
      {conv2d_cpu_template(), "conv2d(n=2,c=8,h=10,w=9,k=16,r=3,s=2,stride=1,pad=0x1x1x0)",
       "tile_ic=[2,4] tile_oc=[1,16] tile_oh=[3,3] tile_ow=3 ow_block=1 order=[oh0,oh1,k0,ow0,ow1] "
       "order_reduce=[c0,r,s,c1] unroll=1 fma_order=0 parallel=1",
       "pn_ph_fused"},
      {conv2d_cpu_template(), "conv2d(n=1,c=16,h=13,w=13,k=24,r=1,s=1,stride=2,pad=0)",
       "tile_ic=[2,8] tile_oc=[3,8] tile_oh=[7,1] tile_ow=4 ow_block=1 order=[oh0,ow0,oh1,ow1,k0] "
       "order_reduce=[c0,r,s,c1] unroll=1 fma_order=1 parallel=2",
       "pn_ph_fused"},
      {conv2d_cpu_template(), "conv2d(n=1,c=8,h=7,w=7,k=16,r=3,s=3,pad=1)",
       "tile_ic=[2,4] tile_oc=[2,8] tile_oh=[7,1] tile_ow=7 ow_block=1 order=[k0,oh0,oh1,ow0,ow1] "
       "order_reduce=[c0,r,s,c1] unroll=1 fma_order=0 parallel=1",
       "pn_pc_fused"},
      {depthwise_conv2d_cpu_template(), "depthwise_conv2d(n=1,c=8,h=11,w=11,r=3,s=3,stride=2,pad=1,multiplier=2)",
       "tile_c=[2,8] tile_oh=[3,2] tile_ow=3 ow_block=2 order=[oh0,k0,oh1,ow0,ow1] unroll=1 fma_order=0 parallel=2",
       "pn_ph_fused"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec + " " + c.config);
    const Workload w = Workload::parse(c.spec);
    const ConfigSpace space = c.tmpl.space(w, t);
    const ir::Program p = c.tmpl.instantiate(w, t, space, space.parse(c.config));
    ASSERT_EQ(p.body->kind, ir::StmtKind::kSeq);
    const ir::Stmt pack = p.body->seq.front();
    ASSERT_EQ(pack->kind, ir::StmtKind::kFor);
    EXPECT_EQ(pack->loop_var, c.pack_loop);
    EXPECT_EQ(pack->loop_kind, ir::LoopKind::kParallel);
    testing::expect_configs_correct(c.tmpl, c.spec, t, {c.config});
  }
}

TEST(Conv2dTemplate, RejectsOtherOperators) {
  const Workload dw = Workload::parse("depthwise_conv2d(n=1,c=8,h=8,w=8,r=3,s=3,pad=1)");
  EXPECT_THROW(conv2d_cpu_template().space(dw, test_target()), Error);
  const Workload conv = Workload::parse("conv2d(n=1,c=8,h=8,w=8,k=8,r=3,s=3,pad=1)");
  EXPECT_THROW(depthwise_conv2d_cpu_template().space(conv, test_target()), Error);
}

}  // namespace
}  // namespace ktune
