#include "schedule_space/config_space.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <string>

#include "schedule_space/error.h"
#include "schedule_space/target.h"

namespace ktune {
namespace {

int64_t product(const std::vector<int64_t>& factors) {
  return std::accumulate(factors.begin(), factors.end(), int64_t{1}, std::multiplies<>());
}

// The message of the ktune::Error that fn throws ("" if none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A space shaped like a conv2d template's: > 10^12 configs.
ConfigSpace large_space() {
  ConfigSpace space;
  space.add_split("tile_k", 512, 4);
  space.add_split("tile_y", 224, 4);
  space.add_split("tile_x", 224, 4);
  space.add_split("tile_c", 256, 3);
  space.add_split("tile_f", 1024, 4);
  space.add_reorder("order", {"m0", "n0", "k0"}, {{0, 1, 2}, {1, 0, 2}, {0, 2, 1}});
  space.add_choice("unroll", {0, 1, 2, 4, 8, 16});
  space.add_choice("pack", {0, 1});
  return space;
}

TEST(SplitKnob, EnumeratesEveryOrderedFactorization) {
  SplitKnob knob("tile", 12, 2);
  ASSERT_EQ(knob.size(), 6);  // 1x12 2x6 3x4 4x3 6x2 12x1
  std::set<std::vector<int64_t>> seen;
  for (int64_t i = 0; i < knob.size(); ++i) {
    EXPECT_EQ(product(knob.factors(i)), 12);
    EXPECT_EQ(knob.factors(i).size(), 2u);
    seen.insert(knob.factors(i));
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(knob.describe(1), "[2,6]");

  // 2^10 into 3 levels: the number of ways to place 10 twos in 3 bins.
  SplitKnob pow2("tile", 1024, 3);
  EXPECT_EQ(pow2.size(), 66);
  for (int64_t i = 0; i < pow2.size(); ++i) EXPECT_EQ(product(pow2.factors(i)), 1024);

  // A prime has only the trivial placements.
  EXPECT_EQ(SplitKnob("tile", 7, 3).size(), 3);
  EXPECT_EQ(SplitKnob("tile", 7, 1).size(), 1);
}

TEST(SplitKnob, PowerOfTwoPolicyLeavesTheOddPartOutermost) {
  SplitKnob knob("tile", 24, 3, {.power_of_two = true});
  ASSERT_GT(knob.size(), 0);
  for (int64_t i = 0; i < knob.size(); ++i) {
    const auto& f = knob.factors(i);
    EXPECT_EQ(product(f), 24);
    EXPECT_EQ(f[0] % 3, 0) << knob.describe(i);
    for (size_t level = 1; level < f.size(); ++level) {
      EXPECT_EQ(f[level] & (f[level] - 1), 0) << knob.describe(i);
    }
  }
  EXPECT_EQ(knob.size(), 10);  // 2^3 placed in 3 bins
}

TEST(SplitKnob, InnermostPolicies) {
  SplitKnob bounded("tile", 64, 2, {.max_innermost = 8});
  EXPECT_EQ(bounded.size(), 4);  // innermost 1, 2, 4, 8
  for (int64_t i = 0; i < bounded.size(); ++i) EXPECT_LE(bounded.factors(i).back(), 8);

  SplitKnob vector("tile", 64, 3, {.innermost_multiple_of = 8});
  for (int64_t i = 0; i < vector.size(); ++i) EXPECT_EQ(vector.factors(i).back() % 8, 0);

  // No innermost factor of 6 is a multiple of 8: the preference is dropped
  // rather than leaving the axis untunable.
  EXPECT_EQ(SplitKnob("tile", 6, 2, {.innermost_multiple_of = 8}).size(), 4);
}

TEST(SplitKnob, BadArgumentsAreErrors) {
  EXPECT_NE(error_of([] { SplitKnob("tile", 0, 2); }).find("extent"), std::string::npos);
  EXPECT_NE(error_of([] { SplitKnob("tile", 8, 0); }).find("levels"), std::string::npos);
  EXPECT_NE(error_of([] { SplitKnob("tile", 8, 2, {.max_innermost = -1}); }).find("tile"),
            std::string::npos);
}

TEST(SplitKnob, NeighboursMoveOnePrimeFactor) {
  SplitKnob knob("tile", 360, 3);
  for (int64_t i = 0; i < knob.size(); ++i) {
    const auto& base = knob.factors(i);
    const auto next = knob.neighbours(i);
    EXPECT_FALSE(next.empty());
    for (int64_t j : next) {
      ASSERT_NE(i, j);
      const auto& other = knob.factors(j);
      // Exactly two levels differ, by the same prime, in opposite directions.
      std::vector<size_t> changed;
      for (size_t level = 0; level < base.size(); ++level) {
        if (base[level] != other[level]) changed.push_back(level);
      }
      ASSERT_EQ(changed.size(), 2u) << knob.describe(i) << " -> " << knob.describe(j);
      const int64_t a = base[changed[0]], b = other[changed[0]];
      const int64_t ratio = a > b ? a / b : b / a;
      EXPECT_TRUE(ratio == 2 || ratio == 3 || ratio == 5)
          << knob.describe(i) << " -> " << knob.describe(j);
    }
  }
  // [1,1,8] of 8: the only moves take one 2 from the innermost level.
  SplitKnob eight("tile", 8, 3);
  int64_t innermost = -1;
  for (int64_t i = 0; i < eight.size(); ++i) {
    if (eight.describe(i) == "[1,1,8]") innermost = i;
  }
  ASSERT_GE(innermost, 0);
  std::set<std::string> described;
  for (int64_t j : eight.neighbours(innermost)) described.insert(eight.describe(j));
  EXPECT_EQ(described, (std::set<std::string>{"[2,1,4]", "[1,2,4]"}));
}

TEST(ConfigKnobs, ChoiceAndReorderNeighbours) {
  ChoiceKnob unroll("unroll", {1, 2, 4, 8, 16});
  EXPECT_EQ(unroll.neighbours(0), (std::vector<int64_t>{1}));
  EXPECT_EQ(unroll.neighbours(2), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(unroll.describe(3), "8");

  auto order = ReorderKnob::all_permutations("order", {"m", "n", "k"});
  ASSERT_EQ(order->size(), 6);
  EXPECT_EQ(order->describe(0), "[m,n,k]");
  for (int64_t j : order->neighbours(0)) {
    const std::string d = order->describe(j);
    EXPECT_TRUE(d == "[n,m,k]" || d == "[m,k,n]") << d;
  }
  EXPECT_EQ(order->neighbours(0).size(), 2u);

  // No order of this list is one adjacent swap from another: every other
  // order is a neighbour.
  ReorderKnob rotations("order", {"a", "b", "c"}, {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}});
  EXPECT_EQ(rotations.neighbours(0), (std::vector<int64_t>{1, 2}));

  EXPECT_THROW(ChoiceKnob("unroll", {}), Error);
  EXPECT_THROW(ChoiceKnob("unroll", {1, 1}), Error);
  EXPECT_THROW(ReorderKnob("order", {"a", "b"}, {{0, 0}}), Error);
}

TEST(ConfigSpace, IndexRoundTripOnAHugeSpace) {
  const ConfigSpace space = large_space();
  uint64_t expected = 1;
  for (size_t i = 0; i < space.num_knobs(); ++i) expected *= space.knob(i).size();
  EXPECT_EQ(space.size(), expected);
  EXPECT_GT(space.size(), uint64_t{1000000000000});

  std::mt19937_64 rng(42);
  std::vector<uint64_t> indices = {0, 1, space.size() / 2, space.size() - 1};
  for (int i = 0; i < 1000; ++i) indices.push_back(space.random(rng).index);
  for (uint64_t index : indices) {
    const Config c = space.get(index);
    ASSERT_EQ(c.index, index);
    ASSERT_EQ(c.choices.size(), space.num_knobs());
    ASSERT_EQ(space.index_of(c.choices), index);
  }
  // The first knob is the least significant digit.
  EXPECT_EQ(space.get(1).choices[0], 1);
  EXPECT_EQ(space.get(space.size() - 1).choices.back(), 1);

  EXPECT_NE(error_of([&] { space.get(space.size()); }).find("out of range"), std::string::npos);
  EXPECT_THROW(space.index_of({0, 0}), Error);
}

TEST(ConfigSpace, TooLargeSpaceIsAnError) {
  ConfigSpace space;
  // 2^30 into 4 levels has C(33,3) = 5456 choices; 5456^5 < 2^63 < 5456^6.
  for (int i = 0; i < 5; ++i) space.add_split("tile" + std::to_string(i), 1 << 30, 4);
  EXPECT_NE(error_of([&] { space.add_split("one_more", 1 << 30, 4); }).find("2^63"),
            std::string::npos);
}

TEST(ConfigSpace, KnobNamesAreUnique) {
  ConfigSpace space;
  space.add_choice("unroll", {1, 2});
  EXPECT_NE(error_of([&] { space.add_choice("unroll", {4}); }).find("'unroll'"),
            std::string::npos);
}

TEST(ConfigSpace, NeighboursDifferInExactlyOneKnob) {
  const ConfigSpace space = large_space();
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const Config c = space.random(rng);
    const auto next = space.neighbours(c);
    ASSERT_FALSE(next.empty());
    for (const Config& n : next) {
      ASSERT_LT(n.index, space.size());
      ASSERT_EQ(space.get(n.index), n);
      int differing = 0;
      for (size_t i = 0; i < c.choices.size(); ++i) differing += c.choices[i] != n.choices[i];
      EXPECT_EQ(differing, 1);
    }
  }
}

TEST(ConfigSpace, DescribeAndParseRoundTrip) {
  const ConfigSpace space = large_space();
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    const Config c = space.random(rng);
    const std::string text = space.describe(c);
    const Config parsed = space.parse(text);
    EXPECT_EQ(parsed, c) << text;
    EXPECT_EQ(parsed.index, c.index);
  }

  const Config c = space.parse(
      "pack=1 tile_k=[8,4,4,4] tile_y=[7,2,2,8] tile_x=[1,1,14,16] tile_c=[4, 8, 8] "
      "tile_f=[4,4,8,8] order=[n0,m0,k0] unroll=8");
  EXPECT_EQ(space.split(c, "tile_y"), (std::vector<int64_t>{7, 2, 2, 8}));
  EXPECT_EQ(space.order(c, "order"), (std::vector<int>{1, 0, 2}));
  EXPECT_EQ(space.value(c, "unroll"), 8);
  EXPECT_EQ(space.value(c, "pack"), 1);
  EXPECT_EQ(space.describe(c),
            "tile_k=[8,4,4,4] tile_y=[7,2,2,8] tile_x=[1,1,14,16] tile_c=[4,8,8] "
            "tile_f=[4,4,8,8] order=[n0,m0,k0] unroll=8 pack=1");
}

// A knob added to a space after configs of it were stored: every stored
// index and every stored text (which does not name it) still means the same
// config, with the new knob's first choice; a text may name it.
TEST(ConfigSpace, AKnobAddedLaterKeepsStoredIndicesAndTexts) {
  const ConfigSpace before = large_space();
  ConfigSpace after = large_space();
  after.add_later_choice("pack_block", {0, 1});
  EXPECT_EQ(after.size(), before.size() * 2);
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    const Config old = before.random(rng);
    const std::string text = before.describe(old);
    const Config same = after.get(old.index);
    EXPECT_EQ(after.describe(same), text);  // the text stored before the knob
    EXPECT_EQ(after.parse(text).index, old.index) << text;
    const Config other = after.parse(text + " pack_block=1");
    EXPECT_EQ(after.value(other, "pack_block"), 1);
    EXPECT_EQ(after.describe(other), text + " pack_block=1");
    EXPECT_EQ(after.parse(text + " pack_block=0").index, old.index);
  }
  // The knobs of the first space may not be left out.
  const std::string text = before.describe(before.get(0));
  EXPECT_THROW(after.parse(text.substr(text.find(' ') + 1)), Error);
}

TEST(ConfigSpace, BadParseNamesTheProblem) {
  const ConfigSpace space = large_space();
  const std::string valid = space.describe(space.get(0));
  auto message = [&](const std::string& text) {
    return error_of([&] { space.parse(text); });
  };
  EXPECT_NE(message(valid + " bogus=1").find("unknown knob 'bogus'"), std::string::npos);
  EXPECT_NE(message(valid.substr(0, valid.find(" pack="))).find("'pack' is missing"),
            std::string::npos);
  const std::string bad_unroll = message(valid.substr(0, valid.find(" unroll=")) + " unroll=3 pack=0");
  EXPECT_NE(bad_unroll.find("'3' is not a choice of knob 'unroll'"), std::string::npos);
  EXPECT_NE(bad_unroll.find("0 1 2 4 8 16"), std::string::npos);
  EXPECT_NE(message("tile_k=[3,3,3,3]").find("not a choice of knob 'tile_k'"), std::string::npos);
  EXPECT_NE(message(valid + " pack=1").find("given twice"), std::string::npos);
  EXPECT_NE(message("tile_k").find("expected name=value"), std::string::npos);
}

TEST(ConfigSpace, AConfigOfAnotherShapeIsResizedByItsOuterFactors) {
  ConfigSpace small, big;
  small.add_split("tile_m", 64, 4);
  small.add_choice("unroll", {0, 1});
  big.add_split("tile_m", 128, 4);
  big.add_choice("unroll", {0, 1});
  const std::string text = small.describe(small.parse("tile_m=[1,4,16,1] unroll=1"));
  std::optional<Config> c = big.parse_resized(text);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(big.describe(*c), "tile_m=[2,4,16,1] unroll=1");
  EXPECT_EQ(big.describe(*big.parse_resized("tile_m=[2,4,16,1] unroll=0")), "tile_m=[2,4,16,1] unroll=0");
  ConfigSpace odd;
  odd.add_split("tile_m", 96, 4);
  odd.add_choice("unroll", {0, 1});
  EXPECT_FALSE(odd.parse_resized("tile_m=[1,4,64,1] unroll=1").has_value());  // 256 rows of threads do not divide 96
  EXPECT_FALSE(big.parse_resized("tile_m=[1,4,16,1] unroll=7").has_value());  // not a choice
  EXPECT_FALSE(big.parse_resized("tile_m=[1,4,16,1]").has_value());           // a knob missing
}

// Found by fuzz/fuzz_config_text (UBSan: signed integer overflow): factors
// from a record whose product overflows int64 are no split of this extent.
TEST(ConfigSpace, AResizedConfigWithFactorsTooLargeToMultiplyIsRefused) {
  ConfigSpace space;
  space.add_split("tile_m", 64, 4);
  space.add_choice("unroll", {0, 1});
  EXPECT_FALSE(space.parse_resized("tile_m=[1,4294967296,4294967296,2] unroll=1").has_value());
  EXPECT_FALSE(space.parse_resized("tile_m=[4,32,222222222222222222,2] unroll=1").has_value());
  EXPECT_FALSE(space.parse_resized("tile_m=[1,-4,-16,1] unroll=1").has_value());
  EXPECT_EQ(space.describe(*space.parse_resized("tile_m=[9,4,16,1] unroll=1")), "tile_m=[1,4,16,1] unroll=1");
}

TEST(ConfigSpace, TypedAccessorsCheckTheKnobKind) {
  const ConfigSpace space = large_space();
  const Config c = space.get(0);
  EXPECT_NE(error_of([&] { space.value(c, "tile_k"); }).find("not a choice knob"),
            std::string::npos);
  EXPECT_NE(error_of([&] { space.split(c, "nope"); }).find("unknown knob 'nope'"),
            std::string::npos);
}

TEST(Target, DetectsThisMachine) {
  const Target t = detect_cpu_target();
  EXPECT_GE(t.cpu.vector_lanes, 4);
  EXPECT_GE(t.cpu.threads, 1);
  EXPECT_EQ(t.cpu.threads, online_cores());
  EXPECT_GT(t.cpu.l1d_bytes, 0);
  EXPECT_EQ(t.device_key().rfind("cpu/", 0), 0u);
  const std::string three = detect_cpu_target(3).device_key();
  EXPECT_EQ(three.substr(three.rfind('/')), "/3t");
  EXPECT_FALSE(t.describe().empty());
}

TEST(Target, ModelSlugDropsTrademarksClockAndCoreCount) {
  EXPECT_EQ(detail::cpu_model_slug("AMD EPYC"), "amd-epyc");
  EXPECT_EQ(detail::cpu_model_slug("AMD EPYC 7B13 64-Core Processor"), "amd-epyc-7b13");
  EXPECT_EQ(detail::cpu_model_slug("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"),
            "intel-xeon-platinum-8375c");
  EXPECT_EQ(detail::cpu_model_slug("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"),
            "intel-core-i7-8700");
  EXPECT_EQ(detail::cpu_model_slug("AMD Ryzen 7 5800H with Radeon Graphics"), "amd-ryzen-7-5800h");
  EXPECT_EQ(detail::cpu_model_slug(""), "generic");
}

}  // namespace
}  // namespace ktune
