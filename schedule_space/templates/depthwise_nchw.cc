// Depthwise conv2d for CPUs straight in NCHW: no blocked copy of the input
// in memory, no transposed output.
//
// Depthwise convolution does 9 multiply-adds per input element (3x3), so it
// is bound by memory traffic, and the channel-blocked template's pass that
// packs the whole input into NCHW[x]c (a write and a read of the input per
// call) costs as much as the convolution. Here each parallel iteration takes
// one output channel's plane: it copies its input plane, padded with zeros
// and with the columns split by phase of the stride (column x of phase p is
// input column x*stride + p, so every tap's columns are contiguous for any
// stride), into a stack buffer that stays in cache, then computes register
// tiles of tile_y output rows x tile_x vectors of output columns: for every
// tap one unaligned vector load of the plane and one broadcast weight per
// accumulator. The output is written in vectors along its rows (NCHW is
// contiguous there); a row's cut vector spills into the next row, which is
// written after it, and only the plane's last rows are written exactly.
//
// With a column stride of 1 or 2 there is a second way to read the window
// (knob `window`=1, "masked"): no plane at all. Every tap loads its vector
// straight from the NCHW input, as a masked load whose mask drops the lanes
// that fall into the padding (left or right of the row: an unaligned load
// there would read the neighbouring row); with stride 2, the even elements of
// two such loads. A row's cut vector is written with a masked store. The
// tile's column position is then a constant (the column tiles are unrolled),
// so every mask is known when the kernel is generated; input rows outside the
// image are skipped by a test on the row. This drops the plane's
// copy, which on 7x7 and 14x14 planes cost more than the convolution (stores
// into a buffer that unaligned vector loads read back at once).
#include <algorithm>
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
using templates::ceil_div;
using templates::LoopNest;
using templates::RegisterTile;

struct Rows {
  int64_t tile_y = 1, tile_x = 1, vec = 1, unroll = 0, window = 0;
  int64_t cols() const { return tile_x * vec; }  // output columns of a tile
};

class DepthwiseConv2dNchw : public Template {
 public:
  std::string name() const override { return "depthwise_conv2d_cpu_nchw"; }
  // v2: the masked window (no plane), tiles of up to 8 rows.
  int version() const override { return 2; }
  OpKind op() const override { return OpKind::kDepthwiseConv2d; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    if (auto why = templates::check_cpu_op(name(), op(), w, t)) throw Error(*why);
    const Conv2dShape& s = w.conv2d();
    ConfigSpace space;
    std::vector<int64_t> rows, vectors;
    for (int64_t y = 1; y <= std::min<int64_t>(s.out_h(), 8); ++y) rows.push_back(y);
    for (int64_t x = 1; x <= 4; ++x) vectors.push_back(x);
    // The full vector width and half of it (narrow rows waste less of a vector).
    std::vector<int64_t> widths = templates::vector_width_choices(t.cpu, std::max(1, t.cpu.vector_lanes));
    if (widths.size() > 2) widths.resize(2);
    space.add_choice("tile_y", rows);
    space.add_choice("tile_x", vectors);
    space.add_choice("vec", widths);
    space.add_choice("unroll", {0, 1, 2});  // innermost kernel loops unrolled
    // 0: the padded plane; 1: masked loads from the input (column stride 1 or 2).
    space.add_choice("window", s.stride_w <= 2 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0});
    return space;
  }

  std::vector<Config> seed_configs(const Workload& w, const Target& t, const ConfigSpace& space) const override {
    templates::SeedList seeds(w, t, space, *this);
    const int64_t lanes = std::max(1, t.cpu.vector_lanes);
    const Conv2dShape& s = w.conv2d();
    if (s.stride_w <= 2) {
      // Masked: as many rows as the registers hold for rows of one, two or
      // four vectors, full and half width. One vector per row first: it was
      // the tile of every masked winner in the MobileNetV2 runs and the
      // depthwise set (20 of 20, 1 and 2 threads); then the width that pads
      // the output row least, the wider at a tie (7 columns: 8 lanes, 7.0 us
      // against 10.1 for 16; 56 columns at stride 1: 8; 14, 28, 112: 16).
      std::vector<int64_t> widths;
      for (int64_t v : {lanes, lanes / 2}) {
        if (v >= 1) widths.push_back(v);
      }
      auto padding = [&](int64_t v) { return templates::round_up(s.out_w(), v) - s.out_w(); };
      std::stable_sort(widths.begin(), widths.end(), [&](int64_t a, int64_t b) { return padding(a) < padding(b); });
      for (int rank = 0; rank < 3; ++rank) {
        for (int64_t v : widths) {
          const int64_t per_row = std::min<int64_t>(4, ceil_div(s.out_w(), v));
          const int64_t x = rank == 0 ? 1 : rank == 1 ? std::min<int64_t>(per_row, 2) : per_row;
          const int64_t y = std::max<int64_t>(1, std::min<int64_t>({8, s.out_h(), 24 / x}));
          seeds.add("tile_y=" + std::to_string(y) + " tile_x=" + std::to_string(x) + " vec=" + std::to_string(v) +
                    " unroll=2 window=1");
        }
      }
    }
    for (const char* tile : {"tile_y=4 tile_x=2", "tile_y=2 tile_x=4", "tile_y=3 tile_x=3", "tile_y=2 tile_x=2",
                             "tile_y=1 tile_x=2"}) {
      for (int64_t v : {lanes, lanes / 2}) {
        seeds.add(std::string(tile) + " vec=" + std::to_string(v) + " unroll=2 window=0");
      }
    }
    return seeds.take();
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = templates::check_cpu_op(name(), op(), w, t)) return why;
    const Rows d = decode(space, c);
    const int64_t accumulators = d.tile_y * d.tile_x;
    const int64_t registers = templates::vector_registers(t.cpu);
    if (accumulators + 2 > registers) {
      return "register tile of " + std::to_string(d.tile_y) + " rows x " + std::to_string(d.tile_x) +
             " vectors needs " + std::to_string(accumulators + 2) + " vector registers; " + t.cpu.isa + " has " +
             std::to_string(registers);
    }
    const Conv2dShape& s = w.conv2d();
    const int64_t unrolled = d.unroll == 0 ? 1 : d.unroll == 1 ? s.s : s.r * s.s;
    if (unrolled * accumulators > 1024) return "unrolling the kernel window emits over 1024 multiply-adds";
    if (d.window == 0 && plane_floats(s, d) > (int64_t{1} << 20)) return "the padded input plane is over 4 MiB";
    return std::nullopt;
  }

  ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                          const Config& c) const override {
    if (auto why = check(w, t, space, c)) {
      throw Error("cannot instantiate " + name() + " for " + w.key() + " with " + space.describe(c) + ": " + *why);
    }
    const Conv2dShape& s = w.conv2d();
    const Rows d = decode(space, c);
    if (d.window == 1) return masked(w, t, d);
    const std::vector<Buffer> params = templates::operator_buffers(w);
    const Buffer &data = params.at(0), &weight = params.at(1), &out = params.at(2);
    const int64_t oh = s.out_h(), ow = s.out_w(), st = s.stride_w;
    const int64_t tiles_y = ceil_div(oh, d.tile_y), tiles_x = ceil_div(ow, d.cols());
    const int64_t hp = plane_rows(s, d), wp = plane_cols(s, d);
    const Buffer plane = ir::make_buffer("plane", {hp, st, wp}, ir::Scope::kStack);

    const LoopNest planes = plane_loops(s, t);
    const Expr n = planes.var("n"), k = planes.var("k");
    const Expr channel = input_channel(s, k);

    // The padded plane: the image's rows and, per phase, the columns that
    // fall inside it, copied; zeros only around them (a small plane's
    // zeroing would cost as much as its copy).
    const templates::StridePhases phases{st, s.pad_left, s.w, wp};
    std::vector<Stmt> zeros, copies;
    const int64_t row_lo = s.pad_top, row_hi = std::min(hp, s.pad_top + s.h);
    // Zeros over rows [y0, y1) x columns [x0, x1) of phase p.
    auto zero = [&](int64_t y0, int64_t y1, int64_t p, int64_t x0, int64_t x1) {
      if (y1 <= y0 || x1 <= x0) return;
      const std::string q = std::to_string(zeros.size());
      LoopNest z;
      z.add("zy" + q, y1 - y0);
      z.add("zx" + q, x1 - x0);
      zeros.push_back(z.wrap(ir::store(plane, {z.var("zy" + q) + y0, ir::int_imm(p), z.var("zx" + q) + x0},
                                       ir::float_imm(0.0f))));
    };
    for (int64_t p = 0; p < st; ++p) {
      zero(0, std::min(row_lo, hp), p, 0, wp);
      zero(std::max(row_hi, row_lo), hp, p, 0, wp);
    }
    for (int64_t p = 0; p < st; ++p) {
      const auto [x_lo, x_hi] = phases.inside(p);
      if (row_hi <= row_lo) continue;
      if (x_hi <= x_lo) {
        zero(row_lo, row_hi, p, 0, wp);
        continue;
      }
      zero(row_lo, row_hi, p, 0, x_lo);
      zero(row_lo, row_hi, p, x_hi, wp);
      LoopNest copy;
      copy.add("cy" + std::to_string(p), row_hi - row_lo);
      copy.add("cx" + std::to_string(p), x_hi - x_lo);
      const Expr y = copy.var("cy" + std::to_string(p)) + row_lo, x = copy.var("cx" + std::to_string(p)) + x_lo;
      copies.push_back(copy.wrap(ir::store(
          plane, {y, ir::int_imm(p), x},
          ir::load(data, {n, channel, y + ir::int_imm(-s.pad_top), phases.image_col(x, p)}))));
    }

    LoopNest tiles;
    tiles.add("ty", tiles_y);
    tiles.add("tx", tiles_x);
    const Expr y0 = tiles.var("ty") * ir::int_imm(d.tile_y), x0 = tiles.var("tx") * ir::int_imm(d.cols());
    LoopNest taps;
    taps.add("r", s.r, d.unroll >= 2 ? LoopKind::kUnrolled : LoopKind::kSerial);
    taps.add("s", s.s, d.unroll >= 1 ? LoopKind::kUnrolled : LoopKind::kSerial);
    const Expr r = taps.var("r"), q = taps.var("s");
    const Expr tap_col = q * ir::int_imm(s.dilation_w);  // padded column offset of tap q
    const Expr phase = phases.phase(tap_col), shift = phases.shift(tap_col);
    const RegisterTile tile("acc", d.tile_y, d.cols(), d.vec);
    auto product = [&](Expr row, Expr col) {
      const Expr py = (y0 + row) * ir::int_imm(s.stride_h) + r * ir::int_imm(s.dilation_h);
      return ir::load(plane, {py, phase, x0 + col + shift}) * ir::load(weight, {k, ir::int_imm(0), r, q});
    };
    const Expr valid_rows = oh % d.tile_y == 0 ? nullptr : ir::int_imm(oh) - y0;
    const Expr valid_cols = ow % d.cols() == 0 ? nullptr : ir::int_imm(ow) - x0;
    auto store = [&](Expr row, Expr col, Expr value) { return ir::store(out, {n, k, y0 + row, x0 + col}, value); };
    Stmt write = tile.write_back(store, valid_rows, valid_cols);
    // A row narrower than its tiles: the tiles above the plane's last row
    // store whole vectors, the cut one spilling into the next row of the
    // plane (NCHW rows are contiguous), which is written after it (one tile
    // per row band, or one row per tile) — one vector store in place of a
    // store per element. The tile holding the last row stores exactly (its
    // spill would reach the next channel's plane, another thread's).
    if (valid_cols && tiles_x * d.cols() - ow <= ow && oh > d.tile_y && (tiles_x == 1 || d.tile_y == 1)) {
      write = ir::if_then_else(ir::lt(y0 + ir::int_imm(d.tile_y), ir::int_imm(oh)), tile.write_back(store), write);
    }
    Stmt compute = tiles.wrap(tile.compute(taps, product, write));

    ir::Program p;
    p.name = name();
    p.params = params;
    p.body = planes.wrap(ir::allocate(plane, ir::seq({ir::seq(std::move(zeros)), ir::seq(std::move(copies)), compute})));
    p.threads = t.cpu.threads;
    return p;
  }

 private:
  static Rows decode(const ConfigSpace& space, const Config& c) {
    Rows d;
    d.tile_y = space.value(c, "tile_y");
    d.tile_x = space.value(c, "tile_x");
    d.vec = space.value(c, "vec");
    d.unroll = space.value(c, "unroll");
    d.window = space.value(c, "window");
    return d;
  }

  // One parallel iteration per output channel's plane.
  static LoopNest plane_loops(const Conv2dShape& s, const Target& t) {
    LoopNest planes;
    planes.add("n", s.n);
    planes.add("k", s.k);
    planes.fuse_parallel(t.cpu.threads > 1 ? 2 : 0);
    return planes;
  }
  // The input channel output channel k reads (k / multiplier).
  static Expr input_channel(const Conv2dShape& s, const Expr& k) {
    return s.multiplier == 1 ? k : ir::floordiv(k, ir::int_imm(s.multiplier));
  }

  // The masked window (see the top of the file): tiles of tile_y rows x
  // tile_x vectors, the column tiles unrolled (every tap's mask a constant),
  // the row tiles too where the plane has few of them (then the row tests
  // fold away as well).
  ir::Program masked(const Workload& w, const Target& t, const Rows& d) const {
    const Conv2dShape& s = w.conv2d();
    const std::vector<Buffer> params = templates::operator_buffers(w);
    const Buffer &data = params.at(0), &weight = params.at(1), &out = params.at(2);
    const int64_t oh = s.out_h(), ow = s.out_w();
    const int64_t tiles_y = ceil_div(oh, d.tile_y), tiles_x = ceil_div(ow, d.cols());

    const LoopNest planes = plane_loops(s, t);
    const Expr n = planes.var("n"), k = planes.var("k");
    const Expr channel = input_channel(s, k);

    LoopNest tiles;
    tiles.add("ty", tiles_y, tiles_y * tiles_x <= 8 ? LoopKind::kUnrolled : LoopKind::kSerial);
    tiles.add("tx", tiles_x, LoopKind::kUnrolled);
    const Expr y0 = tiles.var("ty") * ir::int_imm(d.tile_y), x0 = tiles.var("tx") * ir::int_imm(d.cols());
    LoopNest taps;
    taps.add("r", s.r, d.unroll >= 2 ? LoopKind::kUnrolled : LoopKind::kSerial);
    taps.add("s", s.s, LoopKind::kUnrolled);  // the masks need the tap's column
    const Expr r = taps.var("r"), q = taps.var("s");
    const RegisterTile tile("acc", d.tile_y, d.cols(), d.vec);
    auto product = [&](Expr row, Expr col) {
      const Expr iy = (y0 + row) * ir::int_imm(s.stride_h) + r * ir::int_imm(s.dilation_h) + ir::int_imm(-s.pad_top);
      const Expr ix = (x0 + col) * ir::int_imm(s.stride_w) + q * ir::int_imm(s.dilation_w) + ir::int_imm(-s.pad_left);
      const Expr row_ok = ir::logical_and(ir::le(ir::int_imm(0), iy), ir::lt(iy, ir::int_imm(s.h)));
      const Expr col_ok = ir::logical_and(ir::le(ir::int_imm(0), ix), ir::lt(ix, ir::int_imm(s.w)));
      const Expr zero = ir::float_imm(0.0f);
      const Expr tap = ir::select(col_ok, ir::load(data, {n, channel, iy, ix}), zero);
      return ir::select(row_ok, tap * ir::load(weight, {k, ir::int_imm(0), r, q}), zero);
    };
    // Rows past the output's last are not stored; in a row, the lanes past
    // its end are masked off.
    Stmt write = templates::loop_or_single("acc_i", d.tile_y, LoopKind::kUnrolled, [&](Expr row) -> Stmt {
      Stmt vectors = templates::loop_or_single("acc_jv", d.tile_x, LoopKind::kUnrolled, [&](Expr jv) {
        return templates::loop_or_single("acc_jl", d.vec, LoopKind::kVectorized, [&](Expr jl) {
          const Expr col = jv * ir::int_imm(d.vec) + jl;
          return ir::if_then_else(ir::lt(x0 + col, ir::int_imm(ow)),
                                  ir::store(out, {n, k, y0 + row, x0 + col}, tile.value(row, col)));
        });
      });
      return oh % d.tile_y == 0 ? vectors : ir::if_then_else(ir::lt(y0 + row, ir::int_imm(oh)), vectors);
    });
    // With a column stride of 2 and every tap unrolled, the tile goes row by
    // row (each output row's taps, then the next row's): the code generator
    // loads each pair of input vectors once and picks its even and odd
    // elements for the taps that share it, and output rows 2 apart in the
    // input share a row; row by row, those values are used again right after
    // they are made, not a whole tile later (which would hold them all in
    // registers at once and spill).
    const Stmt compute = s.stride_w == 2 && d.unroll >= 2 ? tile.compute_by_rows(taps, product, write)
                                                           : tile.compute(taps, product, write);
    ir::Program p;
    p.name = name();
    p.params = params;
    p.body = planes.wrap(tiles.wrap(compute));
    p.threads = t.cpu.threads;
    return p;
  }

  // The plane holds every row and column whole tiles read (the last tiles'
  // extra outputs read zeros).
  static int64_t plane_rows(const Conv2dShape& s, const Rows& d) {
    const int64_t rows = ceil_div(s.out_h(), d.tile_y) * d.tile_y;
    return std::max(s.pad_top + s.h, (rows - 1) * s.stride_h + (s.r - 1) * s.dilation_h + 1);
  }
  static int64_t plane_cols(const Conv2dShape& s, const Rows& d) {
    const int64_t cols = ceil_div(s.out_w(), d.cols()) * d.cols();
    return cols + (s.s - 1) * s.dilation_w / s.stride_w + 1;
  }
  static int64_t plane_floats(const Conv2dShape& s, const Rows& d) {
    return plane_rows(s, d) * s.stride_w * plane_cols(s, d);
  }
};

}  // namespace

const Template& depthwise_conv2d_nchw_cpu_template() {
  static const DepthwiseConv2dNchw t;
  return t;
}

}  // namespace ktune
