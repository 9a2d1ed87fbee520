#include "schedule_space/codegen_cpp.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "schedule_space/error.h"
#include "schedule_space/workload.h"
#include "tests/kernel_check.h"

namespace ktune {
namespace {

using namespace ir;  // NOLINT: the tests build IR by hand

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// C[i, j] = A[i, j] * B[j] + A[i, 0]: contiguous loads, a broadcast, a
// contiguous store, in 8-lane vectors over j.
Program vector_program(int64_t width = 8) {
  Buffer a = make_buffer("A", {5, 16}), b = make_buffer("B", {16}), c = make_buffer("C", {5, 16});
  Expr i = var("i"), j = var("jv") * width + var("jl");
  Stmt body = for_loop(
      "i", 5, LoopKind::kSerial,
      for_loop("jv", 16 / width, LoopKind::kUnrolled,
               for_loop("jl", width, LoopKind::kVectorized,
                        store(c, {i, j}, load(a, {i, j}) * load(b, {j}) + load(a, {i, int_imm(0)})))));
  Program p;
  p.name = "vector_program";
  p.params = {a, b, c};
  p.body = body;
  return p;
}

// A small matmul: B transposed into a prepared workspace buffer (prepare),
// a scalar accumulator per output element (stack allocation).
Program transposed_matmul(int64_t m, int64_t n, int64_t k, int threads) {
  Buffer a = make_buffer("A", {m, k}), b = make_buffer("B", {k, n}), c = make_buffer("C", {m, n});
  Buffer bt = make_buffer("Bt", {n, k}, Scope::kGlobal, /*prepared=*/true);
  Buffer acc = make_buffer("acc", {1}, Scope::kStack);
  Expr i = var("i"), j = var("j"), kk = var("kk");
  Program p;
  p.name = "transposed_matmul";
  p.params = {a, b, c};
  p.workspace = {bt};
  p.threads = threads;
  p.prepare = for_loop("j", n, LoopKind::kSerial,
                       for_loop("kk", k, LoopKind::kSerial, store(bt, {j, kk}, load(b, {kk, j}))));
  p.body = for_loop(
      "i", m, LoopKind::kParallel,
      for_loop("j", n, LoopKind::kSerial,
               allocate(acc, seq({store(acc, {int_imm(0)}, float_imm(0)),
                                  for_loop("kk", k, LoopKind::kSerial,
                                           accumulate(acc, {int_imm(0)}, load(a, {i, kk}) * load(bt, {j, kk}))),
                                  store(c, {i, j}, load(acc, {int_imm(0)}))}))));
  return p;
}

TEST(CodegenTest, ExportsTheKernelAbi) {
  const std::string src = emit_cpp(vector_program());
  EXPECT_NE(src.find("extern \"C\" int ktune_abi_version(void)"), std::string::npos);
  EXPECT_NE(src.find("extern \"C\" int64_t ktune_workspace_floats(void)"), std::string::npos);
  EXPECT_NE(src.find("extern \"C\" void ktune_prepare(const float* const* inputs, float* workspace)"),
            std::string::npos);
  EXPECT_NE(src.find("extern \"C\" void ktune_run(const float* const* inputs, float* output, "
                     "float* workspace)"),
            std::string::npos);
  EXPECT_NE(src.find("const float* __restrict A"), std::string::npos) << src;
  EXPECT_NE(src.find("float* __restrict C"), std::string::npos) << src;
}

TEST(CodegenTest, VectorizedLoopBecomesVectorCode) {
  const std::string src = emit_cpp(vector_program());
  EXPECT_NE(src.find("typedef float kt_f32x8 __attribute__((vector_size(32)))"), std::string::npos);
  EXPECT_NE(src.find("kt_store8(&C[i * 16], ((kt_load8(&A[i * 16]) * kt_load8(&B[0])) + kt_splat8(A[i * 16])));"),
            std::string::npos)
      << src;
  EXPECT_EQ(src.find("for (int64_t jl"), std::string::npos) << "the vector loop stayed a loop:\n" << src;
  // Unrolled loops are copied out: two 8-lane stores for 16 columns.
  EXPECT_EQ(count(src, "kt_store8(&C["), 2u) << src;
}

TEST(CodegenTest, RegisterBufferAccessedByVectorsIsAnArrayOfVectors) {
  Buffer a = make_buffer("A", {4, 16}), c = make_buffer("C", {4, 16});
  Buffer acc = make_buffer("acc", {2, 16}, Scope::kRegister);
  Expr r = var("r"), j = var("jv") * 8 + var("jl");
  auto each = [&](Stmt body) {
    return for_loop("r", 2, LoopKind::kUnrolled,
                    for_loop("jv", 2, LoopKind::kUnrolled, for_loop("jl", 8, LoopKind::kVectorized, body)));
  };
  Program p;
  p.name = "register_tile";
  p.params = {a, c};
  p.body = for_loop(
      "i", 2, LoopKind::kSerial,
      allocate(acc, seq({each(store(acc, {r, j}, load(a, {var("i") * 2 + r, j}))),
                         each(accumulate(acc, {r, j}, load(a, {var("i") * 2 + r, j}))),
                         each(store(c, {var("i") * 2 + r, j}, load(acc, {r, j})))})));
  const std::string src = emit_cpp(p);
  EXPECT_NE(src.find("kt_f32x8 acc[4];"), std::string::npos) << src;
  EXPECT_NE(src.find("acc[3] += kt_load8("), std::string::npos) << src;
  std::vector<float> in(64);
  for (size_t x = 0; x < in.size(); ++x) in[x] = static_cast<float>(x);
  std::vector<float> out = testing::run_program(p, {in});
  for (size_t x = 0; x < out.size(); ++x) EXPECT_EQ(out[x], 2 * in[x]) << "element " << x;
}

// A register tile holding channels in its lanes (acc[row, channel], rows
// being output pixels) written to an output whose rows run along pixels
// (out[channel, pixel], NCHW): each width x width block goes through an
// in-register transpose and is stored as row pieces, not lane by lane. The
// output's rows are padded to `stride` floats; the padding must stay
// untouched (NaN), as must everything a partial row piece does not cover.
struct TransposedWriteCase {
  int64_t rows, channels, width, stride;
  bool channels_outer;  // loop order of the write: channels outside pixels, or inside
  bool plain_load;      // false: the written value is acc + 1 (no transpose then)
};

Program transposed_write_program(const TransposedWriteCase& t) {
  Buffer in = make_buffer("In", {t.rows, t.channels}), out = make_buffer("Out", {t.channels, t.stride});
  Buffer acc = make_buffer("acc", {t.rows, t.channels}, Scope::kRegister);
  Expr r = var("r"), ch = var("cv") * t.width + var("cl");
  Stmt fill = for_loop("r", t.rows, LoopKind::kUnrolled,
                       for_loop("cv", t.channels / t.width, LoopKind::kUnrolled,
                                for_loop("cl", t.width, LoopKind::kVectorized, store(acc, {r, ch}, load(in, {r, ch})))));
  Expr value = load(acc, {var("wo"), var("wk")});
  if (!t.plain_load) value = value + float_imm(1);
  Stmt write = store(out, {var("wk"), var("wo")}, value);
  write = t.channels_outer
              ? for_loop("wk", t.channels, LoopKind::kUnrolled, for_loop("wo", t.rows, LoopKind::kUnrolled, write))
              : for_loop("wo", t.rows, LoopKind::kUnrolled, for_loop("wk", t.channels, LoopKind::kUnrolled, write));
  Program p;
  p.name = "transposed_write";
  p.params = {in, out};
  p.body = allocate(acc, seq({fill, write}));
  return p;
}

// Runs a transposed_write_program: every pixel of every channel holds its
// input element (+ 1 unless a plain load), and the row padding stays NaN.
void expect_tile_written(const TransposedWriteCase& t, const Program& p) {
  std::vector<float> in(static_cast<size_t>(t.rows * t.channels));
  for (size_t x = 0; x < in.size(); ++x) in[x] = static_cast<float>(x) + 0.5f;
  const std::vector<float> out = testing::run_program(p, {in});
  for (int64_t c = 0; c < t.channels; ++c) {
    for (int64_t x = 0; x < t.stride; ++x) {
      const float got = out[static_cast<size_t>(c * t.stride + x)];
      if (x < t.rows) {
        EXPECT_EQ(got, in[static_cast<size_t>(x * t.channels + c)] + (t.plain_load ? 0.0f : 1.0f))
            << "channel " << c << ", pixel " << x;
      } else {
        EXPECT_TRUE(std::isnan(got)) << "padding written: channel " << c << ", element " << x;
      }
    }
  }
}

TEST(CodegenTest, RegisterTileWrittenAcrossItsLanesIsTransposedInRegisters) {
  const std::vector<TransposedWriteCase> cases = {
      {14, 32, 16, 16, true, true},   // a conv2d tile: 14 pixels, 32 channels, NCHW rows of 14 + padding
      {5, 16, 8, 7, false, true},     // fewer rows than lanes, pixels outside channels
      {20, 16, 16, 20, true, true},   // more rows than lanes: one transposed block, 4 rows lane by lane
      {28, 16, 16, 30, false, true},  // two transposed blocks of 16 and 12 rows
      {8, 8, 8, 8, true, true},       // whole vector rows
      {7, 32, 16, 7, true, true},     // fewer rows than half the lanes: lane by lane
      {14, 32, 16, 16, true, false},  // not a plain copy of the tile: written lane by lane
  };
  for (const TransposedWriteCase& t : cases) {
    SCOPED_TRACE(::testing::Message() << t.rows << " rows, " << t.channels << " channels, width " << t.width
                                    << (t.channels_outer ? ", channels outer" : ", pixels outer")
                                    << (t.plain_load ? "" : ", acc + 1"));
    const Program p = transposed_write_program(t);
    const std::string src = emit_cpp(p);
    const std::string transpose = "kt_transpose" + std::to_string(t.width) + "(kt_tr";
    // Transposed: each width x width block of at least width/2 rows.
    size_t blocks = 0;
    if (t.plain_load && 2 * t.rows >= t.width) {
      for (int64_t r0 = 0; r0 < t.rows; r0 += t.width) blocks += 2 * std::min(t.width, t.rows - r0) >= t.width;
      blocks *= static_cast<size_t>(t.channels / t.width);
    }
    EXPECT_EQ(count(src, transpose), blocks) << src;
    expect_tile_written(t, p);
  }
}

// A tile too narrow to transpose (fewer pixels than half the lanes) written
// out lane by lane: with more than 64 such stores the tile is copied into a
// float array by whole vectors and written from it by loops unrolled in
// part, not by hundreds of lane extracts (they cost GCC seconds).
TEST(CodegenTest, ANarrowTileWrittenLaneByLaneIsCopiedOutAndWrittenByLoops) {
  struct Case {
    TransposedWriteCase t;
    bool copied;
    std::string loop;  // the loop header the write becomes ("": no loop, written out)
  };
  const std::vector<Case> cases = {
      {{7, 48, 16, 9, true, true}, true, "#pragma GCC unroll 4\n"},     // a depthwise tile, channels outer
      {{7, 48, 16, 9, false, true}, true, "#pragma GCC unroll 16\n"},   // pixels outer: the channel loop
      {{5, 16, 16, 5, true, false}, true, "#pragma GCC unroll 4\n"},    // acc + 1: copied all the same
      {{2, 16, 16, 3, true, true}, false, ""},                           // 32 stores: written out in full
  };
  for (const Case& c : cases) {
    const TransposedWriteCase& t = c.t;
    SCOPED_TRACE(::testing::Message() << t.rows << " rows, " << t.channels << " channels"
                                    << (t.channels_outer ? ", channels outer" : ", pixels outer")
                                    << (t.plain_load ? "" : ", acc + 1"));
    const Program p = transposed_write_program(t);
    const std::string src = emit_cpp(p);
    EXPECT_EQ(count(src, "kt_transpose"), 0u) << src;
    if (c.copied) {
      EXPECT_EQ(count(src, "kt_store16(&kt_lanes0["), static_cast<size_t>(t.rows * t.channels / 16)) << src;
      EXPECT_EQ(count(src, "acc[("), 0u) << "a lane read by a run-time index:\n" << src;
      if (c.loop.empty()) {
        EXPECT_EQ(count(src, "Out["), static_cast<size_t>(t.rows * t.channels)) << src;
      } else {
        EXPECT_NE(src.find(c.loop), std::string::npos) << src;
      }
    } else {
      EXPECT_EQ(count(src, "kt_lanes"), 0u) << src;
      EXPECT_EQ(count(src, "Out["), static_cast<size_t>(t.rows * t.channels)) << src;
    }
    expect_tile_written(t, p);
  }
}

// C[x] = A[x - 1] + A[x + 1] over x < 12, reading zero outside A: vectors of
// 8 lanes over x in two unrolled blocks, the reads and the store guarded by
// conditions on the lane.
Program edge_lanes_program(bool known_per_lane) {
  Buffer a = make_buffer("A", {12}), c = make_buffer("C", {24});
  Expr x = var("b") * 8 + var("j");
  auto read = [&](Expr at) {
    return select(logical_and(le(int_imm(0), at), lt(at, int_imm(12))), load(a, {at}), float_imm(0.0f));
  };
  Stmt body = for_loop("j", 8, LoopKind::kVectorized,
                       if_then_else(lt(x, int_imm(12)), store(c, {x}, read(x + int_imm(-1)) + read(x + 1))));
  Program p;
  p.name = "edge_lanes";
  p.params = {a, c};
  if (known_per_lane) {
    p.body = for_loop("b", 2, LoopKind::kUnrolled, body);
  } else {
    // The block's position is a run-time value: each lane is read on its own
    // (and the store is unguarded: a guard not known per lane cannot be masked).
    body = for_loop("j", 8, LoopKind::kVectorized, store(c, {x}, read(x + int_imm(-1)) + read(x + 1)));
    p.body = for_loop("b", 3, LoopKind::kSerial, body);
  }
  return p;
}

// Reads of a vector that reach past a buffer's edge, in lanes known to be
// outside when the kernel is generated, become masked loads that do not touch
// those lanes' memory (the buffer is placed against a page that may not be
// read, at its start and at its end), and the guarded store a masked store
// that writes nothing past the guard.
TEST(CodegenTest, EdgeLanesKnownWhenGeneratedBecomeMaskedLoadsAndStores) {
  const Program p = edge_lanes_program(true);
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "kt_maskload8(&"), 3u) << src;
  EXPECT_EQ(count(src, "kt_maskstore8(&"), 1u) << src;  // the second block; the first is stored whole

  const long page = sysconf(_SC_PAGESIZE);
  char* mem = static_cast<char*>(mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  ASSERT_EQ(mprotect(mem, page, PROT_NONE), 0);
  ASSERT_EQ(mprotect(mem + 2 * page, page, PROT_NONE), 0);
  // The host's ISA, and on x86 also AVX2 (vmaskmovps) and plain x86-64 (lane by lane).
  std::vector<std::string> isas = {"native"};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back("x86-64-v3");
  isas.push_back("x86-64");
#endif
  for (const std::string& isa : isas) {
    SCOPED_TRACE("-march=" + isa);
    testing::KernelLibrary lib(src, isa);
    for (float* a : {reinterpret_cast<float*>(mem + page), reinterpret_cast<float*>(mem + 2 * page) - 12}) {
      for (int i = 0; i < 12; ++i) a[i] = static_cast<float>(i * i) + 1.0f;
      std::vector<float> out(24, std::nanf(""));
      const float* in[] = {a};
      lib.loaded().prepare(in);
      lib.loaded().run(in, out.data());
      for (int x = 0; x < 24; ++x) {
        if (x < 12) {
          const float want = (x > 0 ? a[x - 1] : 0.0f) + (x < 11 ? a[x + 1] : 0.0f);
          EXPECT_EQ(out[static_cast<size_t>(x)], want) << "element " << x;
        } else {
          EXPECT_TRUE(std::isnan(out[static_cast<size_t>(x)])) << "written past the guard: element " << x;
        }
      }
    }
  }
  munmap(mem, 3 * page);
}

// Where the condition depends on a run-time value the lanes are read one by
// one, each under its own condition: the same answer, no masked load.
TEST(CodegenTest, EdgeLanesKnownOnlyAtRunTimeAreReadLaneByLane) {
  const Program p = edge_lanes_program(false);
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "kt_maskload"), 0u) << src;
  std::vector<float> a(12);
  for (int i = 0; i < 12; ++i) a[static_cast<size_t>(i)] = static_cast<float>(i) - 4.5f;
  const std::vector<float> out = testing::run_program(p, {a});
  for (int x = 0; x < 24; ++x) {
    const float want = (x >= 1 && x <= 12 ? a[static_cast<size_t>(x - 1)] : 0.0f) +
                       (x + 1 < 12 ? a[static_cast<size_t>(x + 1)] : 0.0f);
    EXPECT_EQ(out[static_cast<size_t>(x)], want) << "element " << x;
  }
}

// A read of every other element (a stride-2 window) is two vector loads and
// a shuffle, not one scalar load per lane; the loads stop at the last element
// used: C[j] = A[2 j] + A[2 j + 1] + A[2 j + 2] over 8 lanes, with A of 17
// elements against a page that may not be read.
TEST(CodegenTest, StrideTwoReadsAreTwoVectorLoadsThatStopAtTheLastElementUsed) {
  Buffer a = make_buffer("A", {17}), c = make_buffer("C", {8});
  Expr j = var("j");
  Program p;
  p.name = "stride_two";
  p.params = {a, c};
  p.body = for_loop("j", 8, LoopKind::kVectorized,
                    store(c, {j}, load(a, {j * 2}) + load(a, {j * 2 + 1}) + load(a, {j * 2 + 2})));
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "kt_evens8(kt_maskload8"), 2u) << src;  // A[2j] and A[2j + 2]
  EXPECT_EQ(count(src, "kt_odds8(kt_maskload8(&A[0]"), 1u) << src;  // A[2j + 1]: odd elements of the vectors at A[0]
  const long page = sysconf(_SC_PAGESIZE);
  char* mem = static_cast<char*>(mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  ASSERT_EQ(mprotect(mem + page, page, PROT_NONE), 0);
  float* in = reinterpret_cast<float*>(mem + page) - 17;
  for (int i = 0; i < 17; ++i) in[i] = static_cast<float>(i * 3 % 7) - 2.0f;
  testing::KernelLibrary lib(src);
  std::vector<float> out(8, std::nanf(""));
  const float* inputs[] = {in};
  lib.loaded().prepare(inputs);
  lib.loaded().run(inputs, out.data());
  for (int x = 0; x < 8; ++x) EXPECT_EQ(out[static_cast<size_t>(x)], in[2 * x] + in[2 * x + 1] + in[2 * x + 2]) << x;
  munmap(mem, 2 * page);
}

// Runs the one-row stride-2 window program p (taps reading columns 2j + s -
// pad for s < taps, weighted by 2^s, zero outside the row of `width`
// elements) with the row placed against an unreadable page on either side,
// so that any read outside the row crashes, and checks all 16 outputs.
void expect_window_row_right(const Program& p, int width, int taps, int pad) {
  const std::string src = emit_cpp(p);
  const long page = sysconf(_SC_PAGESIZE);
  for (bool at_start : {false, true}) {
    char* mem = static_cast<char*>(mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem, MAP_FAILED);
    ASSERT_EQ(mprotect(mem, page, PROT_NONE), 0);
    ASSERT_EQ(mprotect(mem + 2 * page, page, PROT_NONE), 0);
    float* in = at_start ? reinterpret_cast<float*>(mem + page) : reinterpret_cast<float*>(mem + 2 * page) - width;
    for (int i = 0; i < width; ++i) in[i] = static_cast<float>(i * 5 % 11) - 3.0f;
    testing::KernelLibrary lib(src);
    std::vector<float> out(16, std::nanf(""));
    const float* inputs[] = {in};
    lib.loaded().prepare(inputs);
    lib.loaded().run(inputs, out.data());
    auto at = [&](int x) { return x >= 0 && x < width ? in[x] : 0.0f; };
    for (int x = 0; x < 16; ++x) {
      float want = 0.0f;
      for (int s = 0; s < taps; ++s) want += at(2 * x + s - pad) * static_cast<float>(1 << s);
      EXPECT_EQ(out[static_cast<size_t>(x)], want)
          << "lane " << x << (at_start ? " (row at a page's start)" : " (row at a page's end)");
    }
    munmap(mem, 3 * page);
  }
}

// The one-row window: C[j] = sum over s of 2^s * A[2j + s - pad] (0 outside
// the row), j vectorized by 16.
Program window_row(int width, int taps, int pad) {
  Buffer a = make_buffer("A", {width}), c = make_buffer("C", {16});
  Expr j = var("j");
  Expr sum;
  for (int s = 0; s < taps; ++s) {
    const Expr col = j * 2 + (s - pad);
    Expr tap = select(logical_and(le(int_imm(0), col), lt(col, int_imm(width))), load(a, {col}), float_imm(0.0f));
    tap = tap * float_imm(static_cast<float>(1 << s));
    sum = sum ? sum + tap : tap;
  }
  Program p;
  p.name = "window_stride_two";
  p.params = {a, c};
  p.body = for_loop("j", 16, LoopKind::kVectorized, store(c, {j}, sum));
  return p;
}

// A 3x3 stride-2 window over a row, padded by one on each side (the taps
// read columns 2j - 1, 2j and 2j + 1, zero outside the row): the middle and
// right taps pick the even and odd elements of one pair of vectors, loaded
// once, and the left tap is the right tap's pick shifted one lane, not a
// third pair of loads. Nothing outside the row is read: the row of 31
// elements is placed against an unreadable page on either side.
TEST(CodegenTest, AStrideTwoWindowsTapsShareOnePairOfLoads) {
  const Program p = window_row(31, 3, 1);
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "= kt_zero16(kt_alignr16(kt_v"), 1u) << src;  // the left tap
  EXPECT_EQ(count(src, "= kt_odds16(kt_load16(&A[0])"), 1u) << src;  // the right tap's pick, shared with the left tap
  EXPECT_EQ(count(src, "= kt_evens16(kt_load16(&A[0])"), 1u) << src;  // the middle tap
  expect_window_row_right(p, 31, 3, 1);
}

// A 5x5 stride-2 window (padded by two: columns 2j - 2 .. 2j + 2): all five
// taps come from the middle pair of vectors, loaded once: its even pick
// (taps 2j, and 2j - 2 and 2j + 2 shifted one lane either way) and its odd
// pick (2j + 1, and 2j - 1 shifted), instead of three pairs of loads.
TEST(CodegenTest, AFiveWideStrideTwoWindowReadsOnePairOfVectors) {
  const Program p = window_row(31, 5, 2);
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "= kt_evens16(kt_load16(&A[0])"), 1u) << src;
  EXPECT_EQ(count(src, "= kt_odds16(kt_load16(&A[0])"), 1u) << src;
  EXPECT_EQ(count(src, "= kt_evens16("), 1u) << src;  // no other pair
  EXPECT_EQ(count(src, "= kt_odds16("), 1u) << src;
  EXPECT_EQ(count(src, "= kt_zero16(kt_alignr16("), 3u) << src;  // taps 2j - 2, 2j - 1, 2j + 2
  expect_window_row_right(p, 31, 5, 2);
}

// Conditions that the loops' bounds decide are not tested at run time: the
// tile rows that never reach the edge lose their test, the others keep it.
TEST(CodegenTest, ConditionsTheLoopBoundsDecideAreFoldedAway) {
  Buffer a = make_buffer("A", {10}), c = make_buffer("C", {10});
  Expr i = var("i");
  Program p;
  p.name = "bounds";
  p.params = {a, c};
  // i in [0, 5): 2i + 1 < 10 always holds; 2i + 2 < 10 does not for i = 4.
  p.body = for_loop("i", 5, LoopKind::kSerial,
                    seq({if_then_else(lt(i * 2 + 1, int_imm(10)), store(c, {i * 2 + 1}, load(a, {i * 2 + 1}))),
                         if_then_else(logical_and(le(int_imm(0), i), lt(i * 2 + 2, int_imm(10))),
                                      store(c, {i * 2}, load(a, {i * 2 + 2})), store(c, {i * 2}, float_imm(-1.0f)))}));
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "if ("), 1u) << src;
  EXPECT_EQ(count(src, "0 <="), 0u) << src;
  std::vector<float> in(10);
  for (int x = 0; x < 10; ++x) in[static_cast<size_t>(x)] = static_cast<float>(x) + 0.25f;
  const std::vector<float> out = testing::run_program(p, {in});
  for (int x = 0; x < 10; ++x) {
    const float want = x % 2 ? in[static_cast<size_t>(x)] : (x + 2 < 10 ? in[static_cast<size_t>(x + 2)] : -1.0f);
    EXPECT_EQ(out[static_cast<size_t>(x)], want) << x;
  }
}

TEST(CodegenTest, NonContiguousVectorStoreIsAnError) {
  Buffer a = make_buffer("A", {16}), c = make_buffer("C", {16});
  Program p;
  p.name = "strided_store";
  p.params = {a, c};
  p.body = for_loop("j", 8, LoopKind::kVectorized, store(c, {var("j") * 2}, load(a, {var("j")})));
  try {
    emit_cpp(p);
    FAIL() << "a strided vector store was emitted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not contiguous"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'C'"), std::string::npos) << e.what();
  }
}

TEST(CodegenTest, InvalidVectorizationAndWritesAreRejected) {
  Buffer a = make_buffer("A", {12}), c = make_buffer("C", {12});
  auto program = [&](Stmt body) {
    Program p;
    p.name = "bad";
    p.params = {a, c};
    p.body = body;
    return p;
  };
  Expr j = var("j");
  // Vector widths are powers of two.
  EXPECT_THROW(emit_cpp(program(for_loop("j", 6, LoopKind::kVectorized, store(c, {j}, load(a, {j}))))), Error);
  // A guard that depends on the lane can wrap a vector store only where it
  // is known per lane when emitted (here it depends on a serial loop's i).
  EXPECT_THROW(emit_cpp(program(for_loop(
                   "i", 3, LoopKind::kSerial,
                   for_loop("j", 4, LoopKind::kVectorized,
                            if_then_else(lt(j, var("i")), store(c, {j}, load(a, {j}))))))),
               Error);
  // The body may not write an input.
  EXPECT_THROW(emit_cpp(program(for_loop("j", 12, LoopKind::kSerial, store(a, {j}, float_imm(0))))), Error);
  // GPU-bound loops have no CPU meaning.
  EXPECT_THROW(emit_cpp(program(for_loop("j", 12, LoopKind::kThreadX, store(c, {j}, float_imm(0))))), Error);
  // Variables must be defined by an enclosing loop.
  EXPECT_THROW(emit_cpp(program(store(c, {var("q")}, float_imm(0)))), Error);
  // Buffer names become C identifiers.
  Program p = program(for_loop("j", 12, LoopKind::kSerial, store(c, {j}, float_imm(0))));
  p.params[0] = make_buffer("my-input", {12});
  EXPECT_THROW(emit_cpp(p), Error);
}

TEST(CodegenTest, PrepareMayOnlyWritePreparedWorkspace) {
  Program p = transposed_matmul(3, 4, 5, 1);
  p.workspace = {make_buffer("Bt", {4, 5}, Scope::kGlobal, /*prepared=*/false)};
  EXPECT_THROW(emit_cpp(p), Error);
}

TEST(CodegenTest, OnlyTheOutermostParallelLoopGetsThePragma) {
  Program p = transposed_matmul(6, 4, 3, 4);
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "#pragma omp parallel for num_threads(4) schedule(static)"), 1u) << src;
  p.threads = 1;
  EXPECT_EQ(count(emit_cpp(p), "#pragma omp"), 0u) << "one thread needs no OpenMP";
}

// Two parallel loops one after the other, the second reading what other
// threads wrote in the first (a transpose into a workspace buffer, then the
// matmul from it): one OpenMP region with a barrier between the loops.
TEST(CodegenTest, ConsecutiveParallelLoopsShareOneRegionAndItsBarrier) {
  const int64_t m = 7, n = 5, k = 9;
  Program p = transposed_matmul(m, n, k, 3);
  Buffer b = p.params[1], bt = make_buffer("Bt2", {n, k});
  Buffer acc = make_buffer("acc", {1}, Scope::kStack);
  Expr i = var("i"), j = var("j"), kk = var("kk");
  p.workspace.push_back(bt);
  Stmt transpose = for_loop("tj", n, LoopKind::kParallel,
                            for_loop("tk", k, LoopKind::kSerial,
                                     store(bt, {var("tj"), var("tk")}, load(b, {var("tk"), var("tj")}))));
  Stmt matmul = for_loop(
      "i", m, LoopKind::kParallel,
      for_loop("j", n, LoopKind::kSerial,
               allocate(acc, seq({store(acc, {int_imm(0)}, float_imm(0)),
                                  for_loop("kk", k, LoopKind::kSerial,
                                           accumulate(acc, {int_imm(0)}, load(p.params[0], {i, kk}) * load(bt, {j, kk}))),
                                  store(p.params[2], {i, j}, load(acc, {int_imm(0)}))}))));
  p.body = seq({transpose, matmul});
  const std::string src = emit_cpp(p);
  EXPECT_EQ(count(src, "#pragma omp parallel num_threads(3)"), 1u) << src;
  EXPECT_EQ(count(src, "#pragma omp for schedule(static)"), 2u) << src;
  EXPECT_EQ(count(src, "parallel for"), 0u) << src;
  const Workload w(MatmulShape{m, n, k});
  const auto inputs = testing::random_inputs(w);
  const std::vector<float> got = testing::run_program(p, inputs);
  EXPECT_LT(testing::max_relative_error(got, testing::reference_output(w, inputs)), 1e-5);
}

TEST(CodegenTest, CompiledMatmulWithPrepareMatchesReference) {
  const Workload w(MatmulShape{7, 5, 9});
  for (int threads : {1, 3}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    const auto inputs = testing::random_inputs(w);
    const std::vector<float> got = testing::run_program(transposed_matmul(7, 5, 9, threads), inputs);
    EXPECT_LT(testing::max_relative_error(got, testing::reference_output(w, inputs)), 1e-5);
  }
}

// A threaded kernel loads the compiler's OpenMP runtime; unloading the
// kernel must not unload it (under clang, where ktune links LLVM's runtime,
// it would be initialised again at every load and its initial state leaked:
// LeakSanitizer's report on scripts/sanitize.sh asan).
TEST(CodegenTest, UnloadingAThreadedKernelKeepsItsOpenMpRuntime) {
  const Workload w(MatmulShape{7, 5, 9});
  const auto inputs = testing::random_inputs(w);
  for (int load = 0; load < 2; ++load) {
    const std::vector<float> got = testing::run_program(transposed_matmul(7, 5, 9, 3), inputs);
    EXPECT_LT(testing::max_relative_error(got, testing::reference_output(w, inputs)), 1e-5);
    void* gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    EXPECT_NE(gomp, nullptr) << "libgomp was unloaded with the kernel (load " << load << ")";
    if (gomp) dlclose(gomp);
  }
}

TEST(CodegenTest, CompiledVectorCodeComputesLaneByLane) {
  std::vector<float> a(80), b(16);
  for (size_t x = 0; x < a.size(); ++x) a[x] = 0.5f * static_cast<float>(x);
  for (size_t x = 0; x < b.size(); ++x) b[x] = 1.0f - static_cast<float>(x);
  for (int64_t width : {4, 8, 16}) {
    const std::vector<float> c = testing::run_program(vector_program(width), {a, b});
    for (size_t i = 0; i < 5; ++i) {
      for (size_t j = 0; j < 16; ++j) {
        EXPECT_EQ(c[i * 16 + j], a[i * 16 + j] * b[j] + a[i * 16]) << "width " << width << " at " << i << "," << j;
      }
    }
  }
}

// A transposed copy with padding: gathers (stride 4 in the lane), a select
// on the lane (per-lane, so the padded lanes never load), and a select on a
// scalar condition.
TEST(CodegenTest, GathersAndSelectsHandlePadding) {
  Buffer a = make_buffer("A", {4, 3}), c = make_buffer("C", {4, 4});
  Expr i = var("i"), j = var("j");
  Expr in_range = lt(j, int_imm(3));
  Expr value = select(in_range, load(a, {min(j, int_imm(2)), i}), float_imm(-1));
  value = select(lt(i, int_imm(3)), value, float_imm(7));
  Program p;
  p.name = "padded_transpose";
  p.params = {a, c};
  p.body = for_loop("i", 4, LoopKind::kSerial, for_loop("j", 4, LoopKind::kVectorized, store(c, {i, j}, value)));
  std::vector<float> in(12);
  for (size_t x = 0; x < in.size(); ++x) in[x] = static_cast<float>(x);
  const std::vector<float> out = testing::run_program(p, {in});
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t s = 0; s < 4; ++s) {
      const float want = r >= 3 ? 7.0f : s < 3 ? in[s * 3 + r] : -1.0f;
      EXPECT_EQ(out[r * 4 + s], want) << r << "," << s;
    }
  }
}

TEST(CodegenTest, FloorDivisionAndModuloOfNegativeIndices) {
  Buffer a = make_buffer("A", {4}), c = make_buffer("C", {8});
  Expr i = var("i");
  Program p;
  p.name = "wrap_around";
  p.params = {a, c};
  // C[i] = A[(i - 2) mod 4]: the index is negative for i < 2.
  p.body = for_loop("i", 8, LoopKind::kSerial,
                    store(c, {i}, load(a, {floormod(i - int_imm(2), int_imm(4))})));
  const std::vector<float> out = testing::run_program(p, {{10, 11, 12, 13}});
  EXPECT_EQ(out, (std::vector<float>{12, 13, 10, 11, 12, 13, 10, 11}));
}

TEST(CodegenTest, WorkspaceBuffersAre64ByteAligned) {
  Buffer a = make_buffer("A", {4}), c = make_buffer("C", {4});
  Buffer w1 = make_buffer("w1", {5}), w2 = make_buffer("w2", {3});
  Program p;
  p.name = "workspace_layout";
  p.params = {a, c};
  p.workspace = {w1, w2};
  Expr i = var("i");
  p.body = seq({for_loop("i", 4, LoopKind::kSerial, store(w2, {min(i, int_imm(2))}, load(a, {i}))),
                for_loop("i", 4, LoopKind::kSerial, store(c, {i}, load(w2, {min(i, int_imm(2))})))});
  const std::string src = emit_cpp(p);
  EXPECT_NE(src.find("workspace + 16"), std::string::npos) << src;
  testing::KernelLibrary lib(src);
  EXPECT_EQ(lib.abi_version(), kKernelAbiVersion);
  EXPECT_EQ(lib.workspace_floats(), 32);
  EXPECT_EQ(testing::run_program(p, {{1, 2, 3, 4}}), (std::vector<float>{1, 2, 4, 4}));
}

TEST(CodegenTest, LongUnrolledLoopsUseThePragma) {
  Buffer a = make_buffer("A", {32}), c = make_buffer("C", {32});
  Program p;
  p.name = "long_unroll";
  p.params = {a, c};
  p.body = for_loop("i", 32, LoopKind::kUnrolled, store(c, {var("i")}, load(a, {var("i")})));
  EXPECT_NE(emit_cpp(p).find("#pragma GCC unroll 32"), std::string::npos);
  p.body = for_loop("i", 3, LoopKind::kUnrolled, store(c, {var("i")}, load(a, {var("i")})));
  const std::string src = emit_cpp(p);
  EXPECT_EQ(src.find("for (int64_t i"), std::string::npos) << src;
  EXPECT_NE(src.find("C[2] = A[2];"), std::string::npos) << src;
}

}  // namespace
}  // namespace ktune
