// Packed GEMM templates for CPUs: matmul, dense and batch_matmul.
//
// The three operators are one computation, C[b, i, j] = sum_k A[b, i, k] *
// B[b, k, j] (+ bias[j]), scheduled the way BLAS libraries do it (GotoBLAS /
// BLIS):
//   - B is packed into panels Bp[n/nr][k][nr], so the micro-kernel reads one
//     contiguous vector row of nr values per k step. For dense, B is the
//     constant weight Wᵀ and is packed once in Program::prepare (outside the
//     timed region, as a library user pre-packs weights); for matmul and
//     batch_matmul B is an activation, packed inside the timed body into a
//     workspace buffer (knob `pack`, 0 reads B in place);
//   - A can be packed too (knob `pack_a`), into row panels Ap[m/mr][k][mr]
//     inside the timed body: the mr broadcasts of a k step then read one
//     contiguous run instead of mr rows a whole row of A apart (which, for
//     power-of-two k, also alias in the L1 cache);
//   - an mr x nr register tile of accumulators (mr rows unrolled, nr columns
//     as nr/lanes vectors) lives in vector registers for the whole k block:
//     each k step is mr broadcasts of A times nr/lanes vectors of Bp, as
//     fused multiply-adds;
//   - m, n and k are split into three levels each (tile_m = [m0, m1, mr],
//     tile_n = [n0, n1, nr], tile_k = [k0, k1, ku]): the outer loops block
//     for the caches in the order of knob `order`, the middle loops m1, n1 in
//     the order of `inner_order`, k1 x ku is the micro-kernel's reduction with
//     ku steps unrolled;
//   - knob `parallel` fuses that many outermost loops into one parallel loop
//     (never one over k0, whose iterations accumulate into the same output).
// Odd shapes keep their vector code: n is padded to a multiple of the vector
// width in the packed panel (zeros) and the write-back of the last, partial
// column tile is guarded; m is padded (pad_for_tiling) so that exact splits
// offer useful tile heights, with padded rows reading a clamped row of A and
// never written.
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
  bool batched = false;   // batch_matmul: an outer batch loop
};

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

// Padded extents of m and n, and the vector width of n (see the file comment).
struct PaddedAxes {
  int64_t lanes, m_pad, n_pad;
};

PaddedAxes padded_axes(const Gemm& g, const Target& t) {
  const int64_t lanes = lanes_for(t, g.n);
  return {lanes, templates::pad_for_tiling(g.m, 4, 8), templates::round_up(g.n, lanes)};
}

// Tile heights worth offering: row count a register tile can have at best
// (one accumulator vector per row, one operand vector, one broadcast).
int64_t max_tile_rows(const Target& t) { return templates::vector_registers(t.cpu) - 2; }

// A config decoded into the facts instantiate() and check() need.
struct Plan {
  Gemm g;
  int64_t lanes = 0, m_pad = 0, n_pad = 0;
  SplitAxis tm, tn, tk;
  std::vector<std::string> outer;  // loop names, outermost first (b, then order, then inner_order)
  bool pack = true;    // B in panels
  bool pack_a = false;  // A in row panels
  int parallel = 0;
  int64_t mr() const { return tm.factors.back(); }
  int64_t nr() const { return tn.factors.back(); }
  int64_t ku() const { return tk.factors.back(); }
};

class GemmTemplate : public Template {
 public:
  GemmTemplate(std::string name, OpKind op) : name_(std::move(name)), op_(op) {}
  std::string name() const override { return name_; }
  int version() const override { return 1; }
  OpKind op() const override { return op_; }
  TargetKind target_kind() const override { return TargetKind::kCpu; }

  ConfigSpace space(const Workload& w, const Target& t) const override {
    const Gemm g = gemm_of(w, op_);
    const PaddedAxes axes = padded_axes(g, t);
    ConfigSpace s;
    s.add_split("tile_m", axes.m_pad, 3, {.max_innermost = max_tile_rows(t)});
    s.add_split("tile_n", axes.n_pad, 3,
                {.max_innermost = axes.lanes * ((templates::vector_registers(t.cpu) - 1) / 2),
                 .innermost_multiple_of = axes.lanes});
    s.add_split("tile_k", g.k, 3, {.max_innermost = kMaxUnrollK});
    s.add(ReorderKnob::all_permutations("order", {"m0", "n0", "k0"}));
    s.add_reorder("inner_order", {"m1", "n1"}, {{0, 1}, {1, 0}});
    if (!g.weight_b) s.add_choice("pack", {1, 0});
    s.add_choice("pack_a", {0, 1});
    std::vector<int64_t> parallel = {0};
    if (t.cpu.threads > 1) {
      parallel = g.batched ? std::vector<int64_t>{0, 1, 2, 3} : std::vector<int64_t>{0, 1, 2};
    }
    s.add_choice("parallel", parallel);
    return s;
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
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
    const PaddedAxes axes = padded_axes(p.g, t);
    p.lanes = axes.lanes, p.m_pad = axes.m_pad, p.n_pad = axes.n_pad;
    p.tm = {"m", space.split(c, "tile_m")};
    p.tn = {"n", space.split(c, "tile_n")};
    p.tk = {"k", space.split(c, "tile_k")};
    if (p.g.batched) p.outer.push_back("b");
    const std::vector<std::string> order = {"m0", "n0", "k0"};
    for (int i : space.order(c, "order")) p.outer.push_back(order.at(i));
    const std::vector<std::string> inner = {"m1", "n1"};
    for (int i : space.order(c, "inner_order")) p.outer.push_back(inner.at(i));
    p.pack = p.g.weight_b || space.value(c, "pack") != 0;
    p.pack_a = space.value(c, "pack_a") != 0;
    p.parallel = static_cast<int>(space.value(c, "parallel"));
    return p;
  }

  std::optional<std::string> validate(const Plan& p, const Target& t) const {
    if (auto why = templates::check_register_tile(t.cpu, p.mr(), p.nr(), p.lanes)) return why;
    if (!p.pack && p.n_pad != p.g.n) {
      return "pack=0 reads B in place, which needs n (" + std::to_string(p.g.n) +
             ") to be a multiple of the vector width " + std::to_string(p.lanes);
    }
    const int64_t fmas = p.ku() * p.mr() * (p.nr() / p.lanes);
    if (fmas > kMaxUnrolledFmas) {
      return "unrolled micro-kernel of " + std::to_string(fmas) + " vector multiply-adds exceeds " +
             std::to_string(kMaxUnrolledFmas);
    }
    for (int i = 0; i < p.parallel; ++i) {
      if (p.outer.at(i) == "k0" && p.tk.factor(0) > 1) {
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
    for (const TensorSpec& in : w.inputs()) prog.params.push_back(ir::make_buffer(in.name, in.shape));
    const TensorSpec out = w.output();
    prog.params.push_back(ir::make_buffer(out.name, out.shape));
    const Buffer a = prog.params[0], b = prog.params[1], c = prog.params.back();
    const Buffer bias = g.bias ? prog.params[2] : nullptr;

    // Operand access by (batch, row, reduction, column) for each operator's layout.
    auto load_a = [&](Expr bi, Expr row, Expr kk) {
      return g.batched ? ir::load(a, {bi, row, kk}) : ir::load(a, {row, kk});
    };
    auto load_b = [&](Expr bi, Expr kk, Expr col) {
      if (g.weight_b) return ir::load(b, {col, kk});  // dense: W[out, in]
      return g.batched ? ir::load(b, {bi, kk, col}) : ir::load(b, {kk, col});
    };
    auto c_index = [&](Expr bi, Expr row, Expr col) {
      return g.batched ? std::vector<Expr>{bi, row, col} : std::vector<Expr>{row, col};
    };

    // An operand packed in panels [batch][padded/width][k][width], zero past
    // `valid`: B by columns (width nr), A by rows (width mr).
    const LoopKind pack_kind = p.parallel > 0 ? LoopKind::kParallel : LoopKind::kSerial;
    auto pack_panels = [&](const std::string& name, bool prepared, int64_t padded, int64_t width,
                           int64_t valid, const std::function<Expr(Expr bi, Expr kk, Expr idx)>& source,
                           Buffer& packed) {
      std::vector<int64_t> shape = {padded / width, g.k, width};
      if (g.batched) shape.insert(shape.begin(), g.batch);
      packed = ir::make_buffer(name, shape, ir::Scope::kGlobal, prepared);
      prog.workspace.push_back(packed);
      const size_t off = g.batched ? 1 : 0;
      return templates::fill(
          packed, "p",
          [&](const std::vector<Expr>& i) {
            Expr bi = g.batched ? i[0] : ir::int_imm(0);
            Expr idx = i[off] * width + i[off + 2];
            Expr v = source(bi, i[off + 1], idx);
            if (padded == valid) return v;
            return ir::select(ir::lt(idx, ir::int_imm(valid)), v, ir::float_imm(0));
          },
          prepared ? LoopKind::kSerial : pack_kind);
    };
    const int64_t nr = p.nr(), mr = p.mr();
    Buffer bp, ap;
    const Stmt pack_b = p.pack ? pack_panels(g.weight_b ? "Wp" : "Bp", g.weight_b, p.n_pad, nr, g.n,
                                             load_b, bp)
                               : nullptr;
    const Stmt pack_a =
        p.pack_a ? pack_panels("Ap", false, p.m_pad, mr, g.m,
                               [&](Expr bi, Expr kk, Expr row) { return load_a(bi, row, kk); }, ap)
                 : nullptr;

    LoopNest outer;
    for (const std::string& loop : p.outer) {
      if (loop == "b") {
        outer.add("b", g.batch);
      } else {
        const SplitAxis& axis = loop[0] == 'm' ? p.tm : loop[0] == 'n' ? p.tn : p.tk;
        outer.add(loop, axis.factor(static_cast<size_t>(loop[1] - '0')));
      }
    }
    outer.fuse_parallel(p.parallel);
    LoopNest reduction;
    reduction.add("k1", p.tk.factor(1));
    reduction.add("k2", p.tk.factor(2), LoopKind::kUnrolled);

    const Expr bi = g.batched ? outer.var("b") : ir::int_imm(0);
    const Expr row0 = p.tm.index(outer, 2);  // first row of the register tile
    const Expr col0 = p.tn.index(outer, 2);  // first column of the register tile
    const Expr panel = outer.var("n0") * p.tn.factor(1) + outer.var("n1");
    const Expr kk = outer.var("k0") * p.tk.stride(1) + reduction.var("k1") * p.tk.stride(2) +
                    reduction.var("k2");
    // Padded rows compute on zeros (packed A) or on a copy of the last row;
    // they are never written.
    auto a_value = [&](Expr row, Expr kk_) {
      if (p.pack_a) {
        Expr panel_a = outer.var("m0") * p.tm.factor(1) + outer.var("m1");
        return ir::load(ap, g.batched ? std::vector<Expr>{bi, panel_a, kk_, row}
                                      : std::vector<Expr>{panel_a, kk_, row});
      }
      Expr r = row0 + row;
      return load_a(bi, p.m_pad == g.m ? r : ir::min(r, ir::int_imm(g.m - 1)), kk_);
    };

    RegisterTile tile("acc", mr, nr, p.lanes);
    auto product = [&](Expr row, Expr col) {
      Expr bv = p.pack ? ir::load(bp, g.batched ? std::vector<Expr>{bi, panel, kk, col}
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
    const Expr valid_rows = p.m_pad == g.m ? nullptr : ir::int_imm(g.m) - row0;
    const Expr valid_cols = p.n_pad == g.n ? nullptr : ir::int_imm(g.n) - col0;
    Stmt write_back = ir::if_then_else(ir::binary(ir::BinaryOp::kEQ, outer.var("k0"), ir::int_imm(0)),
                                       tile.write_back(first_store, valid_rows, valid_cols),
                                       tile.write_back(later_store, valid_rows, valid_cols));
    Stmt compute = outer.wrap(tile.compute(reduction, product, write_back));
    if (g.weight_b) {
      prog.prepare = pack_b;
      prog.body = ir::seq({pack_a, compute});
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

const Template& batch_matmul_cpu_template() {
  static const GemmTemplate t("batch_matmul_cpu_packed", OpKind::kBatchMatmul);
  return t;
}

}  // namespace ktune
