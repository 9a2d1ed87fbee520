// GPU direct convolution templates (CUDA): conv2d and depthwise_conv2d, NCHW.
//
// A thread block computes BK output channels x BP output rows x BQ output
// columns of one image (blockIdx.z = image x channel block, y = row block,
// x = column block). The axes are split AutoTVM-style into
//   tile_k = [grid_k, VK, TK, RK], tile_p = [grid_p, TP, RP], tile_q = [grid_q, VQ, TQ, RQ]:
// TK x TP x TQ threads, each computing a register tile of (VK*RK) channels x
// RP rows x (VQ*RQ) columns made of "virtual thread" sub-tiles (sub-tile v
// of a thread sits v * TK*RK channels or v * TQ*RQ columns further on, so
// VK, VQ > 1 interleave the threads' channels and columns: coalesced stores,
// fewer bank conflicts). conv2d walks the input channels in chunks
// (tile_c = [chunks, CI]): for each chunk the threads stage the input patch
// the block reads (CI channels, its rows and columns with the halo, zeros for
// padding) and the weights of its BK channels in shared memory, synchronize,
// accumulate, synchronize (the weights `vec` floats at a time where a
// filter chunk's rows are aligned to it). depthwise stages its channels' patch and weights
// once. unroll unrolls the kernel window loops; auto_unroll_max_step and
// unroll_explicit (templates::add_unroll_knobs) the rest. check() keeps
// configs within the device's limits.
#include <algorithm>

#include "schedule_space/error.h"
#include "schedule_space/templates/common.h"
#include "schedule_space/templates/templates.h"

namespace ktune {

namespace {

using namespace ir;

struct Params {
  int64_t gk, vk, tk, rk, gp, tp, rp, gq, vq, tq, rq, co, ci, vec;
  bool unroll;
  int64_t bk() const { return vk * tk * rk; }
  int64_t bp() const { return tp * rp; }
  int64_t bq() const { return vq * tq * rq; }
  int64_t threads() const { return tk * tp * tq; }
  int64_t registers() const { return vk * rk * rp * vq * rq + vk * rk + rp * vq * rq + 24; }
};

std::vector<int64_t> factors(const ConfigSpace& space, const Config& c, const char* name) {
  const size_t i = space.knob_index(name);
  return static_cast<const SplitKnob&>(space.knob(i)).factors(c.choices[i]);
}

class ConvCudaTemplate : public Template {
 public:
  ConvCudaTemplate(std::string name, bool depthwise) : name_(std::move(name)), depthwise_(depthwise) {}
  std::string name() const override { return name_; }
  int version() const override { return 3; }
  OpKind op() const override { return depthwise_ ? OpKind::kDepthwiseConv2d : OpKind::kConv2d; }
  TargetKind target_kind() const override { return TargetKind::kCuda; }

  ConfigSpace space(const Workload& w, const Target&) const override {
    if (auto why = unsupported(w)) throw Error(*why);
    const Conv2dShape& s = w.conv2d();
    auto policy = [](int64_t extent, int64_t max_inner) {
      SplitPolicy p;
      p.power_of_two = (extent & (extent - 1)) == 0;
      p.max_innermost = max_inner;
      return p;
    };
    ConfigSpace sp;
    sp.add_split("tile_k", s.k, 4, policy(s.k, 8));
    sp.add_split("tile_p", s.out_h(), 3, policy(s.out_h(), 4));
    sp.add_split("tile_q", s.out_w(), 4, policy(s.out_w(), 4));
    sp.add_split("tile_c", depthwise_ ? 1 : s.c, 2, policy(depthwise_ ? 1 : s.c, 16));
    // Vector loads of the weights: widths a filter's rows (C*R*S floats) allow.
    std::vector<int64_t> vec = {1};
    for (int64_t w : {2, 4}) {
      if ((depthwise_ ? 1 : s.c) * s.r * s.s % w == 0) vec.push_back(w);
    }
    sp.add_choice("vec", vec);
    sp.add_choice("unroll", {0, 1});
    templates::add_unroll_knobs(sp);
    return sp;
  }

  Params params(const ConfigSpace& space, const Config& c) const {
    const auto k = factors(space, c, "tile_k"), p = factors(space, c, "tile_p"), q = factors(space, c, "tile_q"),
               ch = factors(space, c, "tile_c");
    return Params{k[0], k[1], k[2], k[3], p[0], p[1], p[2], q[0], q[1], q[2], q[3], ch[0], ch[1],
                  space.value(c, "vec"), space.value(c, "unroll") == 1};
  }

  // The width of the weight loads: the config's where a chunk's filter rows
  // (WC*R*S floats) are a multiple of it, else scalar.
  int64_t weight_vector_width(const Conv2dShape& s, const Params& p) const {
    return (depthwise_ ? 1 : p.ci) * s.r * s.s % p.vec == 0 ? p.vec : 1;
  }

  // Input rows and columns one block reads, and the channels of its patch.
  static int64_t patch_rows(const Conv2dShape& s, const Params& p) { return (p.bp() - 1) * s.stride_h + (s.r - 1) * s.dilation_h + 1; }
  static int64_t patch_cols(const Conv2dShape& s, const Params& p) { return (p.bq() - 1) * s.stride_w + (s.s - 1) * s.dilation_w + 1; }
  int64_t patch_channels(const Conv2dShape& s, const Params& p) const { return depthwise_ ? p.bk() / s.multiplier : p.ci; }
  int64_t shared_bytes(const Conv2dShape& s, const Params& p) const {
    const int64_t input = patch_channels(s, p) * patch_rows(s, p) * patch_cols(s, p);
    const int64_t weights = p.bk() * (depthwise_ ? 1 : p.ci) * s.r * s.s;
    return (input + weights) * 4;
  }

  std::optional<std::string> check(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) const override {
    if (auto why = unsupported(w)) return why;
    if (t.kind != TargetKind::kCuda) return name_ + " needs a CUDA target";
    const Conv2dShape& s = w.conv2d();
    const Params p = params(space, c);
    if (p.tk > 64) return "more than 64 threads along the channels";
    if (p.vk * p.rk > 16 || p.vq * p.rq > 16) return "a thread's register tile is over 16 channels or columns";
    if (depthwise_ && p.bk() % s.multiplier != 0) return "a channel block must hold whole channel groups";
    if (auto why = templates::check_gpu_block(t.cuda, p.threads(), shared_bytes(s, p), p.registers())) return why;
    if (s.n * p.gk > 65535 || p.gp > 65535) return "grid too large";
    return std::nullopt;
  }

  std::vector<Config> seed_configs(const Workload& w, const Target& t, const ConfigSpace& space) const override {
    // About 8 channels x 4 rows x 8 columns of threads, 2 x 2 register tiles
    // (interleaved as virtual threads, or contiguous), 8-channel chunks.
    std::vector<Config> out;
    std::vector<int64_t> choices(space.num_knobs(), 0);
    choices[space.knob_index("tile_p")] = templates::nearest_split_choice(space, "tile_p", {4, 1});
    choices[space.knob_index("tile_c")] = templates::nearest_split_choice(space, "tile_c", {8});
    choices[space.knob_index("unroll")] = 1;
    choices[space.knob_index("vec")] = space.knob(space.knob_index("vec")).size() - 1;  // the widest
    for (bool interleave : {true, false}) {
      const std::vector<double> k = interleave ? std::vector<double>{2, 8, 1} : std::vector<double>{1, 8, 2};
      const std::vector<double> q = interleave ? std::vector<double>{2, 8, 1} : std::vector<double>{1, 8, 2};
      choices[space.knob_index("tile_k")] = templates::nearest_split_choice(space, "tile_k", k);
      choices[space.knob_index("tile_q")] = templates::nearest_split_choice(space, "tile_q", q);
      Config c = space.get(space.index_of(choices));
      if (!check(w, t, space, c) &&
          std::none_of(out.begin(), out.end(), [&](const Config& o) { return o.index == c.index; })) {
        out.push_back(c);
      }
    }
    return out;
  }

  Program instantiate(const Workload& w, const Target& t, const ConfigSpace& space, const Config& c) const override {
    if (auto why = check(w, t, space, c)) throw Error(name_ + ": invalid config: " + *why);
    const Conv2dShape& s = w.conv2d();
    const Params p = params(space, c);
    const int64_t BK = p.bk(), BP = p.bp(), BQ = p.bq(), NT = p.threads();
    const int64_t IH = patch_rows(s, p), IW = patch_cols(s, p), PC = patch_channels(s, p);
    const int64_t WC = depthwise_ ? 1 : p.ci;  // weight channels per output channel in a chunk
    Buffer data = make_buffer("data", {s.n, s.c, s.h, s.w});
    // The filters as rows of C*R*S floats, the shared copy as rows of WC*R*S:
    // a chunk's slice of a row is contiguous, so it loads as vectors.
    const int64_t RS = s.r * s.s;
    Buffer weight = make_buffer("weight", {s.k, (depthwise_ ? 1 : s.c) * RS});
    Buffer out = make_buffer("out", {s.n, s.k, s.out_h(), s.out_w()});
    Buffer is = make_buffer("Is", {PC, IH, IW}, Scope::kShared);
    Buffer ws = make_buffer("Ws", {BK, WC * RS}, Scope::kShared);
    Buffer acc = make_buffer("acc", {p.vk, p.rk, p.rp, p.vq, p.rq}, Scope::kRegister);
    const Expr bz = var("bz"), by = var("by"), bx = var("bx"), tz = var("tz"), ty = var("ty"), tx = var("tx");
    const Expr n = floordiv(bz, int_imm(p.gk)), kb = floormod(bz, int_imm(p.gk));
    const Expr tid = (tz * int_imm(p.tp) + ty) * int_imm(p.tq) + tx;
    const Expr vk = var("vk"), ik = var("ik"), ip = var("ip"), vq = var("vq"), iq = var("iq");
    const Expr co = var("co"), ci = var("ci"), r = var("r"), q = var("q");
    // Channel, row and column in the block's tile of accumulator [vk][ik][ip][vq][iq].
    const Expr kloc = vk * int_imm(p.tk * p.rk) + tz * int_imm(p.rk) + ik;
    const Expr ploc = ty * int_imm(p.rp) + ip;
    const Expr qloc = vq * int_imm(p.tq * p.rq) + tx * int_imm(p.rq) + iq;
    auto each_acc = [&](Stmt body) {
      return for_loop("vk", p.vk, LoopKind::kUnrolled,
                      for_loop("ik", p.rk, LoopKind::kUnrolled,
                               for_loop("ip", p.rp, LoopKind::kUnrolled,
                                        for_loop("vq", p.vq, LoopKind::kUnrolled,
                                                 for_loop("iq", p.rq, LoopKind::kUnrolled, body)))));
    };
    const std::vector<Expr> acc_at = {vk, ik, ip, vq, iq};
    const Expr row0 = by * int_imm(BP * s.stride_h) - int_imm(s.pad_top);
    const Expr col0 = bx * int_imm(BQ * s.stride_w) - int_imm(s.pad_left);
    const Expr chan0 = depthwise_ ? kb * int_imm(PC) : co * int_imm(p.ci);

    Stmt load_in = templates::cooperative_copy("li", is->shape, NT, tid, false, [&](const std::vector<Expr>& i) {
      const Expr gr = row0 + i[1], gc = col0 + i[2];
      const Expr inside = logical_and(logical_and(le(int_imm(0), gr), lt(gr, int_imm(s.h))),
                                      logical_and(le(int_imm(0), gc), lt(gc, int_imm(s.w))));
      return store(is, i, select(inside, load(data, {n, chan0 + i[0], gr, gc}), float_imm(0.0f)));
    });
    Stmt load_w = templates::cooperative_copy(
        "lw", ws->shape, NT, tid, false,
        [&](const std::vector<Expr>& i) {
          const Expr from = depthwise_ ? i[1] : co * int_imm(p.ci * RS) + i[1];
          return store(ws, i, load(weight, {kb * int_imm(BK) + i[0], from}));
        },
        weight_vector_width(s, p));
    const LoopKind window = p.unroll ? LoopKind::kUnrolled : LoopKind::kSerial;
    const Expr in_c = depthwise_ ? floordiv(kloc, int_imm(s.multiplier)) : ci;
    const Expr in_r = ploc * int_imm(s.stride_h) + r * int_imm(s.dilation_h);
    const Expr in_q = qloc * int_imm(s.stride_w) + q * int_imm(s.dilation_w);
    Stmt fma = each_acc(accumulate(acc, acc_at,
                                   load(is, {in_c, in_r, in_q}) * load(ws, {kloc, ((depthwise_ ? int_imm(0) : ci) * int_imm(s.r) + r) * int_imm(s.s) + q})));
    Stmt window_loops = for_loop("r", s.r, window, for_loop("q", s.s, window, fma));
    Stmt compute = depthwise_ ? window_loops : for_loop("ci", p.ci, LoopKind::kSerial, window_loops);
    Stmt chunk = seq({load_in, load_w, barrier(), compute, barrier()});
    Stmt reduce = depthwise_ ? chunk : for_loop("co", p.co, LoopKind::kSerial, chunk);
    Stmt init = each_acc(store(acc, acc_at, float_imm(0.0f)));
    Stmt write = each_acc(store(out, {n, kb * int_imm(BK) + kloc, by * int_imm(BP) + ploc, bx * int_imm(BQ) + qloc},
                                load(acc, acc_at)));
    Stmt body = allocate(acc, seq({init, reduce, write}));
    body = allocate(is, allocate(ws, body));
    body = for_loop("tx", p.tq, LoopKind::kThreadX, body);
    body = for_loop("ty", p.tp, LoopKind::kThreadY, body);
    body = for_loop("tz", p.tk, LoopKind::kThreadZ, body);
    body = for_loop("bx", p.gq, LoopKind::kBlockX, body);
    body = for_loop("by", p.gp, LoopKind::kBlockY, body);
    body = for_loop("bz", s.n * p.gk, LoopKind::kBlockZ, body);
    Program prog;
    prog.name = name_;
    prog.params = {data, weight, out};
    prog.body = body;
    templates::apply_unroll_knobs(space, c, prog);
    return prog;
  }

 private:
  std::string name_;
  bool depthwise_;
};

}  // namespace

const Template& conv2d_cuda_template() {
  static const ConvCudaTemplate t("conv2d_cuda_direct", false);
  return t;
}
const Template& depthwise_conv2d_cuda_template() {
  static const ConvCudaTemplate t("depthwise_conv2d_cuda_direct", true);
  return t;
}

}  // namespace ktune
