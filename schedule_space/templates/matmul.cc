// Packed GEMM templates for CPUs: matmul, dense, batch_matmul and 1x1 conv2d.
//
// The four operators are one computation, C[b, i, j] = sum_k A[b, i, k] *
// B[b, k, j] (+ bias[j]), scheduled the way BLAS libraries do it (GotoBLAS /
// BLIS):
//   - B is packed into panels Bp[panel][k][nr], one per register tile of
//     columns, so the micro-kernel reads one contiguous vector row of nr
//     values per k step. For dense, B is the
//     constant weight Wᵀ and is packed once in Program::prepare (outside the
//     timed region, as a library user pre-packs weights); for matmul and
//     batch_matmul B is an activation, packed inside the timed body into a
//     workspace buffer (knob `pack`, 0 reads B in place; knob `pack_rows`
//     orders that copy by k rows or by panels);
//   - A can be packed too (knob `pack_a`), into row panels Ap[panel][k][mr]
//     inside the timed body: the mr broadcasts of a k step then read one
//     contiguous run instead of mr rows a whole row of A apart (which, for
//     power-of-two k, also alias in the L1 cache);
//   - an mr x nr register tile of accumulators (mr rows unrolled, nr columns
//     as nr/lanes vectors) lives in vector registers for the whole k block:
//     each k step is mr broadcasts of A times nr/lanes vectors of Bp, as
//     fused multiply-adds;
//   - m and n are split exactly into cache blocks (tile_m = [blocks, rows],
//     tile_n = [blocks, columns]); each block is covered by register tiles of
//     knob `mr` rows and `nr` columns, which need not divide the block: the
//     last tile of a block is partial (so the 6x16 kernel of AVX2 is there
//     for a power-of-two m). k is split into three levels (tile_k = [k0, k1,
//     ku]). The block loops m0, n0, k0 run in the order of knob `order`, the
//     tile loops m1, n1 in the order of `inner_order`, and k1 x ku is the
//     micro-kernel's reduction with ku steps unrolled;
//   - a 1x1 conv2d (pad 0, any stride) in NCHW is a batched GEMM per image:
//     out[n][k][p] = sum_c W[k][c] * data[n][c][p'], A = the weight (shared
//     by the batch, packed in prepare when pack_a=1), B = the image's
//     channels x pixels (p' the strided input pixel of output pixel p, so a
//     strided conv must pack B: the gather happens once, in the packing;
//     or, knob `gather`, the strided pixels are first copied row by row into
//     a compact buffer Bs, which is then read in place or packed like the
//     image of a stride-1 conv);
//   - knob `parallel` fuses that many outermost loops of the three block
//     loops and the first tile loop (with the batch loop, when there is one)
//     into one parallel loop (never one over k0, whose iterations accumulate
//     into the same output).
// Partial tiles keep their vector code: packed panels are zero past the end
// of a block, and the write-back of a partial tile is guarded (rows past the
// block are skipped, a partial column tile is written by a scalar loop);
// unpacked A rows past the block read a clamped row, computed and dropped.
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "schedule_space/error.h"
#include "schedule_space/templates/common.h"
#include "schedule_space/templates/templates.h"

namespace ktune {
namespace {

using ir::Buffer;
using ir::Expr;
using ir::LoopKind;
using ir::Stmt;
using templates::LoopNest;
using templates::RegisterTile;
using templates::SplitAxis;

// Largest unrolled reduction step (ku) the space offers, and bound on the
// multiply-adds of one unrolled micro-kernel body (ku * mr * nr/lanes):
// beyond it code size and compile time grow with nothing to gain.
constexpr int64_t kMaxUnrollK = 16;
constexpr int64_t kMaxUnrolledFmas = 256;

// The operator as a (batched) GEMM.
struct Gemm {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool weight_b = false;  // B is a constant weight (dense: W transposed)
  bool bias = false;
  bool batched = false;   // batch_matmul, conv2d: an outer batch loop
  bool weight_a = false;  // A is a constant weight shared by the batch (conv2d)
  // conv2d 1x1 only: output width and strides, to map an output pixel to its
  // input pixel.
  int64_t out_w = 0, stride_h = 1, stride_w = 1;
  bool strided() const { return stride_h != 1 || stride_w != 1; }
};

// Why w is not a 1x1, unpadded, undilated conv2d (the GEMM path), or nullopt.
std::optional<std::string> not_pointwise(const Workload& w) {
  if (w.op() != OpKind::kConv2d) return "not a conv2d";
  const Conv2dShape& s = w.conv2d();
  if (s.r != 1 || s.s != 1 || s.pad_top || s.pad_left || s.pad_bottom || s.pad_right ||
      s.dilation_h != 1 || s.dilation_w != 1) {
    return "the 1x1 conv2d template takes r=s=1, pad=0, dilation=1 only; got " + w.key();
  }
  return std::nullopt;
}

Gemm gemm_of(const Workload& w, OpKind expected) {
  if (w.op() != expected) {
    throw Error("GEMM template for " + std::string(op_name(expected)) + " cannot take workload " +
                w.key());
  }
  Gemm g;
  switch (w.op()) {
    case OpKind::kMatmul:
      g.m = w.matmul().m, g.n = w.matmul().n, g.k = w.matmul().k;
      break;
    case OpKind::kDense:
      g.m = w.dense().batch, g.n = w.dense().out, g.k = w.dense().in;
      g.weight_b = true;
      g.bias = w.dense().bias;
      break;
    case OpKind::kBatchMatmul:
      g.batch = w.batch_matmul().b, g.m = w.batch_matmul().m, g.n = w.batch_matmul().n,
      g.k = w.batch_matmul().k;
      g.batched = true;
      break;
    case OpKind::kConv2d: {
      if (auto why = not_pointwise(w)) throw Error(*why);
      const Conv2dShape& s = w.conv2d();
      g.batch = s.n, g.m = s.k, g.k = s.c, g.n = s.out_h() * s.out_w();
      g.batched = true;
      g.weight_a = true;
      g.out_w = s.out_w(), g.stride_h = s.stride_h, g.stride_w = s.stride_w;
      break;
    }
    default:
      throw Error("GEMM template: unsupported operator " + std::string(op_name(w.op())));
  }
  return g;
}

// Vector width for the n axis: the target's lanes, narrower only when n
// itself is narrower (so a tiny n does not compute mostly padding).
int64_t lanes_for(const Target& t, int64_t n) {
  int64_t w = 1;
  while (w < n && w < t.cpu.vector_lanes) w *= 2;
  return w;
}

// Tile heights worth offering: row count a register tile can have at best
// (one accumulator vector per row, one operand vector, one broadcast).
int64_t max_tile_rows(const Target& t) { return templates::vector_registers(t.cpu) - 2; }

// The m or n axis: split exactly into blocks() cache blocks of `block`
// elements, each covered by tiles() register tiles of `reg` elements, the
// last one partial when reg does not divide block. Packed operands hold one
// panel of `reg` elements per tile, blocks() * tiles() in all.
struct TiledAxis {
  int64_t extent = 0, block = 0, reg = 0;
  int64_t blocks() const { return extent / block; }
  int64_t tiles() const { return templates::ceil_div(block, reg); }
  int64_t panels() const { return blocks() * tiles(); }
  bool partial() const { return block % reg != 0; }
  // Index of the first element of tile `tile` of block `blk`.
  Expr start(Expr blk, Expr tile) const { return blk * block + tile * reg; }
  // Elements of tile `tile` inside its block (may exceed reg), or null when
  // every tile is whole.
  Expr valid(Expr tile) const { return partial() ? ir::int_imm(block) - tile * reg : nullptr; }
  // A packed panel's value v at element `in_block` of its block: zero past
  // the end of the block.
  Expr zero_past_block(Expr in_block, Expr v) const {
    if (!partial()) return v;
    return ir::select(ir::lt(in_block, ir::int_imm(block)), v, ir::float_imm(0));
  }
};

// The loop order of a copy into panels [panel][k][reg] (dimensions off,
// off + 1, off + 2 of the buffer): panel by panel; by_rows, the loop over k
// outside the panels, reading a row-major B row by row while writing every
// panel (knob pack_rows; helps when there are few panels, hurts when many
// write streams compete); reads_along_k, each panel's rows along k (A, dense's
// W[out, in]).
std::vector<size_t> panel_loop_order(size_t off, bool by_rows, bool reads_along_k) {
  if (reads_along_k) return {off, off + 2, off + 1};
  if (by_rows) return {off + 1, off, off + 2};
  return {off, off + 1, off + 2};
}

// A config decoded into the facts instantiate() and check() need.
struct Plan {
  Gemm g;
  int64_t lanes = 0;
  TiledAxis tm, tn;
  SplitAxis tk;
  std::vector<std::string> outer;  // loop names, outermost first (b, then order, then inner_order)
  bool pack = true;    // B in panels
  bool pack_rows = false;  // B packed k row by k row (else panel by panel)
  bool pack_a = false;  // A in row panels
  bool gather = false;  // strided 1x1 conv: its pixels copied into a compact Bs first
  bool pack_block = false;  // one thread: A and B packed block by block, inside the block loops
  int parallel = 0;
  int64_t mr() const { return tm.reg; }
  int64_t nr() const { return tn.reg; }
  int64_t ku() const { return tk.factors.back(); }
};

class GemmTemplate : public Template {
 public:
  GemmTemplate(std::string name, OpKind op) : name_(std::move(name)), op_(op) {}
  std::string name() const override { return name_; }
  // v2: m and n blocks with free register-tile sizes (knobs mr, nr).
  // v3: A and dense weights are packed reading along k (same results, new
  // timings).
  // v4: knob `parallel` counts the loops after the batch loop, which it
  // always fuses in (a batch-1 1x1 conv2d's parallel=2 had been its batch
  // loop and one block loop of extent 1: no threads at all); knob `gather`
  // for strided 1x1 convs.
  int version() const override { return 4; }
  OpKind op() const override { return op_; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    const Gemm g = gemm_of(w, op_);
    const int64_t lanes = lanes_for(t, g.n);
    ConfigSpace s;
    s.add_split("tile_m", g.m, 2);
    std::vector<int64_t> mr;
    for (int64_t rows = 1; rows <= std::min(max_tile_rows(t), g.m); ++rows) mr.push_back(rows);
    s.add_choice("mr", mr);
    s.add_split("tile_n", g.n, 2);
    // Widths up to the register file's limit, but none wider than n needs.
    std::vector<int64_t> nr;
    for (int64_t v = 1; v <= (templates::vector_registers(t.cpu) - 1) / 2 && lanes * (v - 1) < g.n; ++v) {
      nr.push_back(lanes * v);
    }
    s.add_choice("nr", nr);
    s.add_split("tile_k", g.k, 3, {.max_innermost = kMaxUnrollK});
    s.add(ReorderKnob::all_permutations("order", {"m0", "n0", "k0"}));
    s.add_reorder("inner_order", {"m1", "n1"}, {{0, 1}, {1, 0}});
    if (!g.weight_b) {
      s.add_choice("pack", {1, 0});
      s.add_choice("pack_rows", {0, 1});
    }
    s.add_choice("pack_a", {0, 1});
    if (g.strided()) s.add_choice("gather", {1, 0});
    std::vector<int64_t> parallel = {0};
    if (t.cpu.threads > 1) {
      parallel = {0, 1, 2, 3, 4};
    }
    s.add_choice("parallel", parallel);
    // One thread: the operands packed in the timed body (A, and B unless it
    // is dense's weight) packed block by block inside the block loops, into
    // buffers of one block that stay in cache while the other loops reuse
    // them (BLIS), rather than whole before the compute. Added after
    // configs were stored (choice 0 is the whole-operand packing they had).
    if (t.cpu.threads == 1) s.add_later_choice("pack_block", {0, 1});
    return s;
  }

  // The BLIS recipe on this target: register tiles that fill the vector
  // registers (mr rows x nr/lanes vectors, the widest few), a k block whose Bp
  // slice (kc x nr) stays in L1 while the tile loop walks the m tiles of an m
  // block (inner_order n1, m1), an m block whose packed A (mc x kc) stays in
  // L2, blocks in order n0, k0, m0. With threads, the m and n blocks are the
  // parallel loops (order m0, n0, k0, fused), sized so every thread gets
  // several.
  std::vector<Config> seed_configs(const Workload& w, const Target& t,
                                   const ConfigSpace& space) const override {
    const Gemm g = gemm_of(w, op_);
    const int64_t lanes = lanes_for(t, g.n);
    const int regs = templates::vector_registers(t.cpu);
    // (rows, vectors) tiles using the most accumulators, widest first.
    std::vector<std::pair<int64_t, int64_t>> tiles;
    for (int64_t v = (regs - 1) / 2; v >= 1; --v) {
      const int64_t most = std::min<int64_t>((regs - 1 - v) / v, g.m);
      if (most < 1 || (v - 1) * lanes >= g.n) continue;
      // Fewer rows when that pads m less.
      tiles.emplace_back(templates::least_padded(g.m, most, most * 2 / 3 + 1), v);
    }
    std::sort(tiles.begin(), tiles.end(), [](auto a, auto b) {
      return a.first * a.second != b.first * b.second ? a.first * a.second > b.first * b.second
                                                      : a.second > b.second;
    });
    if (tiles.size() > 3) tiles.resize(3);
    const bool threaded = t.cpu.threads > 1;
    templates::SeedList seeds(w, t, space, *this);
    std::vector<std::string> in_place_first, in_order;
    for (const auto& tile : tiles) {
      // Not a structured binding: lambdas below capture v (clang 14 cannot).
      const int64_t mr = tile.first, v = tile.second;
      const int64_t widest = v * lanes;  // the n block below may narrow the tile
      const int64_t ku = std::min<int64_t>(templates::divisor_at_most(g.k, kMaxUnrolledFmas / (mr * v)),
                                           kMaxUnrollK);
      for (int64_t kc_target : {t.cpu.l1d_bytes / 2 / (4 * widest), t.cpu.l1d_bytes / (4 * widest)}) {
        const int64_t kc = templates::divisor_at_most(g.k, std::max(kc_target, ku));
        if (kc % ku != 0) continue;
        const int64_t mc = templates::divisor_at_most(g.m, std::max<int64_t>(t.cpu.l2_bytes / 2 / (4 * kc), mr));
        // n blocks: all of n single-threaded; with threads, enough blocks
        // that m blocks x n blocks keep every thread busy, preferably a
        // count that splits evenly over them (a batch-1 dense is one m
        // block: 5 n blocks on 2 threads is 3 + 2).
        int64_t nc = g.n;
        int parallel = threaded ? 2 : 0;
        if (threaded) {
          const int64_t m_blocks = g.m / mc;
          const int64_t want = std::max<int64_t>(1, 4 * t.cpu.threads / std::max<int64_t>(m_blocks, 1));
          const int64_t target = std::max(widest, templates::round_up(g.n / want, widest));
          nc = templates::divisor_at_most(g.n, target);
          // B read in place needs whole register tiles in a block: where B
          // can be (below), prefer a block some tile width about the widest
          // divides, even at a slightly uneven split (3136 pixels on 2
          // threads: 14 x 224 read in place measured 1.6x faster than 8 x
          // 392 packed; 784 pixels, 7 x 112 in place 1.25x faster than 8 x 98
          // packed).
          const bool in_place = !g.weight_b;
          auto tiles_whole = [&](int64_t d) {
            for (int64_t vv = v; vv > v * 2 / 3; --vv) {
              if (d % (vv * lanes) == 0) return true;
            }
            return false;
          };
          // Share of the threads' time that is work: blocks / (threads x
          // the most blocks one thread gets).
          auto balance = [&](int64_t d) {
            const int64_t blocks = m_blocks * (g.n / d);
            return static_cast<double>(blocks) /
                   static_cast<double>(t.cpu.threads * templates::ceil_div(blocks, t.cpu.threads));
          };
          bool found = false;
          for (int pass = in_place ? 0 : 1; pass < 2 && !found; ++pass) {
            for (int64_t d = std::min(target, g.n); d >= std::max<int64_t>(lanes, target / 4); --d) {
              if (g.n % d != 0) continue;
              if (pass == 0 ? tiles_whole(d) && balance(d) >= 0.85 : balance(d) == 1.0) {
                nc = d;
                found = true;
                break;
              }
            }
          }
          // Blocks that do not split evenly: the parallel loop takes in the
          // tiles of the blocks too (with one k block it can), which split
          // more finely (7 blocks of 7 tiles on 2 threads: 4 + 3 blocks left
          // a thread waiting 12% of the time; 25 + 24 tiles do not).
          if (balance(nc) < 1.0 && g.k == kc) parallel = 4;
        }
        // The tile no wider than the block, and of the width that pads the
        // block least (1000 columns: 8 vectors x 8 tiles, not 15 x 5).
        // (The lower end of the search follows the best so far, so it can
        // walk down several steps: 1024 columns go from 6 vectors to 4.)
        auto n_waste = [&](int64_t vv) { return templates::ceil_div(nc, vv * lanes) * vv * lanes - nc; };
        int64_t v_fit = std::min(v, templates::ceil_div(nc, lanes));
        for (int64_t vv = v_fit; vv > v_fit * 2 / 3; --vv) {
          if (n_waste(vv) < n_waste(v_fit)) v_fit = vv;
        }
        const int64_t nr = v_fit * lanes;
        const std::string tile_k = templates::factors_text({g.k / kc, kc / ku, ku});
        // B read in place (pack=0) where it can be: it saves a copy of B
        // per call when k is short and B's rows are few.
        // A conv2d's weight (A) is packed once, in prepare: always worth it.
        std::vector<std::pair<int, int>> packs = {{1, 1}, {1, 0}};
        if (!g.weight_b && nc % nr == 0) packs.push_back({0, g.weight_a ? 1 : 0});
        if (g.weight_a) packs.erase(packs.begin() + 1);
        // Two activation operands: B read in place with A packed too (m=128,
        // n=768, k=3072, one thread: 6.0-6.2 ms with A packed block by
        // block, against 6.5 for both packed: the copy of all of B per call
        // is 9 MB). A read in place by more than 16 rows at once is left out:
        // that many broadcast streams, rows a multiple of 4 KB apart in that
        // shape, took 25 ms against 7.
        if (!g.weight_a && !g.weight_b) {
          if (nc % nr == 0) packs.insert(packs.begin() + 1, {0, 1});
          if (mr > 16) {
            packs.erase(std::remove_if(packs.begin(), packs.end(), [](auto pk) { return pk.second == 0; }),
                        packs.end());
          }
        }
        for (auto [pack, pack_a] : packs) {
          std::string text = "tile_m=" + templates::factors_text({g.m / mc, mc}) +
                             " mr=" + std::to_string(mr) +
                             " tile_n=" + templates::factors_text({g.n / nc, nc}) +
                             " nr=" + std::to_string(nr) + " tile_k=" + tile_k;
          text += threaded ? " order=[m0,n0,k0]" : " order=[n0,k0,m0]";
          text += " inner_order=[n1,m1]";
          if (!g.weight_b) text += " pack=" + std::to_string(pack) + " pack_rows=0";
          text += " pack_a=" + std::to_string(pack_a);
          // A strided 1x1 conv's pixels gathered first: then B can be read
          // in place, and the packing copies from a compact buffer.
          if (g.strided()) text += " gather=1";
          text += " parallel=" + std::to_string(parallel);
          // One thread, the smaller k block: the same with A and B packed
          // block by block (m=128, n=768, k=3072: 6.6 against 6.9 ms whole;
          // where a whole k fits one block, 1024^3, packing whole is faster).
          const bool block_variant = !threaded && pack_a == 1 && (pack == 1 || !g.weight_a) &&
                                     kc_target == t.cpu.l1d_bytes / 2 / (4 * widest);
          const std::string block = text + " pack_block=1";
          (g.weight_a && pack == 0 ? in_place_first : in_order).push_back(std::move(text));
          if (block_variant) in_order.push_back(block);
        }
      }
    }
    // A 1x1 conv's seeds that read its input in place come first, whatever
    // their tile: of the configs measured both ways in three MobileNetV2 and
    // ResNet-18 runs and the ResNet-18 set, in place was faster in 59 of 66
    // (0.77-0.92x the time on geomean). For a matmul it is a coin toss.
    for (const std::string& text : in_place_first) seeds.add(text);
    for (const std::string& text : in_order) seeds.add(text);
    return seeds.take();
  }

  std::optional<std::string> unsupported(const Workload& w) const override {
    if (w.op() != op_) return name_ + " is for " + std::string(op_name(op_)) + ", not " + w.key();
    if (op_ == OpKind::kConv2d) return not_pointwise(w);
    return std::nullopt;
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = unsupported(w)) return why;
    return validate(decode(w, t, space, c), t);
  }

  ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                          const Config& c) const override {
    const Plan p = decode(w, t, space, c);
    if (auto why = validate(p, t)) {
      throw Error(name_ + ": invalid config " + space.describe(c) + ": " + *why);
    }
    return build(w, t, p);
  }

 private:
  Plan decode(const Workload& w, const Target& t, const ConfigSpace& space, const Config& c) const {
    Plan p;
    p.g = gemm_of(w, op_);
    p.lanes = lanes_for(t, p.g.n);
    p.tm = {p.g.m, space.split(c, "tile_m").at(1), space.value(c, "mr")};
    p.tn = {p.g.n, space.split(c, "tile_n").at(1), space.value(c, "nr")};
    p.tk = {"k", space.split(c, "tile_k")};
    if (p.g.batched) p.outer.push_back("b");
    const std::vector<std::string> order = {"m0", "n0", "k0"};
    for (int i : space.order(c, "order")) p.outer.push_back(order.at(i));
    const std::vector<std::string> inner = {"m1", "n1"};
    for (int i : space.order(c, "inner_order")) p.outer.push_back(inner.at(i));
    p.pack = p.g.weight_b || space.value(c, "pack") != 0;
    p.pack_rows = !p.g.weight_b && space.value(c, "pack_rows") != 0;
    p.pack_a = space.value(c, "pack_a") != 0;
    p.gather = p.g.strided() && space.value(c, "gather") != 0;
    p.parallel = static_cast<int>(space.value(c, "parallel"));
    p.pack_block = t.cpu.threads == 1 && space.value(c, "pack_block") != 0;
    return p;
  }

  std::optional<std::string> validate(const Plan& p, const Target& t) const {
    if (auto why = templates::check_register_tile(t.cpu, p.mr(), p.nr(), p.lanes)) return why;
    if (!p.pack && p.pack_rows) return "pack_rows=1 orders the packing of B, which pack=0 skips";
    if (!p.pack && p.g.strided() && !p.gather) {
      return "pack=0 reads B in place, which a strided 1x1 conv2d cannot (its pixels are not "
             "contiguous); use pack=1 or gather=1";
    }
    if (!p.pack && p.tn.partial()) {
      return "pack=0 reads B in place, which needs nr (" + std::to_string(p.nr()) +
             ") to divide the n block (" + std::to_string(p.tn.block) + ")";
    }
    if (p.pack_block && !(p.pack && !p.g.weight_b) && !(p.pack_a && !p.g.weight_a)) {
      return "pack_block=1 packs the activation operands block by block; this config packs none in the "
             "timed body (pack=0 and pack_a=0, or only weights)";
    }
    const int64_t fmas = p.ku() * p.mr() * (p.nr() / p.lanes);
    if (fmas > kMaxUnrolledFmas) {
      return "unrolled micro-kernel of " + std::to_string(fmas) + " vector multiply-adds exceeds " +
             std::to_string(kMaxUnrolledFmas);
    }
    for (int i = 0; i < p.parallel; ++i) {
      if (p.outer.at(i + (p.g.batched ? 1 : 0)) == "k0" && p.tk.factor(0) > 1) {
        return "parallel=" + std::to_string(p.parallel) +
               " would run k0 (the reduction's outer loop) in parallel; its iterations accumulate into "
               "the same output";
      }
    }
    return std::nullopt;
  }

  ir::Program build(const Workload& w, const Target& t, const Plan& p) const {
    const Gemm& g = p.g;
    ir::Program prog;
    prog.name = name_;
    prog.threads = t.cpu.threads;
    // A conv2d's tensors are viewed as GEMM operands (same memory, row-major):
    // weight [k, c], output [n, k, pixels], data [n, c, pixels] unless strided.
    const std::vector<TensorSpec> inputs = w.inputs();  // conv2d: data, weight
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int64_t> shape = inputs[i].shape;
      if (g.weight_a && i == 1) shape = {shape[0], shape[1]};
      if (g.weight_a && i == 0 && !g.strided()) shape = {shape[0], shape[1], shape[2] * shape[3]};
      prog.params.push_back(ir::make_buffer(inputs[i].name, shape));
    }
    const TensorSpec out = w.output();
    prog.params.push_back(ir::make_buffer(
        out.name, g.weight_a ? std::vector<int64_t>{g.batch, g.m, g.n} : out.shape));
    const Buffer c = prog.params.back();
    const Buffer bias = g.bias ? prog.params[2] : nullptr;

    // Operand access by (batch, row, reduction, column) for each operator's layout.
    // For conv2d, a is the data and b the weight: swap them into GEMM roles.
    const Buffer a = g.weight_a ? prog.params[1] : prog.params[0];
    const Buffer b = g.weight_a ? prog.params[0] : prog.params[1];
    auto load_a = [&](Expr bi, Expr row, Expr kk) {
      if (g.weight_a) return ir::load(a, {row, kk});  // conv2d: W[k, c]
      return g.batched ? ir::load(a, {bi, row, kk}) : ir::load(a, {row, kk});
    };
    // gather: the strided pixels, copied row by row (the x loop innermost,
    // vectorizable) into Bs[batch, c, pixels], which B then is. With
    // threads, split by output rows (channels inside), as the compute's
    // parallel loop mostly splits the pixels: each thread then reads the
    // pixels it gathered itself, not half of them from the other core's
    // cache.
    Buffer bs;
    Stmt gather;
    if (p.gather) {
      bs = ir::make_buffer("Bs", {g.batch, g.k, g.n});
      prog.workspace.push_back(bs);
      LoopNest nest;
      nest.add("g0", g.batch);
      if (p.parallel > 0) nest.add("g2", g.n / g.out_w);
      nest.add("g1", g.k);
      if (p.parallel == 0) nest.add("g2", g.n / g.out_w);
      nest.add("g3", g.out_w);
      if (p.parallel > 0) nest.fuse_parallel(g.batch > 1 ? 1 : 2);
      const Expr y = nest.var("g2"), x = nest.var("g3");
      gather = nest.wrap(ir::store(bs, {nest.var("g0"), nest.var("g1"), y * g.out_w + x},
                                   ir::load(b, {nest.var("g0"), nest.var("g1"), y * g.stride_h,
                                                x * g.stride_w})));
    }
    auto load_b = [&](Expr bi, Expr kk, Expr col) {
      if (g.weight_b) return ir::load(b, {col, kk});  // dense: W[out, in]
      if (p.gather) return ir::load(bs, {bi, kk, col});
      if (g.strided()) {  // conv2d: data[n, c, y * stride_h, x * stride_w]
        const Expr ow = ir::int_imm(g.out_w);
        return ir::load(b, {bi, kk, ir::floordiv(col, ow) * g.stride_h, ir::floormod(col, ow) * g.stride_w});
      }
      return g.batched ? ir::load(b, {bi, kk, col}) : ir::load(b, {kk, col});
    };
    auto c_index = [&](Expr bi, Expr row, Expr col) {
      return g.batched ? std::vector<Expr>{bi, row, col} : std::vector<Expr>{row, col};
    };

    // A packing into panels [..., k, reg]: one in the timed body that reads
    // along k (A's row panels) by vectors of k written transposed where it
    // can (1024^3, one thread: 0.5-1 ms less than element by element, of
    // 22), otherwise element by element in `order`. A packing in prepare
    // (a weight) is not timed: there the transposes would only cost compile
    // time (dense's weight panels of up to 96 columns: 0.15 -> 0.54 s).
    auto pack_fill = [&](const Buffer& packed, const std::string& prefix,
                         const std::function<Expr(const std::vector<Expr>&)>& value, LoopKind kind,
                         const std::vector<size_t>& order, bool reads_along_k) {
      if (reads_along_k && !packed->prepared) {
        if (std::optional<Stmt> s = templates::fill_transposed(packed, prefix, value, kind, p.lanes)) return *s;
      }
      return templates::fill(packed, prefix, value, kind, order);
    };
    // An operand packed in panels [batch][panel][k][reg], one panel per
    // register tile of `axis`, zero past the end of its block: B by columns,
    // A by rows. A prepared (weight) operand is packed once, in prepare, and
    // shared by the batch.
    const LoopKind pack_kind = p.parallel > 0 ? LoopKind::kParallel : LoopKind::kSerial;
    // reads_along_k: the source is contiguous along k (A, dense's W[out, in],
    // a conv2d weight [k, c]), so the copy walks a panel row by row along k
    // and writes with a stride of reg, rather than reading reg rows a whole
    // row apart for every k.
    auto pack_panels = [&](const std::string& name, bool prepared, bool by_rows, bool reads_along_k,
                           const TiledAxis& axis,
                           const std::function<Expr(Expr bi, Expr kk, Expr idx)>& source,
                           Buffer& packed) {
      const bool per_batch = g.batched && !prepared;
      std::vector<int64_t> shape = {axis.panels(), g.k, axis.reg};
      if (per_batch) shape.insert(shape.begin(), g.batch);
      packed = ir::make_buffer(name, shape, ir::Scope::kGlobal, prepared);
      prog.workspace.push_back(packed);
      const size_t off = per_batch ? 1 : 0;
      std::vector<size_t> order = panel_loop_order(off, by_rows, reads_along_k);
      if (per_batch) order.insert(order.begin(), 0);
      auto value = [&](const std::vector<Expr>& i) {
        Expr bi = per_batch ? i[0] : ir::int_imm(0);
        const Expr tiles = ir::int_imm(axis.tiles());
        const Expr in_block = ir::floormod(i[off], tiles) * axis.reg + i[off + 2];
        return axis.zero_past_block(
            in_block, source(bi, i[off + 1], ir::floordiv(i[off], tiles) * axis.block + in_block));
      };
      const LoopKind kind = prepared ? LoopKind::kSerial : pack_kind;
      return pack_fill(packed, "p", value, kind, order, reads_along_k);
    };
    const int64_t nr = p.nr(), mr = p.mr();
    // pack_block: the activation operands are packed one (k block, m or n
    // block) at a time, inside the block loops (below), into buffers of one
    // block; the weights stay packed once, in prepare.
    const bool b_blocks = p.pack_block && p.pack && !g.weight_b;
    const bool a_blocks = p.pack_block && p.pack_a && !g.weight_a;
    Buffer bp, ap;
    const Stmt pack_b = p.pack && !b_blocks ? pack_panels(g.weight_b ? "Wp" : "Bp", g.weight_b, p.pack_rows,
                                                          g.weight_b, p.tn, load_b, bp)
                                            : nullptr;
    const Stmt pack_a =
        p.pack_a && !a_blocks ? pack_panels(g.weight_a ? "Wp" : "Ap", g.weight_a, false, true, p.tm,
                                            [&](Expr bi, Expr kk, Expr row) { return load_a(bi, row, kk); }, ap)
                              : nullptr;

    LoopNest outer;
    for (const std::string& loop : p.outer) {
      if (loop == "b") {
        outer.add("b", g.batch);
      } else {
        const TiledAxis* axis = loop[0] == 'm' ? &p.tm : loop[0] == 'n' ? &p.tn : nullptr;
        if (!axis) outer.add(loop, p.tk.factor(0));  // k0
        else outer.add(loop, loop[1] == '0' ? axis->blocks() : axis->tiles());
      }
    }
    outer.fuse_parallel(p.parallel > 0 ? p.parallel + (g.batched ? 1 : 0) : 0);
    LoopNest reduction;
    reduction.add("k1", p.tk.factor(1));
    reduction.add("k2", p.tk.factor(2), LoopKind::kUnrolled);

    const Expr bi = g.batched ? outer.var("b") : ir::int_imm(0);
    // One block of an operand in panels [tile][k in the block][reg], zero
    // past the end of the block, for the block of loop `block` (m0 or n0)
    // and k0: B read by k rows or by panels (pack_rows), A along k.
    const int64_t kc = p.tk.stride(1);
    auto pack_one_block = [&](const std::string& name, const std::string& prefix, const TiledAxis& axis,
                              const std::string& block, bool by_rows, bool reads_along_k,
                              const std::function<Expr(Expr kk, Expr idx)>& source, Buffer& packed) {
      packed = ir::make_buffer(name, {axis.tiles(), kc, axis.reg});
      prog.workspace.push_back(packed);
      auto value = [&](const std::vector<Expr>& i) {
        const Expr in_block = i[0] * axis.reg + i[2];
        return axis.zero_past_block(
            in_block, source(outer.var("k0") * kc + i[1], outer.var(block) * axis.block + in_block));
      };
      return pack_fill(packed, prefix, value, LoopKind::kSerial, panel_loop_order(0, by_rows, reads_along_k),
                       reads_along_k);
    };
    const Stmt pack_b_block =
        b_blocks ? pack_one_block("Bb", "qb", p.tn, "n0", p.pack_rows, false,
                                  [&](Expr kk, Expr col) { return load_b(bi, kk, col); }, bp)
                 : nullptr;
    const Stmt pack_a_block =
        a_blocks ? pack_one_block("Ab", "qa", p.tm, "m0", false, true,
                                  [&](Expr kk, Expr row) { return load_a(bi, row, kk); }, ap)
                 : nullptr;
    const Expr row0 = p.tm.start(outer.var("m0"), outer.var("m1"));  // first row of the register tile
    const Expr col0 = p.tn.start(outer.var("n0"), outer.var("n1"));  // first column of the register tile
    const Expr panel = outer.var("n0") * p.tn.tiles() + outer.var("n1");
    const Expr kk = outer.var("k0") * p.tk.stride(1) + reduction.var("k1") * p.tk.stride(2) +
                    reduction.var("k2");
    // Rows of a partial tile past its block compute on zeros (packed A) or on
    // a clamped row (unpacked);
    // they are never written.
    const Expr k_in_block = reduction.var("k1") * p.tk.stride(2) + reduction.var("k2");
    auto a_value = [&](Expr row, Expr kk_) {
      if (a_blocks) return ir::load(ap, {outer.var("m1"), k_in_block, row});
      if (p.pack_a) {
        Expr panel_a = outer.var("m0") * p.tm.tiles() + outer.var("m1");
        return ir::load(ap, g.batched && !g.weight_a ? std::vector<Expr>{bi, panel_a, kk_, row}
                                      : std::vector<Expr>{panel_a, kk_, row});
      }
      Expr r = row0 + row;
      return load_a(bi, p.tm.partial() ? ir::min(r, ir::int_imm(g.m - 1)) : r, kk_);
    };

    RegisterTile tile("acc", mr, nr, p.lanes);
    auto product = [&](Expr row, Expr col) {
      Expr bv = b_blocks ? ir::load(bp, {outer.var("n1"), k_in_block, col})
                : p.pack ? ir::load(bp, g.batched ? std::vector<Expr>{bi, panel, kk, col}
                                                : std::vector<Expr>{panel, kk, col})
                       : load_b(bi, kk, col0 + col);
      return a_value(row, kk) * bv;
    };
    // The first k block stores (adding the bias), later ones accumulate.
    auto first_store = [&](Expr row, Expr col, Expr v) {
      if (bias) v = v + ir::load(bias, {col0 + col});
      return ir::store(c, c_index(bi, row0 + row, col0 + col), v);
    };
    auto later_store = [&](Expr row, Expr col, Expr v) {
      return ir::accumulate(c, c_index(bi, row0 + row, col0 + col), v);
    };
    const Expr valid_rows = p.tm.valid(outer.var("m1"));
    const Expr valid_cols = p.tn.valid(outer.var("n1"));
    Stmt write_back = ir::if_then_else(ir::binary(ir::BinaryOp::kEQ, outer.var("k0"), ir::int_imm(0)),
                                       tile.write_back(first_store, valid_rows, valid_cols),
                                       tile.write_back(later_store, valid_rows, valid_cols));
    Stmt compute;
    if (!a_blocks && !b_blocks) {
      compute = outer.wrap(tile.compute(reduction, product, write_back));
    } else {
      // Each block's packing goes just inside the innermost of the loops it
      // depends on (k0 and its m0 or n0): done once per block, reused by the
      // loops inside. One thread, so no loop is parallel.
      auto depth = [&](const std::string& block) {
        size_t d = 0;
        for (size_t i = 0; i < p.outer.size(); ++i) {
          if (p.outer[i] == block || p.outer[i] == "k0") d = i + 1;
        }
        return d;
      };
      const size_t depth_a = depth("m0"), depth_b = depth("n0");
      compute = tile.compute(reduction, product, write_back);
      for (size_t i = p.outer.size(); i-- > 0;) {
        std::vector<Stmt> body;
        if (a_blocks && depth_a == i + 1) body.push_back(pack_a_block);
        if (b_blocks && depth_b == i + 1) body.push_back(pack_b_block);
        body.push_back(compute);
        compute = templates::loop_or_single(p.outer[i], outer.extent(p.outer[i]), LoopKind::kSerial,
                                            [&](Expr) { return ir::seq(body); });
      }
    }
    if (g.weight_b) {
      prog.prepare = pack_b;
      prog.body = ir::seq({pack_a, compute});
    } else if (g.weight_a) {
      prog.prepare = pack_a;
      prog.body = ir::seq({gather, pack_b, compute});
    } else {
      prog.body = ir::seq({pack_a, pack_b, compute});
    }
    return prog;
  }

  std::string name_;
  OpKind op_;
};

}  // namespace

const Template& matmul_cpu_template() {
  static const GemmTemplate t("matmul_cpu_packed", OpKind::kMatmul);
  return t;
}

const Template& dense_cpu_template() {
  static const GemmTemplate t("dense_cpu_packed", OpKind::kDense);
  return t;
}

const Template& conv2d_1x1_cpu_template() {
  static const GemmTemplate t("conv2d_1x1_cpu_gemm", OpKind::kConv2d);
  return t;
}

const Template& batch_matmul_cpu_template() {
  static const GemmTemplate t("batch_matmul_cpu_packed", OpKind::kBatchMatmul);
  return t;
}

}  // namespace ktune
