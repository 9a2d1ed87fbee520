// GPU GEMM template for matmul, dense and batch_matmul (CUDA).
//
// Each thread block computes a BM x BN tile of C (blockIdx.y, blockIdx.x;
// blockIdx.z the batch), its TY x TX threads a TM x TN register tile each:
//   tile_m = [grid_m, TY, TM], tile_n = [grid_n, TX, TN], tile_k = [k_outer, BK].
// For every k block the threads load the BM x BK slice of A and the BK x BN
// slice of B into shared memory together (each thread every NT-th element,
// consecutive threads on consecutive addresses of the global operand),
// synchronize, accumulate from shared memory into registers, synchronize.
// Knobs also choose whether a thread's rows and columns are contiguous or
// interleaved with its neighbours' (layout: coalesced stores and fewer
// shared-memory bank conflicts when interleaved) and whether the BK loop is
// unrolled. check() keeps configs within the device's limits: threads per
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
  int64_t gm, ty, tm, gn, tx, tn, ko, bk;
  bool interleave, unroll_k;
  int64_t bm() const { return ty * tm; }
  int64_t bn() const { return tx * tn; }
  int64_t threads() const { return tx * ty; }
  int64_t shared_bytes() const { return (bm() * bk + bk * bn()) * 4; }
  // Accumulators, one row of A and one column of B in registers, plus
  // addressing: a rough lower bound of what the compiler needs.
  int64_t registers() const { return tm * tn + tm + tn + 24; }
};

Params params_of(const ConfigSpace& space, const Config& c) {
  auto split = [&](const char* name) {
    const auto& k = static_cast<const SplitKnob&>(space.knob(space.knob_index(name)));
    return k.factors(c.choices[space.knob_index(name)]);
  };
  const auto m = split("tile_m"), n = split("tile_n"), k = split("tile_k");
  Params p{m[0], m[1], m[2], n[0], n[1], n[2], k[0], k[1], space.value(c, "layout") == 1,
           space.value(c, "unroll_k") == 1};
  return p;
}

class GemmCudaTemplate : public Template {
 public:
  GemmCudaTemplate(std::string name, OpKind op) : name_(std::move(name)), op_(op) {}
  std::string name() const override { return name_; }
  int version() const override { return 1; }
  OpKind op() const override { return op_; }
  TargetKind target_kind() const override { return TargetKind::kCuda; }

  ConfigSpace space(const Workload& w, const Target&) const override {
    if (auto why = unsupported(w)) throw Error(*why);
    const Gemm g = gemm_of(w);
    ConfigSpace s;
    // Power-of-two thread and register tiles where the extent is one; any
    // exact factorization otherwise (n = 1000 needs 125 or 250 threads).
    auto tile = [](int64_t extent) {
      SplitPolicy p;
      p.power_of_two = (extent & (extent - 1)) == 0;
      p.max_innermost = 16;
      return p;
    };
    s.add_split("tile_m", g.m, 3, tile(g.m));
    s.add_split("tile_n", g.n, 3, tile(g.n));
    SplitPolicy kb;
    kb.power_of_two = true;
    kb.max_innermost = 64;
    s.add_split("tile_k", g.k, 2, kb);
    s.add_choice("layout", {0, 1});
    s.add_choice("unroll_k", {0, 1});
    return s;
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = unsupported(w)) return why;
    if (t.kind != TargetKind::kCuda) return name_ + " needs a CUDA target";
    const Params p = params_of(space, c);
    if (p.ty > 64 || p.tx > 1024) return "thread tile shape out of range";
    if (auto why = templates::check_gpu_block(t.cuda, p.threads(), p.shared_bytes(), p.registers())) return why;
    const Gemm g = gemm_of(w);
    if (p.gm > 65535 || g.batch > 65535) return "grid too large";
    return std::nullopt;
  }

  std::vector<Config> seed_configs(const Workload& w, const Target& t, const ConfigSpace& space) const override {
    // 16 x 16 threads with 4 x 4 register tiles and BK 8 where the shape
    // allows, else the valid configs closest to that.
    std::vector<Config> out;
    std::vector<int64_t> choices(space.num_knobs(), 0);
    choices[space.knob_index("tile_m")] = templates::nearest_split_choice(space, "tile_m", {16, 4});
    choices[space.knob_index("tile_n")] = templates::nearest_split_choice(space, "tile_n", {16, 4});
    choices[space.knob_index("tile_k")] = templates::nearest_split_choice(space, "tile_k", {8});
    for (int64_t layout : {1, 0}) {
      choices[space.knob_index("layout")] = layout;
      choices[space.knob_index("unroll_k")] = 1;
      Config c = space.get(space.index_of(choices));
      if (!check(w, t, space, c)) out.push_back(c);
    }
    return out;
  }

  Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space, const Config& c) const override {
    if (auto why = check(w, t, space, c)) throw Error(name_ + ": invalid config: " + *why);
    const Gemm g = gemm_of(w);
    const Params p = params_of(space, c);
    const int64_t BM = p.bm(), BN = p.bn(), BK = p.bk, NT = p.threads();
    Buffer a = g.batched ? make_buffer("A", {g.batch, g.m, g.k}) : make_buffer(g.dense ? "X" : "A", {g.m, g.k});
    Buffer b = g.batched ? make_buffer("B", {g.batch, g.k, g.n})
                         : (g.dense ? make_buffer("W", {g.n, g.k}) : make_buffer("B", {g.k, g.n}));
    Buffer bias = g.bias ? make_buffer("bias", {g.n}) : nullptr;
    Buffer out = g.batched ? make_buffer("C", {g.batch, g.m, g.n}) : make_buffer(g.dense ? "Y" : "C", {g.m, g.n});
    Buffer as = make_buffer("As", {BM, BK}, Scope::kShared), bs = make_buffer("Bs", {BK, BN}, Scope::kShared);
    Buffer acc = make_buffer("acc", {p.tm, p.tn}, Scope::kRegister);
    const Expr bz = var("bz"), by = var("by"), bx = var("bx"), ty = var("ty"), tx = var("tx");
    const Expr tid = ty * int_imm(p.tx) + tx;
    const Expr i = var("i"), j = var("j"), ko = var("ko"), ki = var("ki");
    auto row = [&](Expr ii) { return p.interleave ? ii * int_imm(p.ty) + ty : ty * int_imm(p.tm) + ii; };
    auto col = [&](Expr jj) { return p.interleave ? jj * int_imm(p.tx) + tx : tx * int_imm(p.tn) + jj; };
    auto global_a = [&](Expr r, Expr kk) {
      return g.batched ? load(a, {bz, r, kk}) : load(a, {r, kk});
    };
    auto global_b = [&](Expr kk, Expr cc) {
      if (g.batched) return load(b, {bz, kk, cc});
      return g.dense ? load(b, {cc, kk}) : load(b, {kk, cc});
    };
    Stmt load_a = templates::cooperative_copy("la", as, NT, tid, false, [&](const std::vector<Expr>& i) {
      return store(as, i, global_a(by * int_imm(BM) + i[0], ko * int_imm(BK) + i[1]));
    });
    // B's contiguous dimension is n (matmul) or k (dense: W[n][k]).
    Stmt load_b = templates::cooperative_copy("lb", bs, NT, tid, g.dense, [&](const std::vector<Expr>& i) {
      return store(bs, i, global_b(ko * int_imm(BK) + i[0], bx * int_imm(BN) + i[1]));
    });
    Stmt fma = for_loop("i", p.tm, LoopKind::kUnrolled,
                        for_loop("j", p.tn, LoopKind::kUnrolled,
                                 accumulate(acc, {i, j}, load(as, {row(i), ki}) * load(bs, {ki, col(j)}))));
    Stmt k_loop = for_loop(
        "ko", p.ko, LoopKind::kSerial,
        seq({load_a, load_b, barrier(), for_loop("ki", BK, p.unroll_k ? LoopKind::kUnrolled : LoopKind::kSerial, fma),
             barrier()}));
    Stmt init = for_loop("i", p.tm, LoopKind::kUnrolled,
                         for_loop("j", p.tn, LoopKind::kUnrolled, store(acc, {i, j}, float_imm(0.0f))));
    const Expr out_r = by * int_imm(BM) + row(i), out_c = bx * int_imm(BN) + col(j);
    Expr value = load(acc, {i, j});
    if (bias) value = value + load(bias, {out_c});
    Stmt write = for_loop("i", p.tm, LoopKind::kUnrolled,
                          for_loop("j", p.tn, LoopKind::kUnrolled,
                                   store(out, g.batched ? std::vector<Expr>{bz, out_r, out_c}
                                                        : std::vector<Expr>{out_r, out_c},
                                         value)));
    Stmt body = allocate(as, allocate(bs, allocate(acc, seq({init, k_loop, write}))));
    body = for_loop("tx", p.tx, LoopKind::kThreadX, body);
    body = for_loop("ty", p.ty, LoopKind::kThreadY, body);
    body = for_loop("bx", p.gn, LoopKind::kBlockX, body);
    body = for_loop("by", p.gm, LoopKind::kBlockY, body);
    if (g.batched) body = for_loop("bz", g.batch, LoopKind::kBlockZ, body);
    Program prog;
    prog.name = name_;
    prog.params = {a, b};
    if (bias) prog.params.push_back(bias);
    prog.params.push_back(out);
    prog.body = body;
    prog.threads = 1;
    (void)t;
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
