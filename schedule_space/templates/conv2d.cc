// Direct convolution templates for CPUs: conv2d and depthwise conv2d computed
// in a channel-blocked layout (NCHW[x]c) out of register tiles.
//
// The idea (as in TVM's conv2d_NCHWc and oneDNN's direct convolution):
//   - constant weights are packed once, in Program::prepare, into blocks
//     whose innermost dimension is the output-channel block kb, so the inner
//     loop reads one contiguous vector of weights per (c, r, s);
//   - the input is packed inside the timed body into [n][c/cb][hp][wp][cb]
//     with the padding materialized as zeros, so the inner loops need no
//     bounds checks;
//   - each output tile of ow_reg output columns x kb output channels lives in
//     a register-scope accumulator (ow_reg * kb/vec explicit vectors) for the
//     whole reduction over input channels and the kernel window, then is
//     written once to the NCHW output;
//   - ow_reg need not divide the output width: the packed input is wide
//     enough for whole tiles (its extra columns are zeros) and the last tile
//     writes only its valid columns, so the best register tile (e.g. 3
//     columns x 4 vectors on AVX2) is reachable for every width.
// Depthwise runs the same nest with no input-channel reduction: its data is
// packed per *output* channel (input channel k / multiplier), which makes a
// channel multiplier > 1 the same computation as multiplier 1.
#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
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

// Accumulators a register tile may hold: up to half again as many as there
// are vector registers. Past the register file the compiler keeps the rest in
// L1 and folds their loads into the multiply-adds, which can still pay when
// it buys broadcast reuse; whether it does is the tuner's call. Beyond this
// bound spills dominate.
int64_t max_accumulators(const Target& t) { return templates::vector_registers(t.cpu) * 3 / 2; }

// Bound on the multiply-adds of one fully unrolled reduction body: beyond it
// code size (and compile time) grow with no speed to gain.
constexpr int64_t kMaxUnrolledFmas = 1024;

// ---- knobs shared by both templates ----

// The tile loops around each register tile, reordered by the "order" knob:
// output-channel blocks (k0), rows in two levels, columns in two levels (the
// third column level is the register tile itself).
const std::vector<std::string> kTileLoops = {"k0", "oh0", "oh1", "ow0", "ow1"};

// All orders of kTileLoops that keep each outer level before its inner one.
std::vector<std::vector<int>> tile_loop_orders() {
  std::vector<int> perm(kTileLoops.size());
  std::iota(perm.begin(), perm.end(), 0);
  auto pos = [&](int loop) { return std::find(perm.begin(), perm.end(), loop) - perm.begin(); };
  std::vector<std::vector<int>> orders;
  do {
    if (pos(1) < pos(2) && pos(3) < pos(4)) orders.push_back(perm);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return orders;
}

// Register tiles per ow1 block offered by the "ow_block" knob.
const std::vector<int64_t> kOwBlocks = {1, 2, 4, 8};

// The output tiling knobs every direct conv template has. `channel_knob`
// splits the output channels into [blocks, kb]; kb is the vectorized block.
// "tile_ow" is the register tile's output columns (any count up to the
// output width and the register file, divisor or not); "ow_block" groups
// up to that many register tiles into one ow1 block (the ow0 loop runs over
// the groups, a partial last group skips the tiles past the edge).
void add_output_knobs(ConfigSpace& space, const Conv2dShape& s, const Target& t,
                      const std::string& channel_knob) {
  // Blocks of more than half the register file in vectors leave room for
  // at most one or two columns, and tiles of more columns than half the
  // register file are a single vector wide (one broadcast per multiply-add):
  // never the fast tiles, so not offered.
  const int registers = templates::vector_registers(t.cpu);
  space.add_split(channel_knob, s.k, 2,
                  SplitPolicy{.max_innermost = std::max(1, t.cpu.vector_lanes) * registers / 2,
                              .innermost_multiple_of = t.cpu.vector_lanes});
  space.add_split("tile_oh", s.out_h(), 2);
  std::vector<int64_t> columns;
  for (int64_t c = 1; c <= std::min<int64_t>(s.out_w(), registers / 2); ++c) columns.push_back(c);
  space.add_choice("tile_ow", columns);
  space.add_choice("ow_block", kOwBlocks);
  space.add_reorder("order", kTileLoops, tile_loop_orders());
}

// How the multiply-adds of one reduction step are emitted: column by column
// (each broadcast input feeds all channel vectors of its column) or vector
// by vector (each weight vector feeds all columns). The code is the same
// arithmetic; which order a compiler allocates registers for without spills
// differs between compilers and tile shapes, so it is the tuner's call.
enum FmaOrder : int64_t { kColumnsOuter = 0, kVectorsOuter = 1 };

// Added last: unroll depth of the reduction, emission order, then parallelism.
void add_loop_kind_knobs(ConfigSpace& space, const Target& t, int reduction_loops) {
  std::vector<int64_t> unroll(reduction_loops + 1);
  std::iota(unroll.begin(), unroll.end(), 0);
  space.add_choice("unroll", unroll);
  space.add_choice("fma_order", {kColumnsOuter, kVectorsOuter});
  // How many of the outermost tile loops are fused with the batch loop into
  // the parallel loop (0: serial). Pointless on one thread: not offered there.
  space.add_choice("parallel", t.cpu.threads > 1 ? std::vector<int64_t>{0, 1, 2, 3}
                                                 : std::vector<int64_t>{0});
}

// A config of either template, decoded.
struct DirectConvSchedule {
  SplitAxis k, oh;        // k: [blocks, kb]; oh: [oh0, oh1]
  int64_t ow_reg = 1;      // output columns of a register tile (rows of the tile)
  int64_t ow_block = 1;    // register tiles per ow1 block
  int64_t out_w = 1;       // the output width
  int64_t vec = 1;         // vector width the kb block is computed in (1: scalar)
  std::vector<int> order;  // of kTileLoops
  int64_t unroll = 0;      // innermost reduction loops unrolled
  int64_t fma_order = kColumnsOuter;
  int64_t parallel = 0;

  int64_t kb() const { return k.factor(1); }
  int64_t accumulators() const { return ow_reg * (kb() / vec); }
  // Register tiles across the output width (the last may be partial) and
  // the width they cover.
  int64_t ow_tiles() const { return templates::ceil_div(out_w, ow_reg); }
  int64_t padded_w() const { return ow_tiles() * ow_reg; }
  int64_t ow_groups() const { return templates::ceil_div(ow_tiles(), ow_block); }
  // The extent of tile loop `loop` (one of kTileLoops).
  int64_t tile_loop_extent(const std::string& loop) const {
    if (loop == "k0") return k.factor(0);
    if (loop == "oh0") return oh.factor(0);
    if (loop == "oh1") return oh.factor(1);
    if (loop == "ow0") return ow_groups();
    return ow_block;  // ow1
  }
};

DirectConvSchedule decode(const ConfigSpace& space, const Config& c, const Target& t,
                          const Conv2dShape& s, const std::string& channel_knob) {
  DirectConvSchedule d;
  d.k = {"k", space.split(c, channel_knob)};
  d.oh = {"oh", space.split(c, "tile_oh")};
  d.ow_reg = space.value(c, "tile_ow");
  d.out_w = s.out_w();
  // A group never holds more tiles than the row has (larger blocks are
  // the whole row, so they stay valid configs).
  d.ow_block = std::min(space.value(c, "ow_block"), d.ow_tiles());
  d.vec = templates::vector_width_choices(t.cpu, d.kb()).front();
  d.order = space.order(c, "order");
  d.unroll = space.value(c, "unroll");
  d.fma_order = space.value(c, "fma_order");
  d.parallel = space.value(c, "parallel");
  return d;
}

// `unrolled_extent`: product of the extents of the unrolled reduction loops.
std::optional<std::string> check_schedule(const DirectConvSchedule& d, const Target& t,
                                          int64_t unrolled_extent) {
  if (d.accumulators() > max_accumulators(t)) {
    return "register tile of " + std::to_string(d.ow_reg) + " output columns x " +
           std::to_string(d.kb()) + " channels needs " + std::to_string(d.accumulators()) +
           " accumulators of " + std::to_string(d.vec) + " lanes; at most " +
           std::to_string(max_accumulators(t)) + " are allowed on " + t.cpu.isa;
  }
  const int64_t fmas = unrolled_extent * d.accumulators();
  if (fmas > kMaxUnrolledFmas) {
    return "unrolling " + std::to_string(d.unroll) + " reduction loop(s) emits " +
           std::to_string(fmas) + " vector multiply-adds; at most " +
           std::to_string(kMaxUnrolledFmas) + " are allowed";
  }
  return std::nullopt;
}


// ---- seeds (Template::seed_configs) ----

// Register tiles worth seeding for a direct conv on this target: (output
// columns, channel block) pairs, the block a whole number of vectors, that
// use most of the vector registers (columns x vectors accumulators + the
// vectors' weights + one broadcast),
// with the column count moved to the value that wastes the fewest padded
// columns of the output width. Widest tiles by accumulators first; at most
// `count`.
std::vector<std::pair<int64_t, int64_t>> seed_tiles(const Target& t, int64_t out_w, int64_t channels,
                                                    size_t count) {
  const int regs = templates::vector_registers(t.cpu);
  const int64_t lanes = std::max(1, t.cpu.vector_lanes);
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t v : {2, 4, 1, 3}) {
    if (channels % (v * lanes) != 0) continue;
    const int64_t most = std::min<int64_t>((regs - 1 - v) / v, std::min<int64_t>(out_w, regs / 2));
    if (most < 1) continue;
    tiles.emplace_back(templates::least_padded(out_w, most, most / 2 + 1), v * lanes);
  }
  // Largest first, counting only the columns that do work: on a 7-wide
  // output a 4-column tile computes 8 (and its last tile takes the remainder
  // path), so 4 columns x 4 vectors does no more than 7 x 2. Of the 7x7
  // layers of ResNet-18 and MobileNetV2 tuned as models (2 threads), every
  // winner had the whole row as its tile; MobileNetV2's 960->320 1x1 ran
  // 1.68x faster with 7 x 2 than with 4 x 4.
  // At equal work, the tile that divides the row: no remainder path, and
  // unblocked channels then read the input in place.
  auto useful = [&](std::pair<int64_t, int64_t> tile) {
    return tile.second * out_w / templates::ceil_div(out_w, tile.first);
  };
  auto padded = [&](std::pair<int64_t, int64_t> tile) { return templates::round_up(out_w, tile.first) - out_w; };
  std::stable_sort(tiles.begin(), tiles.end(), [&](auto a, auto b) {
    return useful(a) != useful(b) ? useful(a) > useful(b) : padded(a) < padded(b);
  });
  if (tiles.size() > count) tiles.resize(count);
  // Channels that no whole vector divides: one block of the largest divisor
  // narrower than a vector, as wide a tile as the registers allow.
  if (tiles.empty()) tiles.emplace_back(std::min<int64_t>(out_w, regs / 2), templates::divisor_at_most(channels, lanes));
  return tiles;
}

// The output-tiling part of a seed's text: channel split, rows, register
// tile, tile loop order, and the parallel loops. Single-threaded, channel
// blocks outermost (a block's weights stay in L2 while the rows stream);
// with threads, channel blocks and output rows are fused into the parallel
// loop (parallel=2 with the batch), rows split so every thread gets several.
// rows_first (threads only): the rows outermost, so the parallel loop splits
// the image (each thread packs and reads its own input rows, all the
// weights) rather than the channel blocks (its own weights, all the input).
std::string seed_output_text(const std::string& channel_knob, const Conv2dShape& s, const Target& t,
                             int64_t kb, int64_t ow_reg, bool rows_first = false) {
  const int64_t oh = s.out_h();
  int64_t oh1 = oh;
  const bool threaded = t.cpu.threads > 1;
  if (threaded) {
    const int64_t blocks = s.n * (s.k / kb);
    const int64_t rows_wanted = templates::ceil_div(4 * t.cpu.threads, blocks);
    oh1 = templates::divisor_at_most(oh, std::max<int64_t>(1, oh / rows_wanted));
    // Rows first: at least one row block per thread, so that the split
    // falls between rows.
    if (rows_first && s.n < t.cpu.threads && oh / oh1 < t.cpu.threads) {
      oh1 = templates::divisor_at_most(oh, std::max<int64_t>(1, oh / t.cpu.threads));
    }
  }
  return channel_knob + "=" + templates::factors_text({s.k / kb, kb}) +
         " tile_oh=" + templates::factors_text({oh / oh1, oh1}) + " tile_ow=" + std::to_string(ow_reg) +
         " ow_block=1 order=" + (threaded && rows_first ? "[oh0,k0,oh1,ow0,ow1]" : "[k0,oh0,oh1,ow0,ow1]");
}

std::string seed_loop_kind_text(const Target& t, int64_t unroll, int64_t fma_order) {
  return " unroll=" + std::to_string(unroll) + " fma_order=" + std::to_string(fma_order) +
         " parallel=" + (t.cpu.threads > 1 ? "2" : "0");
}

// ---- the shared nest ----

// Rows and columns of the packed input: exactly those the kernel window
// reaches from the output rows and the (tile-padded) output columns,
// padding included.
struct PaddedExtent {
  int64_t hp, wp;
};
PaddedExtent padded_extent(const Conv2dShape& s, const DirectConvSchedule& d) {
  return {(s.out_h() - 1) * s.stride_h + (s.r - 1) * s.dilation_h + 1,
          (d.padded_w() - 1) * s.stride_w + (s.s - 1) * s.dilation_w + 1};
}

// How the threads split the packing of the input: the way the compute's
// parallel loop splits the output, so that each thread packs (into its own
// cache) mostly what it then reads. By rows unless that loop's outermost
// split is the channel blocks: a thread that packed half the channels and
// then computed half the rows read the other half from the other core's
// cache (a 3x3 conv at 56x56 on 2 threads: 1.17 -> 1.05 ms packing by rows).
enum class PackSplit { kRows, kChannelBlocks };

// Packs data[n][channel(block, cc)][h][w] into packed[n][block][hp][wp][cc],
// with zeros where (hp - pad_top, wp - pad_left) falls outside the input. The
// border is written by loops of its own, so the copy needs no guards. With
// subsampling, s is the subsampled image (h x w of every subsample-th row
// and column of data) and the copy reads data's rows and columns that far
// apart. With `parallel`, the batch and the rows or the channel blocks
// (`split`) are fused into the parallel loop.
Stmt pack_data(const Conv2dShape& s, const Buffer& data, const Buffer& packed, bool parallel, PackSplit split,
               const std::function<Expr(Expr block, Expr cc)>& channel, int64_t subsample_h = 1,
               int64_t subsample_w = 1) {
  const int64_t hp = packed->shape[2], wp = packed->shape[3];
  const bool by_rows = parallel && split == PackSplit::kRows;
  LoopNest outer, blocks;  // by rows: the channel blocks inside each row
  outer.add("pn", s.n);
  outer.add(by_rows ? "ph" : "pc", by_rows ? hp : packed->shape[1]);
  outer.fuse_parallel(parallel ? 2 : 0);
  blocks.add("pc", packed->shape[1]);
  const Expr n = outer.var("pn"), block = by_rows ? blocks.var("pc") : outer.var("pc");

  // Rows [row0, row0 + rows) x columns [col0, col0 + cols), copied or
  // zeroed; by rows, the one row of the outer loop (rows ignored).
  auto region = [&](int64_t row0, int64_t rows, int64_t col0, int64_t cols, bool copy) -> Stmt {
    if (rows <= 0 || cols <= 0) return nullptr;
    LoopNest inner;
    if (!by_rows) inner.add("ph", rows);
    inner.add("pw", cols);
    inner.add("pcc", packed->shape[4]);
    const Expr h = by_rows ? outer.var("ph") : inner.var("ph") + row0;
    const Expr w = inner.var("pw") + col0, cc = inner.var("pcc");
    Expr value = copy ? ir::load(data, {n, channel(block, cc), (h + (-s.pad_top)) * subsample_h,
                                        (w + (-s.pad_left)) * subsample_w})
                      : ir::float_imm(0.0f);
    return inner.wrap(ir::store(packed, {n, block, h, w, cc}, value));
  };
  const int64_t row_lo = std::min(s.pad_top, hp), row_hi = std::min(s.pad_top + s.h, hp);
  const int64_t col_lo = std::min(s.pad_left, wp), col_hi = std::min(s.pad_left + s.w, wp);
  if (by_rows) {
    Stmt copy_row = ir::seq({region(row_lo, 1, 0, col_lo, false), region(row_lo, 1, col_lo, col_hi - col_lo, true),
                             region(row_lo, 1, col_hi, wp - col_hi, false)});
    Expr inside;  // the row is an image row (not top or bottom padding)
    if (row_lo > 0) inside = ir::le(ir::int_imm(row_lo), outer.var("ph"));
    if (row_hi < hp) {
      Expr below = ir::lt(outer.var("ph"), ir::int_imm(row_hi));
      inside = inside ? ir::logical_and(inside, below) : below;
    }
    copy_row = blocks.wrap(copy_row);
    if (inside) copy_row = ir::if_then_else(inside, copy_row, blocks.wrap(region(0, 1, 0, wp, false)));
    return outer.wrap(copy_row);
  }
  return outer.wrap(ir::seq({
      region(0, row_lo, 0, wp, false),
      region(row_lo, row_hi - row_lo, 0, col_lo, false),
      region(row_lo, row_hi - row_lo, col_lo, col_hi - col_lo, true),
      region(row_lo, row_hi - row_lo, col_hi, wp - col_hi, false),
      region(row_hi, hp - row_hi, 0, wp, false),
  }));
}

// How the packing of the input splits over the threads (see PackSplit):
// by channel blocks where the compute's parallel loop splits the output
// channel blocks first (its outermost loop of more than one iteration,
// after a batch of one), by rows otherwise.
PackSplit pack_split(const DirectConvSchedule& d) {
  for (int64_t i = 0; i < d.parallel && i < static_cast<int64_t>(d.order.size()); ++i) {
    const std::string& loop = kTileLoops[d.order[i]];
    if (d.tile_loop_extent(loop) > 1) return loop == "k0" ? PackSplit::kChannelBlocks : PackSplit::kRows;
  }
  return PackSplit::kRows;
}

// tile.acc[column, channel] += product(column, channel) over the whole tile,
// emitted in `order` (the vectorized lane loop stays innermost either way).
// With column_valid, a column's multiply-adds happen only where it holds.
Stmt accumulate(const RegisterTile& tile, int64_t order,
                const std::function<Expr(Expr column, Expr channel)>& product,
                const std::function<Expr(Expr column)>& column_valid) {
  auto loop = [](const std::string& var, int64_t extent, LoopKind kind,
                 const std::function<Stmt(Expr)>& body) {
    return extent == 1 ? body(ir::int_imm(0)) : ir::for_loop(var, extent, kind, body(ir::var(var)));
  };
  auto guarded = [&](Expr column, Stmt body) {
    return column_valid ? ir::if_then_else(column_valid(column), body) : body;
  };
  auto lanes = [&](Expr column, Expr jv) {
    return loop(tile.prefix + "_jl", tile.lanes, LoopKind::kVectorized, [&](Expr jl) {
      Expr channel = jv * tile.lanes + jl;
      return ir::accumulate(tile.acc, {column, channel}, product(column, channel));
    });
  };
  if (order == kColumnsOuter) {
    return loop(tile.prefix + "_i", tile.rows, LoopKind::kUnrolled, [&](Expr column) {
      return guarded(column, loop(tile.prefix + "_jv", tile.cols / tile.lanes, LoopKind::kUnrolled,
                                  [&](Expr jv) { return lanes(column, jv); }));
    });
  }
  return loop(tile.prefix + "_jv", tile.cols / tile.lanes, LoopKind::kUnrolled, [&](Expr jv) {
    return loop(tile.prefix + "_i", tile.rows, LoopKind::kUnrolled,
                [&](Expr column) { return guarded(column, lanes(column, jv)); });
  });
}

bool no_padding(const Conv2dShape& s) {
  return s.pad_top == 0 && s.pad_left == 0 && s.pad_bottom == 0 && s.pad_right == 0;
}

// Every input row and column the tiles read (their padded width included)
// lies inside the image: the input can be read without a padded copy.
bool reads_inside(const Conv2dShape& s, const DirectConvSchedule& d) {
  const PaddedExtent pe = padded_extent(s, d);
  return pe.hp <= s.h && pe.wp <= s.w;
}

// Packed-input row and column read by output (oh, ow) at kernel tap (r, s).
Expr input_row(const Conv2dShape& s, const Expr& oh, const Expr& r) {
  return oh * s.stride_h + r * s.dilation_h;
}
Expr input_col(const Conv2dShape& s, const Expr& ow, const Expr& tap) {
  return ow * s.stride_w + tap * s.dilation_w;
}

// Where a register tile sits in the output.
struct TileOrigin {
  Expr n, k0, oh, ow;  // k0: output-channel block; ow: the tile's first column
};

// For every register tile of the output (tile loops in the configured order,
// the outermost `parallel` of them fused with the batch loop into the
// parallel loop): zero the accumulators, run the reduction nest around
// product(origin, column, channel), write the tile to the NCHW output.
Stmt output_tiles(const Conv2dShape& s, const DirectConvSchedule& d, const Buffer& out,
                  const LoopNest& reduction,
                  const std::function<Expr(const TileOrigin&, Expr col, Expr kk)>& product) {
  LoopNest nest;
  nest.add("n", s.n);
  for (int i : d.order) nest.add(kTileLoops[i], d.tile_loop_extent(kTileLoops[i]));
  nest.fuse_parallel(d.parallel > 0 ? static_cast<int>(d.parallel) + 1 : 0);
  const Expr tile_index = nest.var("ow0") * d.ow_block + nest.var("ow1");
  const TileOrigin origin{nest.var("n"), nest.var("k0"), d.oh.index(nest), tile_index * d.ow_reg};

  // Rows of the tile are output columns, its columns output channels.
  const RegisterTile tile("acc", d.ow_reg, d.kb(), d.vec);
  // The NCHW output is not contiguous along channels: written element by
  // element, fully unrolled so the accumulators stay in registers. Only the
  // last tile of a row can be partial; it skips its columns past the edge.
  auto write = [&](const Expr& valid_columns) {
    LoopNest write;
    write.add("wk", d.kb(), LoopKind::kUnrolled);
    write.add("wo", d.ow_reg, LoopKind::kUnrolled);
    const Expr wk = write.var("wk"), wo = write.var("wo");
    Stmt store = ir::store(out, {origin.n, origin.k0 * d.kb() + wk, origin.oh, origin.ow + wo},
                           tile.value(wo, wk));
    if (valid_columns) store = ir::if_then_else(ir::lt(wo, valid_columns), store);
    return write.wrap(store);
  };
  Stmt write_back = write(nullptr);
  if (d.padded_w() != d.out_w) {
    write_back = ir::if_then_else(ir::le(origin.ow + d.ow_reg, ir::int_imm(d.out_w)), write_back,
                                  write(ir::int_imm(d.out_w) - origin.ow));
  }
  auto step = [&](Expr col, Expr kk) { return product(origin, col, kk); };

  // Kernel taps that read only padding are skipped, as oneDNN skips them:
  // a kernel row whose input row is padding for the tile's output row, and,
  // when one register tile spans the whole output row (its columns are then
  // constants) and the kernel columns are unrolled, each column's taps that
  // fall in the padding, decided at compile time (nothing is emitted for
  // them). A 7x7 output of a 3x3 kernel, pad 1, skips 18% of the work.
  LoopNest red = reduction;
  const PaddedExtent pe = padded_extent(s, d);
  const Expr in_row = input_row(s, origin.oh, red.var("r"));
  if (s.pad_top > 0) red.guard("r", ir::le(ir::int_imm(s.pad_top), in_row));
  if (pe.hp > s.pad_top + s.h) red.guard("r", ir::lt(in_row, ir::int_imm(s.pad_top + s.h)));
  std::function<Expr(Expr)> column_valid;
  if (d.ow_tiles() == 1 && (s.s == 1 || red.kind("s") == LoopKind::kUnrolled) &&
      (s.pad_left > 0 || pe.wp > s.pad_left + s.w)) {
    column_valid = [&](Expr col) {
      const Expr in_col = input_col(s, origin.ow + col, red.var("s"));
      return ir::logical_and(ir::le(ir::int_imm(s.pad_left), in_col),
                             ir::lt(in_col, ir::int_imm(s.pad_left + s.w)));
    };
  }
  Stmt body = ir::allocate(
      tile.acc,
      ir::seq({tile.zero(), red.wrap(accumulate(tile, d.fma_order, step, column_valid)), write_back}));
  // A partial last group of tiles skips the tiles past the edge.
  if (d.ow_groups() * d.ow_block != d.ow_tiles()) {
    body = ir::if_then_else(ir::lt(tile_index, ir::int_imm(d.ow_tiles())), body);
  }
  return nest.wrap(body);
}

// The reduction loops (name, extent; outermost first) with the innermost
// `unroll` of them unrolled.
LoopNest reduction_nest(const std::vector<std::pair<std::string, int64_t>>& loops, int64_t unroll) {
  LoopNest nest;
  for (size_t i = 0; i < loops.size(); ++i) {
    nest.add(loops[i].first, loops[i].second,
             i + unroll >= loops.size() ? LoopKind::kUnrolled : LoopKind::kSerial);
  }
  return nest;
}

int64_t unrolled_extent(const std::vector<std::pair<std::string, int64_t>>& loops, int64_t unroll) {
  int64_t e = 1;
  for (size_t i = loops.size() - unroll; i < loops.size(); ++i) e *= loops[i].second;
  return e;
}

// The operator's parameters, in Program::params order.
struct ConvParams {
  Buffer data, weight, out;

  explicit ConvParams(const Workload& w) {
    const std::vector<Buffer> b = templates::operator_buffers(w);
    data = b.at(0), weight = b.at(1), out = b.at(2);
  }

};

ir::Program direct_conv_program(const std::string& name, const Target& t, const ConvParams& io,
                                std::vector<Buffer> workspace, Stmt prepare, Stmt body) {
  ir::Program p;
  p.name = name;
  p.params = {io.data, io.weight, io.out};
  p.workspace = std::move(workspace);
  p.prepare = std::move(prepare);
  p.body = std::move(body);
  p.threads = t.cpu.threads;
  return p;
}

// ---- conv2d ----

class Conv2dNchwc : public Template {
 public:
  std::string name() const override { return "conv2d_cpu_nchwc"; }
  // v3: kernel taps that read only padding are skipped. v4: unblocked input
  // channels without padding read the input in place (no copy).
  int version() const override { return 4; }
  OpKind op() const override { return OpKind::kConv2d; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    if (auto reason = templates::check_cpu_op(name(), op(), w, t)) throw Error(*reason);
    const Conv2dShape& s = w.conv2d();
    ConfigSpace space;
    space.add_split("tile_ic", s.c, 2);
    add_output_knobs(space, s, t, "tile_oc");
    // Reduction orders worth trying: input-channel blocks outermost (the
    // weights of a block stay in cache across the window) or the window
    // outermost; the register tile is always innermost.
    space.add_reorder("order_reduce", kReduceLoops,
                      {{0, 1, 2, 3}, {0, 1, 3, 2}, {1, 2, 0, 3}, {1, 0, 2, 3}});
    add_loop_kind_knobs(space, t, 2);
    return space;
  }

  // oneDNN's recipe for direct convolutions: a register tile of output
  // columns x output-channel vectors that fills the registers, input
  // channels either blocked by the vector width (contiguous broadcasts,
  // the block unrolled) or not blocked at all (the NCHW input read in place
  // of a transform), reductions ordered channels-outer or window-outer, and
  // both emission orders of the multiply-adds.
  std::vector<Config> seed_configs(const Workload& w, const Target& t,
                                   const ConfigSpace& space) const override {
    const Conv2dShape& s = w.conv2d();
    templates::SeedList seeds(w, t, space, *this);
    const int64_t lanes = std::max(1, t.cpu.vector_lanes);
    // Without padding, unblocked channels read the input in place (no copy
    // per call): first (1x1 convs on 7x7-28x28 planes, 2 threads: 42-62 us
    // against 50-118 us for the same tiles with blocked channels).
    const std::vector<int64_t> blocks =
        no_padding(s) ? std::vector<int64_t>{1, lanes} : std::vector<int64_t>{lanes, 1};
    // Columns outer first: of the pairs of configs that differ only in the
    // order, measured in the ResNet-18 set and in MobileNetV2 and ResNet-18
    // tuned as models (GCC 12, Zen 5, 1 and 2 threads), columns outer was
    // faster in about half, slower in one in eight, and 6-19% faster on
    // geometric mean.
    // With threads, the loop that splits over them: the rows where the
    // input is at least as large as the weights (each thread then reads the
    // input rows it packed itself; splitting the channel blocks instead
    // made every thread read the whole input, half of it from the other
    // core's cache: a 3x3 stride-2 conv at 56x56, 2 threads, 0.59 ms with
    // rows first, 0.56-0.87 ms channels first depending on which cores the
    // two threads ran on), the channel blocks where the weights are larger.
    const bool rows_first = s.n * s.c * s.h * s.w >= s.k * s.c * s.r * s.s;
    for (auto [ow_reg, kb] : seed_tiles(t, s.out_w(), s.k, 2)) {
      const std::string out = seed_output_text("tile_oc", s, t, kb, ow_reg, rows_first);
      for (int64_t fma_order : {kColumnsOuter, kVectorsOuter}) {
        for (int64_t cb : blocks) {
          if (s.c % cb != 0) continue;
          const std::string ic = "tile_ic=" + templates::factors_text({s.c / cb, cb}) + " ";
          // The window outer, nothing unrolled, first: with the channel
          // block unrolled instead, the widest tiles spilled (GCC 12; every
          // 3x3 layer of ResNet-18, 1 and 2 threads: 1.1-1.8x slower).
          seeds.add(ic + out + " order_reduce=[r,c0,s,c1]" + seed_loop_kind_text(t, 0, fma_order));
          if (cb > 1) {
            seeds.add(ic + out + " order_reduce=[c0,r,s,c1]" + seed_loop_kind_text(t, 1, fma_order));
          }
        }
        // A tile spanning the output row with the kernel columns unrolled
        // skips the padded columns' taps at compile time (see output_tiles);
        // quarter- and half-vector channel blocks keep that unrolled body
        // small (7x7 outputs of 512 channels on 2 threads: 613 GFLOP/s with
        // blocks of 4, against 571 for the best tile that skips rows only).
        if (ow_reg < s.out_w() || s.s == 1 || (s.pad_left == 0 && s.pad_right == 0)) continue;
        for (int64_t part : {lanes / 4, lanes / 2}) {
          if (part <= 1 || s.c % part != 0) continue;
          seeds.add("tile_ic=" + templates::factors_text({s.c / part, part}) + " " + out +
                    " order_reduce=[c0,r,s,c1]" + seed_loop_kind_text(t, 2, fma_order));
        }
      }
    }
    return seeds.take();
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto reason = templates::check_cpu_op(name(), op(), w, t)) return reason;
    const DirectConvSchedule d = decode(space, c, t, w.conv2d(), "tile_oc");
    return check_schedule(d, t, unrolled_extent(reduction_loops(w.conv2d(), space, c), d.unroll));
  }

  ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                          const Config& c) const override {
    if (auto reason = check(w, t, space, c)) {
      throw Error("cannot instantiate " + name() + " for " + w.key() + " with " +
                  space.describe(c) + ": " + *reason);
    }
    const Conv2dShape& shape = w.conv2d();
    const DirectConvSchedule d = decode(space, c, t, shape, "tile_oc");
    const SplitAxis ci{"c", space.split(c, "tile_ic")};
    const int64_t kb = d.kb(), cb = ci.factor(1);
    // A strided 1x1 conv without padding reads every stride-th pixel only:
    // the packing takes just those (a quarter of the input at stride 2), and
    // the tiles compute the stride-1 conv of that subsampled image.
    Conv2dShape s = shape;
    const bool subsample = s.r == 1 && s.s == 1 && (s.stride_h > 1 || s.stride_w > 1) &&
                           s.pad_top == 0 && s.pad_left == 0 && s.pad_bottom == 0 && s.pad_right == 0;
    if (subsample) {
      s.h = shape.out_h(), s.w = shape.out_w();
      s.stride_h = s.stride_w = 1;
    }
    const PaddedExtent pe = padded_extent(s, d);
    const ConvParams io(w);

    // Weights [k][c][r][s] -> [k/kb][c/cb][r][s][cb][kb].
    const Buffer wpack = ir::make_buffer("weight_packed", {d.k.factor(0), ci.factor(0), s.r, s.s, cb, kb},
                                         ir::Scope::kGlobal, /*prepared=*/true);
    Stmt prepare = templates::fill(wpack, "wp", [&](const std::vector<Expr>& i) {
      return ir::load(io.weight, {i[0] * kb + i[5], i[1] * cb + i[4], i[2], i[3]});
    });

    const LoopNest red = reduction_nest(reduction_loops(s, space, c), d.unroll);
    const Expr c0 = red.var("c0"), c1 = red.var("c1"), r = red.var("r"), tap = red.var("s");
    auto weight = [&](const TileOrigin& o, Expr kk) { return ir::load(wpack, {o.k0, c0, r, tap, c1, kk}); };

    // Input channels not blocked (cb = 1) and no padding: the packed copy
    // would be the input itself (subsampled where strided), so the tiles
    // read the NCHW input in place — every read is a broadcast, which needs
    // no blocked layout — and the copy of the whole input per call is gone.
    if (cb == 1 && no_padding(shape) && reads_inside(shape, d)) {
      Stmt compute = output_tiles(s, d, io.out, red, [&](const TileOrigin& o, Expr col, Expr kk) {
        return ir::load(io.data, {o.n, c0, input_row(shape, o.oh, r), input_col(shape, o.ow + col, tap)}) *
               weight(o, kk);
      });
      return direct_conv_program(name(), t, io, {wpack}, prepare, compute);
    }

    const Buffer dpack = ir::make_buffer("data_packed", {s.n, ci.factor(0), pe.hp, pe.wp, cb});
    Stmt pack = pack_data(
        s, io.data, dpack, d.parallel > 0, pack_split(d), [&](Expr block, Expr cc) { return block * cb + cc; },
        subsample ? shape.stride_h : 1, subsample ? shape.stride_w : 1);
    Stmt compute = output_tiles(s, d, io.out, red, [&](const TileOrigin& o, Expr col, Expr kk) {
      return ir::load(dpack, {o.n, c0, input_row(s, o.oh, r), input_col(s, o.ow + col, tap), c1}) * weight(o, kk);
    });
    return direct_conv_program(name(), t, io, {wpack, dpack}, prepare, ir::seq({pack, compute}));
  }

 private:
  // Input-channel blocks (c0), kernel rows and columns, channels in a block (c1).
  inline static const std::vector<std::string> kReduceLoops = {"c0", "r", "s", "c1"};

  // The reduction loops in the configured order, with their extents.
  static std::vector<std::pair<std::string, int64_t>> reduction_loops(const Conv2dShape& s,
                                                                      const ConfigSpace& space,
                                                                      const Config& c) {
    const std::vector<int64_t> ci = space.split(c, "tile_ic");
    const std::map<std::string, int64_t> extent = {{"c0", ci[0]}, {"r", s.r}, {"s", s.s}, {"c1", ci[1]}};
    std::vector<std::pair<std::string, int64_t>> loops;
    for (int i : space.order(c, "order_reduce")) loops.emplace_back(kReduceLoops[i], extent.at(kReduceLoops[i]));
    return loops;
  }
};

// ---- depthwise conv2d ----

class DepthwiseConv2dNchwc : public Template {
 public:
  std::string name() const override { return "depthwise_conv2d_cpu_nchwc"; }
  // v3: kernel taps that read only padding are skipped.
  int version() const override { return 3; }
  OpKind op() const override { return OpKind::kDepthwiseConv2d; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    if (auto reason = templates::check_cpu_op(name(), op(), w, t)) throw Error(*reason);
    ConfigSpace space;
    add_output_knobs(space, w.conv2d(), t, "tile_c");
    add_loop_kind_knobs(space, t, 2);
    return space;
  }

  // Channel blocks of one to four vectors, as many output columns as the
  // registers hold, the window unrolled.
  std::vector<Config> seed_configs(const Workload& w, const Target& t,
                                   const ConfigSpace& space) const override {
    const Conv2dShape& s = w.conv2d();
    templates::SeedList seeds(w, t, space, *this);
    for (auto [ow_reg, kb] : seed_tiles(t, s.out_w(), s.k, 4)) {
      const std::string out = seed_output_text("tile_c", s, t, kb, ow_reg);
      for (int64_t unroll : {2, 1}) {
        for (int64_t fma_order : {kColumnsOuter, kVectorsOuter}) {
          seeds.add(out + seed_loop_kind_text(t, unroll, fma_order));
        }
      }
    }
    return seeds.take();
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto reason = templates::check_cpu_op(name(), op(), w, t)) return reason;
    const DirectConvSchedule d = decode(space, c, t, w.conv2d(), "tile_c");
    return check_schedule(d, t, unrolled_extent(reduction_loops(w.conv2d()), d.unroll));
  }

  ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                          const Config& c) const override {
    if (auto reason = check(w, t, space, c)) {
      throw Error("cannot instantiate " + name() + " for " + w.key() + " with " +
                  space.describe(c) + ": " + *reason);
    }
    const Conv2dShape& s = w.conv2d();
    const DirectConvSchedule d = decode(space, c, t, s, "tile_c");
    const int64_t kb = d.kb();
    const PaddedExtent pe = padded_extent(s, d);
    const ConvParams io(w);

    // Weights [k][1][r][s] -> [k/kb][r][s][kb].
    const Buffer wpack = ir::make_buffer("weight_packed", {d.k.factor(0), s.r, s.s, kb},
                                         ir::Scope::kGlobal, /*prepared=*/true);
    Stmt prepare = templates::fill(wpack, "wp", [&](const std::vector<Expr>& i) {
      return ir::load(io.weight, {i[0] * kb + i[3], ir::int_imm(0), i[1], i[2]});
    });

    // Packed per output channel: with a multiplier m, input channel k / m is
    // repeated m times, so the compute below is the same for every m.
    const Buffer dpack = ir::make_buffer("data_packed", {s.n, d.k.factor(0), pe.hp, pe.wp, kb});
    Stmt pack = pack_data(s, io.data, dpack, d.parallel > 0, pack_split(d), [&](Expr block, Expr kk) {
      Expr k = block * kb + kk;
      return s.multiplier == 1 ? k : ir::floordiv(k, ir::int_imm(s.multiplier));
    });

    const LoopNest red = reduction_nest(reduction_loops(s), d.unroll);
    const Expr r = red.var("r"), tap = red.var("s");
    Stmt compute = output_tiles(s, d, io.out, red, [&](const TileOrigin& o, Expr col, Expr kk) {
      return ir::load(dpack, {o.n, o.k0, input_row(s, o.oh, r), input_col(s, o.ow + col, tap), kk}) *
             ir::load(wpack, {o.k0, r, tap, kk});
    });
    return direct_conv_program(name(), t, io, {wpack, dpack}, prepare, ir::seq({pack, compute}));
  }

 private:
  static std::vector<std::pair<std::string, int64_t>> reduction_loops(const Conv2dShape& s) {
    return {{"r", s.r}, {"s", s.s}};
  }
};

}  // namespace

const Template& conv2d_cpu_template() {
  static const Conv2dNchwc t;
  return t;
}

const Template& depthwise_conv2d_cpu_template() {
  static const DepthwiseConv2dNchwc t;
  return t;
}

}  // namespace ktune
