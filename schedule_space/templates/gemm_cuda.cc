// GPU GEMM template for matmul, dense and batch_matmul (CUDA).
//
// Each thread block computes a BM x BN tile of C (blockIdx.y, blockIdx.x;
// blockIdx.z the batch). The axes are split AutoTVM-style into
//   tile_m = [grid_m, VY, TY, TM], tile_n = [grid_n, VX, TX, TN]:
// TY x TX threads, each computing a (VY*TM) x (VX*TN) register tile made of
// VY x VX "virtual thread" sub-tiles of TM x TN (sub-tile v of a thread sits
// v * TY*TM rows further on, so VY > 1 interleaves the threads' rows: coalesced
// stores and fewer shared-memory bank conflicts), and the reduction into
//   tile_k = [k_outer, KT, KI]:
// for every k block of BK = KT*KI the threads load the BM x BK slice of A and
// the BK x BN slice of B into shared memory together (consecutive threads on
// consecutive addresses of the global operand, `vec` floats at a time where
// the operand's rows and the tile are aligned to it: float2/float4 loads),
// synchronize, accumulate from shared memory into registers, synchronize.
// KT > 1 splits the reduction across KT threads (threadIdx.z), each summing
// KI of every BK; their partial tiles meet in shared memory at the end and
// all threads of the block add them up and write C (the rfactor of small-M
// GEMMs like dense at batch 1, which has too few output tiles to fill a GPU
// otherwise). Unrolling: unroll_k unrolls the BK loop, and the
// auto_unroll_max_step / unroll_explicit knobs (templates::add_unroll_knobs)
// the rest. check() keeps configs within the device's limits: threads per
// block, static shared memory, an estimate of registers per thread and per
// block, and grid sizes; they never reach the compiler otherwise.
#include <algorithm>

#include "schedule_space/error.h"
#include "schedule_space/templates/common.h"
#include "schedule_space/templates/templates.h"

namespace ktune {

namespace {

using namespace ir;

struct Gemm {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool dense = false, bias = false, batched = false;
};

Gemm gemm_of(const Workload& w) {
  Gemm g;
  switch (w.op()) {
    case OpKind::kMatmul:
      g.m = w.matmul().m, g.n = w.matmul().n, g.k = w.matmul().k;
      break;
    case OpKind::kDense:
      g.m = w.dense().batch, g.n = w.dense().out, g.k = w.dense().in, g.dense = true, g.bias = w.dense().bias;
      break;
    case OpKind::kBatchMatmul:
      g.batch = w.batch_matmul().b, g.m = w.batch_matmul().m, g.n = w.batch_matmul().n, g.k = w.batch_matmul().k;
      g.batched = true;
      break;
    default:
      throw Error("gemm_cuda: not a GEMM: " + w.key());
  }
  return g;
}

// The chosen factors, by knob.
struct Params {
  int64_t gm, vy, ty, tm, gn, vx, tx, tn, ko, kt, ki, vec;
  bool unroll_k;
  int64_t rows() const { return vy * tm; }  // of a thread's register tile
  int64_t cols() const { return vx * tn; }
  int64_t bm() const { return vy * ty * tm; }
  int64_t bn() const { return vx * tx * tn; }
  int64_t bk() const { return kt * ki; }
  int64_t threads() const { return tx * ty * kt; }
  int64_t shared_bytes() const { return (bm() * bk() + bk() * bn() + (kt > 1 ? kt * bm() * bn() : 0)) * 4; }
  // Accumulators, one row of A and one column of B in registers, plus
  // addressing: a rough lower bound of what the compiler needs.
  int64_t registers() const { return rows() * cols() + rows() + cols() + 24; }
};

Params params_of(const ConfigSpace& space, const Config& c) {
  auto split = [&](const char* name) {
    const auto& k = static_cast<const SplitKnob&>(space.knob(space.knob_index(name)));
    return k.factors(c.choices[space.knob_index(name)]);
  };
  const auto m = split("tile_m"), n = split("tile_n"), k = split("tile_k");
  return Params{m[0], m[1], m[2], m[3], n[0], n[1], n[2], n[3], k[0], k[1], k[2],
                space.value(c, "vec"), space.value(c, "unroll_k") == 1};
}

// The vector width of the loads of A (and X) and of B (and W): the config's
// where the operand's rows and the shared tile's contiguous extent are
// multiples of it, else scalar.
int64_t vector_width_a(const Gemm& g, const Params& p) { return g.k % p.vec == 0 && p.bk() % p.vec == 0 ? p.vec : 1; }
int64_t vector_width_b(const Gemm& g, const Params& p) {
  if (g.dense) return vector_width_a(g, p);  // W[n][k]: contiguous along k
  return g.n % p.vec == 0 && p.bn() % p.vec == 0 ? p.vec : 1;
}

class GemmCudaTemplate : public Template {
 public:
  GemmCudaTemplate(std::string name, OpKind op) : name_(std::move(name)), op_(op) {}
  std::string name() const override { return name_; }
  int version() const override { return 2; }
  OpKind op() const override { return op_; }
  TargetKind target_kind() const override { return TargetKind::kCuda; }

  ConfigSpace space(const Workload& w, const Target&) const override {
    if (auto why = unsupported(w)) throw Error(*why);
    const Gemm g = gemm_of(w);
    ConfigSpace s;
    // Power-of-two thread and register tiles where the extent is one; any
    // exact factorization otherwise (n = 1000 needs 125 or 250 threads).
    auto tile = [](int64_t extent, int64_t max_inner) {
      SplitPolicy p;
      p.power_of_two = (extent & (extent - 1)) == 0;
      p.max_innermost = max_inner;
      return p;
    };
    s.add_split("tile_m", g.m, 4, tile(g.m, 16));
    s.add_split("tile_n", g.n, 4, tile(g.n, 16));
    s.add_split("tile_k", g.k, 3, tile(g.k, 64));
    // Vector loads: widths some operand's rows allow.
    std::vector<int64_t> vec = {1};
    for (int64_t w : {2, 4}) {
      if (g.k % w == 0 || (!g.dense && g.n % w == 0)) vec.push_back(w);
    }
    s.add_choice("vec", vec);
    s.add_choice("unroll_k", {0, 1});
    templates::add_unroll_knobs(s);
    return s;
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = unsupported(w)) return why;
    if (t.kind != TargetKind::kCuda) return name_ + " needs a CUDA target";
    const Params p = params_of(space, c);
    if (p.ty > 64 || p.tx > 1024) return "thread tile shape out of range";
    if (p.kt > 16) return "more than 16 threads split the reduction";
    if (p.rows() > 16 || p.cols() > 16) return "a thread's register tile is over 16 rows or columns";
    if (auto why = templates::check_gpu_block(t.cuda, p.threads(), p.shared_bytes(), p.registers())) return why;
    const Gemm g = gemm_of(w);
    if (p.gm > 65535 || g.batch > 65535) return "grid too large";
    return std::nullopt;
  }

  std::vector<Config> seed_configs(const Workload& w, const Target& t, const ConfigSpace& space) const override {
    // 16 x 16 threads with 4 x 4 register tiles (interleaved as 4 x 4 virtual
    // threads, or contiguous) and BK 8 where the shape allows, else the valid
    // configs closest to that; for a small M (a GEMV-like dense) also 32
    // columns of threads with the reduction split over 8 of them.
    const Gemm g = gemm_of(w);
    std::vector<Config> out;
    std::vector<int64_t> choices(space.num_knobs(), 0);
    const auto& vec = static_cast<const ChoiceKnob&>(space.knob(space.knob_index("vec")));
    choices[space.knob_index("vec")] = vec.size() - 1;  // the widest
    choices[space.knob_index("unroll_k")] = 1;
    auto add = [&](std::vector<double> m, std::vector<double> n, std::vector<double> k) {
      choices[space.knob_index("tile_m")] = templates::nearest_split_choice(space, "tile_m", m);
      choices[space.knob_index("tile_n")] = templates::nearest_split_choice(space, "tile_n", n);
      choices[space.knob_index("tile_k")] = templates::nearest_split_choice(space, "tile_k", k);
      Config c = space.get(space.index_of(choices));
      if (!check(w, t, space, c) &&
          std::none_of(out.begin(), out.end(), [&](const Config& o) { return o.index == c.index; })) {
        out.push_back(c);
      }
    };
    add({4, 16, 1}, {4, 16, 1}, {1, 8});
    add({1, 16, 4}, {1, 16, 4}, {1, 8});
    if (g.m <= 8) add({1, 1, 1}, {1, 32, 1}, {8, 4});
    return out;
  }

  Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space, const Config& c) const override {
    if (auto why = check(w, t, space, c)) throw Error(name_ + ": invalid config: " + *why);
    const Gemm g = gemm_of(w);
    const Params p = params_of(space, c);
    const int64_t BM = p.bm(), BN = p.bn(), BK = p.bk(), NT = p.threads();
    Buffer a = g.batched ? make_buffer("A", {g.batch, g.m, g.k}) : make_buffer(g.dense ? "X" : "A", {g.m, g.k});
    Buffer b = g.batched ? make_buffer("B", {g.batch, g.k, g.n})
                         : (g.dense ? make_buffer("W", {g.n, g.k}) : make_buffer("B", {g.k, g.n}));
    Buffer bias = g.bias ? make_buffer("bias", {g.n}) : nullptr;
    Buffer out = g.batched ? make_buffer("C", {g.batch, g.m, g.n}) : make_buffer(g.dense ? "Y" : "C", {g.m, g.n});
    Buffer as = make_buffer("As", {BM, BK}, Scope::kShared), bs = make_buffer("Bs", {BK, BN}, Scope::kShared);
    Buffer rs = p.kt > 1 ? make_buffer("Rs", {p.kt, BM, BN}, Scope::kShared) : nullptr;
    Buffer acc = make_buffer("acc", {p.vy, p.tm, p.vx, p.tn}, Scope::kRegister);
    const Expr bz = var("bz"), by = var("by"), bx = var("bx"), ty = var("ty"), tx = var("tx");
    const Expr tz = p.kt > 1 ? var("tz") : int_imm(0);  // which part of the reduction split
    const Expr tid = (tz * int_imm(p.ty) + ty) * int_imm(p.tx) + tx;
    const Expr vi = var("vi"), i = var("i"), vj = var("vj"), j = var("j"), ko = var("ko"), ki = var("ki");
    // Row and column in the block's tile of accumulator [vi][i][vj][j].
    const Expr row = vi * int_imm(p.ty * p.tm) + ty * int_imm(p.tm) + i;
    const Expr col = vj * int_imm(p.tx * p.tn) + tx * int_imm(p.tn) + j;
    auto each_acc = [&](Stmt body) {
      return for_loop("vi", p.vy, LoopKind::kUnrolled,
                      for_loop("i", p.tm, LoopKind::kUnrolled,
                               for_loop("vj", p.vx, LoopKind::kUnrolled, for_loop("j", p.tn, LoopKind::kUnrolled, body))));
    };
    auto global_a = [&](Expr r, Expr kk) {
      return g.batched ? load(a, {bz, r, kk}) : load(a, {r, kk});
    };
    auto global_b = [&](Expr kk, Expr cc) {
      if (g.batched) return load(b, {bz, kk, cc});
      return g.dense ? load(b, {cc, kk}) : load(b, {kk, cc});
    };
    Stmt load_a = templates::cooperative_copy(
        "la", as->shape, NT, tid, false,
        [&](const std::vector<Expr>& i) {
          return store(as, i, global_a(by * int_imm(BM) + i[0], ko * int_imm(BK) + i[1]));
        },
        vector_width_a(g, p));
    // B's contiguous dimension is n (matmul) or k (dense: W[n][k]).
    Stmt load_b = templates::cooperative_copy(
        "lb", bs->shape, NT, tid, g.dense,
        [&](const std::vector<Expr>& i) {
          return store(bs, i, global_b(ko * int_imm(BK) + i[0], bx * int_imm(BN) + i[1]));
        },
        vector_width_b(g, p));
    const Expr k_local = tz * int_imm(p.ki) + ki;
    Stmt fma = each_acc(accumulate(acc, {vi, i, vj, j}, load(as, {row, k_local}) * load(bs, {k_local, col})));
    Stmt k_loop = for_loop(
        "ko", p.ko, LoopKind::kSerial,
        seq({load_a, load_b, barrier(),
             for_loop("ki", p.ki, p.unroll_k ? LoopKind::kUnrolled : LoopKind::kSerial, fma), barrier()}));
    Stmt init = each_acc(store(acc, {vi, i, vj, j}, float_imm(0.0f)));
    auto out_at = [&](Expr r, Expr cc) {
      return g.batched ? std::vector<Expr>{bz, by * int_imm(BM) + r, bx * int_imm(BN) + cc}
                       : std::vector<Expr>{by * int_imm(BM) + r, bx * int_imm(BN) + cc};
    };
    auto with_bias = [&](Expr value, Expr cc) { return bias ? value + load(bias, {bx * int_imm(BN) + cc}) : value; };
    Stmt write;
    if (p.kt == 1) {
      write = each_acc(store(out, out_at(row, col), with_bias(load(acc, {vi, i, vj, j}), col)));
    } else {
      // The KT partial tiles to shared memory, then every thread of the
      // block sums some outputs' partials and writes them.
      Stmt partials = each_acc(store(rs, {tz, row, col}, load(acc, {vi, i, vj, j})));
      Stmt sum = templates::cooperative_copy("lo", {BM, BN}, NT, tid, false, [&](const std::vector<Expr>& e) {
        Expr total = load(rs, {int_imm(0), e[0], e[1]});
        for (int64_t z = 1; z < p.kt; ++z) total = total + load(rs, {int_imm(z), e[0], e[1]});
        return store(out, out_at(e[0], e[1]), with_bias(total, e[1]));
      });
      write = seq({partials, barrier(), sum});
    }
    Stmt body = allocate(acc, seq({init, k_loop, write}));
    if (rs) body = allocate(rs, body);
    body = allocate(as, allocate(bs, body));
    body = for_loop("tx", p.tx, LoopKind::kThreadX, body);
    body = for_loop("ty", p.ty, LoopKind::kThreadY, body);
    if (p.kt > 1) body = for_loop("tz", p.kt, LoopKind::kThreadZ, body);
    body = for_loop("bx", p.gn, LoopKind::kBlockX, body);
    body = for_loop("by", p.gm, LoopKind::kBlockY, body);
    if (g.batched) body = for_loop("bz", g.batch, LoopKind::kBlockZ, body);
    Program prog;
    prog.name = name_;
    prog.params = {a, b};
    if (bias) prog.params.push_back(bias);
    prog.params.push_back(out);
    prog.body = body;
    templates::apply_unroll_knobs(space, c, prog);
    return prog;
  }

 private:
  std::string name_;
  OpKind op_;
};

}  // namespace

const Template& matmul_cuda_template() {
  static const GemmCudaTemplate t("matmul_cuda_tiled", OpKind::kMatmul);
  return t;
}
const Template& dense_cuda_template() {
  static const GemmCudaTemplate t("dense_cuda_tiled", OpKind::kDense);
  return t;
}
const Template& batch_matmul_cuda_template() {
  static const GemmCudaTemplate t("batch_matmul_cuda_tiled", OpKind::kBatchMatmul);
  return t;
}

}  // namespace ktune
