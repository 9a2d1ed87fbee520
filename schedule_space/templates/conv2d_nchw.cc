// conv2d for CPUs straight in NCHW, vectorized along the output rows: the
// template for convolutions with few input channels (a network's first
// layer, c = 3; narrow pointwise layers).
//
// The channel-blocked template (conv2d.cc) vectorizes over output channels
// and broadcasts input pixels. With few input channels each output element
// takes only c * r * s multiply-adds (27 for a 3x3 stem), so writing its
// register tiles to the NCHW output element by element, and packing the
// whole input into blocks first, cost as much as the arithmetic. Here a
// register tile is tile_k output channels x tile_y output rows x tile_x
// vectors of output columns: for every (channel, tap) one vector load of
// input per row and vector, one broadcast weight per output channel, and the
// output is stored in whole vectors along its rows, where NCHW is
// contiguous. Each parallel iteration takes a band of output rows: it copies
// the input rows the band reads, for every input channel, padded with zeros
// and with the columns split by phase of the stride (as the depthwise NCHW
// template does: every tap's columns are then contiguous for any stride)
// into a stack buffer that stays in cache, and computes all output channels
// of the band from it.
#include <algorithm>
#include <cmath>
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

// Input channels below this: the channel-blocked template cannot fill a
// vector with them; this template is offered.
constexpr int64_t kFewChannels = 16;

struct Schedule {
  int64_t tile_k = 1, tile_y = 1, tile_x = 1, vec = 1;
  int64_t band = 1;    // register tiles (of tile_y rows) per band of output rows
  int64_t unroll = 0;  // innermost of the (c, r, s) loops unrolled
  bool k_outer = true;  // in a band: output-channel blocks outside the tiles
  bool parallel = false;
  int64_t cols() const { return tile_x * vec; }
  int64_t band_rows() const { return band * tile_y; }
  int64_t accumulators() const { return tile_k * tile_y * tile_x; }
};

class Conv2dNchw : public Template {
 public:
  std::string name() const override { return "conv2d_cpu_nchw"; }
  int version() const override { return 1; }
  OpKind op() const override { return OpKind::kConv2d; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  std::optional<std::string> unsupported(const Workload& w) const override {
    if (w.op() != OpKind::kConv2d) return "not a conv2d";
    if (w.conv2d().c >= kFewChannels) {
      return "for convolutions with fewer than " + std::to_string(kFewChannels) + " input channels";
    }
    return std::nullopt;
  }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    if (auto why = templates::check_cpu_op(name(), op(), w, t)) throw Error(*why);
    if (auto why = unsupported(w)) throw Error(name() + ": " + *why);
    const Conv2dShape& s = w.conv2d();
    ConfigSpace space;
    std::vector<int64_t> ks;
    for (int64_t k = 1; k <= std::min<int64_t>(s.k, 16); ++k) {
      if (s.k % k == 0) ks.push_back(k);
    }
    std::vector<int64_t> rows;
    for (int64_t y = 1; y <= std::min<int64_t>(s.out_h(), 4); ++y) rows.push_back(y);
    std::vector<int64_t> widths = templates::vector_width_choices(t.cpu, std::max(1, t.cpu.vector_lanes));
    if (widths.size() > 2) widths.resize(2);
    space.add_choice("tile_k", ks);
    space.add_choice("tile_y", rows);
    space.add_choice("tile_x", {1, 2, 3, 4});
    space.add_choice("vec", widths);
    space.add_choice("band", {1, 2, 4, 8, 16});
    space.add_choice("k_outer", {1, 0});
    space.add_choice("unroll", {0, 1, 2, 3});
    space.add_choice("parallel", t.cpu.threads > 1 ? std::vector<int64_t>{1, 0} : std::vector<int64_t>{0});
    return space;
  }

  // Tiles that fill most of the vector registers (accumulators, the row's
  // input vectors, a broadcast), both operands reused (several channels per
  // input vector, several vectors per broadcast weight), bands that give
  // every thread several, the kernel columns unrolled.
  std::vector<Config> seed_configs(const Workload& w, const Target& t, const ConfigSpace& space) const override {
    const Conv2dShape& s = w.conv2d();
    templates::SeedList seeds(w, t, space, *this);
    const int64_t lanes = std::max(1, t.cpu.vector_lanes);
    const int64_t threads = std::max(1, t.cpu.threads);
    const int64_t registers = templates::vector_registers(t.cpu);
    struct Tile {
      int64_t k, y, x;
    };
    std::vector<Tile> tiles;
    for (int64_t x = 1; x <= 4; ++x) {
      for (int64_t y = 1; y <= std::min<int64_t>(2, s.out_h()); ++y) {
        for (int64_t k = 1; k <= std::min<int64_t>(16, s.k); ++k) {
          if (s.k % k == 0 && k * y * x + x + 1 <= registers) tiles.push_back({k, y, x});
        }
      }
    }
    // Accumulators that do useful work: a tile's columns past the row's end
    // (and rows past the image's) are computed for nothing.
    auto useful = [&](const Tile& a) {
      const double cols = static_cast<double>(a.x * lanes), rows = static_cast<double>(a.y);
      const double used = s.out_w() / (std::ceil(s.out_w() / cols) * cols) * s.out_h() / (std::ceil(s.out_h() / rows) * rows);
      return static_cast<double>(a.k * a.y * a.x) * used;
    };
    auto reuse = [](const Tile& a) { return std::min(a.k, a.y * a.x); };
    std::stable_sort(tiles.begin(), tiles.end(), [&](const Tile& a, const Tile& b) {
      const double ua = useful(a), ub = useful(b);
      return std::abs(ua - ub) > 0.5 ? ua > ub : reuse(a) > reuse(b);
    });
    int64_t band = 8;
    while (band > 1 && threads > 1 && ceil_div(s.out_h(), band) < 4 * threads) band /= 2;
    for (size_t i = 0; i < tiles.size() && i < 5; ++i) {
      seeds.add("tile_k=" + std::to_string(tiles[i].k) + " tile_y=" + std::to_string(tiles[i].y) +
                " tile_x=" + std::to_string(tiles[i].x) + " vec=" + std::to_string(lanes) +
                " band=" + std::to_string(band) + " k_outer=1 unroll=1 parallel=" + (threads > 1 ? "1" : "0"));
    }
    return seeds.take();
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = templates::check_cpu_op(name(), op(), w, t)) return why;
    if (auto why = unsupported(w)) return why;
    const Conv2dShape& s = w.conv2d();
    const Schedule d = decode(space, c);
    const int64_t registers = templates::vector_registers(t.cpu);
    if (d.accumulators() + d.tile_x + 1 > registers) {
      return "register tile of " + std::to_string(d.tile_k) + " channels x " + std::to_string(d.tile_y) + " rows x " +
             std::to_string(d.tile_x) + " vectors needs " + std::to_string(d.accumulators() + d.tile_x + 1) +
             " vector registers; " + t.cpu.isa + " has " + std::to_string(registers);
    }
    const int64_t unrolled = d.unroll == 0 ? 1 : d.unroll == 1 ? s.s : d.unroll == 2 ? s.r * s.s : s.c * s.r * s.s;
    if (unrolled * d.accumulators() > 1024) return "unrolling the reduction emits over 1024 multiply-adds";
    if (band_floats(s, d) > (int64_t{1} << 18)) return "the band of input rows is over 1 MiB";
    return std::nullopt;
  }

  ir::Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space,
                          const Config& c) const override {
    if (auto why = check(w, t, space, c)) {
      throw Error("cannot instantiate " + name() + " for " + w.key() + " with " + space.describe(c) + ": " + *why);
    }
    const Conv2dShape& s = w.conv2d();
    const Schedule d = decode(space, c);
    const std::vector<Buffer> params = templates::operator_buffers(w);
    const Buffer &data = params.at(0), &weight = params.at(1), &out = params.at(2);
    const int64_t oh = s.out_h(), ow = s.out_w(), st = s.stride_w;
    const int64_t bands = ceil_div(oh, d.band_rows()), tiles_x = ceil_div(ow, d.cols());
    const int64_t rows = in_rows(s, d), wp = in_cols(s, d);
    const Buffer buf = ir::make_buffer("band_in", {s.c, rows, st, wp}, ir::Scope::kStack);

    LoopNest outer;
    outer.add("n", s.n);
    outer.add("b", bands);
    outer.fuse_parallel(d.parallel ? 2 : 0);
    const Expr n = outer.var("n"), band_y0 = outer.var("b") * ir::int_imm(d.band_rows());
    // Input row of band row y: y + band_y0 * stride_h - pad_top.
    const Expr row0 = band_y0 * ir::int_imm(s.stride_h) + ir::int_imm(-s.pad_top);

    // The band's input, per channel and phase: the image rows it reads,
    // their columns inside the image copied and the padding columns zeroed;
    // rows outside the image zeroed whole.
    const templates::StridePhases phases{st, s.pad_left, s.w, wp};
    std::vector<Stmt> fills;
    for (int64_t p = 0; p < st; ++p) {
      const std::string q = std::to_string(p);
      const Expr cc = ir::var("cc" + q), y = ir::var("cy" + q), in_y = y + row0;
      auto put = [&](Expr x, Expr value) { return ir::store(buf, {cc, y, ir::int_imm(p), x}, value); };
      const Stmt row = ir::if_then_else(
          ir::logical_and(ir::le(ir::int_imm(0), in_y), ir::lt(in_y, ir::int_imm(s.h))),
          phases.fill_row(p, "c" + q, put, [&](Expr col) { return ir::load(data, {n, cc, in_y, col}); }),
          phases.fill_row(p, "c" + q, put, nullptr));
      fills.push_back(ir::for_loop("cc" + q, s.c, LoopKind::kSerial, ir::for_loop("cy" + q, rows, LoopKind::kSerial, row)));
    }

    // Register tiles: rows of a tile are (output row yy, output channel kk),
    // row index yy * tile_k + kk, so the rows past the image are a suffix.
    LoopNest tiles;
    if (d.k_outer) tiles.add("kb", s.k / d.tile_k);
    tiles.add("ty", d.band);
    tiles.add("tx", tiles_x);
    if (!d.k_outer) tiles.add("kb", s.k / d.tile_k);
    const Expr kb = tiles.var("kb"), y0 = tiles.var("ty") * ir::int_imm(d.tile_y);
    const Expr x0 = tiles.var("tx") * ir::int_imm(d.cols());
    tiles.guard("ty", ir::lt(band_y0 + y0, ir::int_imm(oh)));  // a last band's tiles past the image
    LoopNest red;
    red.add("c", s.c, d.unroll >= 3 ? LoopKind::kUnrolled : LoopKind::kSerial);
    red.add("r", s.r, d.unroll >= 2 ? LoopKind::kUnrolled : LoopKind::kSerial);
    red.add("s", s.s, d.unroll >= 1 ? LoopKind::kUnrolled : LoopKind::kSerial);
    const Expr ci = red.var("c"), r = red.var("r"), q = red.var("s");
    const Expr tap_col = q * ir::int_imm(s.dilation_w);  // padded column offset of tap q
    const Expr phase = phases.phase(tap_col), shift = phases.shift(tap_col);
    const RegisterTile tile("acc", d.tile_y * d.tile_k, d.cols(), d.vec);
    auto k_of = [&](Expr row) { return kb * ir::int_imm(d.tile_k) + ir::floormod(row, ir::int_imm(d.tile_k)); };
    auto y_of = [&](Expr row) { return y0 + ir::floordiv(row, ir::int_imm(d.tile_k)); };
    auto product = [&](Expr row, Expr col) {
      const Expr py = y_of(row) * ir::int_imm(s.stride_h) + r * ir::int_imm(s.dilation_h);
      return ir::load(buf, {ci, py, phase, x0 + col + shift}) * ir::load(weight, {k_of(row), ci, r, q});
    };
    const Expr valid_rows = oh % d.band_rows() == 0 && d.band_rows() % d.tile_y == 0
                                ? nullptr
                                : (ir::int_imm(oh) - band_y0 - y0) * ir::int_imm(d.tile_k);
    const Expr valid_cols = ow % d.cols() == 0 ? nullptr : ir::int_imm(ow) - x0;
    Stmt write = tile.write_back(
        [&](Expr row, Expr col, Expr value) {
          return ir::store(out, {n, k_of(row), band_y0 + y_of(row), x0 + col}, value);
        },
        valid_rows, valid_cols);
    Stmt compute = tiles.wrap(tile.compute(red, product, write));

    ir::Program p;
    p.name = name();
    p.params = params;
    p.body = outer.wrap(ir::allocate(buf, ir::seq({ir::seq(std::move(fills)), compute})));
    p.threads = t.cpu.threads;
    return p;
  }

 private:
  static Schedule decode(const ConfigSpace& space, const Config& c) {
    Schedule d;
    d.tile_k = space.value(c, "tile_k");
    d.tile_y = space.value(c, "tile_y");
    d.tile_x = space.value(c, "tile_x");
    d.vec = space.value(c, "vec");
    d.band = space.value(c, "band");
    d.k_outer = space.value(c, "k_outer") != 0;
    d.unroll = space.value(c, "unroll");
    d.parallel = space.value(c, "parallel") != 0;
    return d;
  }

  // Input rows a band reads (whole tiles; a last band's extra rows are zeros).
  static int64_t in_rows(const Conv2dShape& s, const Schedule& d) {
    return (d.band_rows() - 1) * s.stride_h + (s.r - 1) * s.dilation_h + 1;
  }
  // Columns per phase: every column whole tiles read.
  static int64_t in_cols(const Conv2dShape& s, const Schedule& d) {
    const int64_t cols = ceil_div(s.out_w(), d.cols()) * d.cols();
    return cols + (s.s - 1) * s.dilation_w / s.stride_w + 1;
  }
  static int64_t band_floats(const Conv2dShape& s, const Schedule& d) {
    return s.c * in_rows(s, d) * s.stride_w * in_cols(s, d);
  }
};

}  // namespace

const Template& conv2d_nchw_cpu_template() {
  static const Conv2dNchw t;
  return t;
}

}  // namespace ktune
