#include "schedule_space/templates/common.h"

#include <algorithm>
#include <cmath>

#include "schedule_space/error.h"
#include "schedule_space/unroll.h"

namespace ktune::templates {

using ir::Expr;
using ir::LoopKind;
using ir::Stmt;

int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool is_power_of_two(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

int64_t pad_for_tiling(int64_t extent, int64_t lo, int64_t hi) {
  if (extent <= hi) return extent;
  for (int64_t e = extent;; ++e) {
    for (int64_t d = lo; d <= hi; ++d) {
      if (e % d == 0) return e;
    }
  }
}

int64_t least_padded(int64_t extent, int64_t most, int64_t least, int64_t unit) {
  auto waste = [&](int64_t size) { return ceil_div(extent, size * unit) * size * unit - extent; };
  int64_t best = most;
  for (int64_t size = most; size >= least; --size) {
    if (waste(size) < waste(best)) best = size;
  }
  return best;
}

int64_t divisor_at_most(int64_t n, int64_t target) {
  for (int64_t d = std::min(n, std::max<int64_t>(target, 1)); d > 1; --d) {
    if (n % d == 0) return d;
  }
  return 1;
}

std::optional<std::string> check_cpu_op(const std::string& tmpl, OpKind want, const Workload& w, const Target& t) {
  if (w.op() != want) {
    return "template " + tmpl + " is for " + std::string(op_name(want)) + ", not " + w.key();
  }
  if (t.kind != TargetKind::kCpu) return "template " + tmpl + " is for CPU targets";
  return std::nullopt;
}

std::vector<ir::Buffer> operator_buffers(const Workload& w) {
  std::vector<ir::Buffer> out;
  for (const TensorSpec& in : w.inputs()) out.push_back(ir::make_buffer(in.name, in.shape));
  out.push_back(ir::make_buffer(w.output().name, w.output().shape));
  return out;
}

void SeedList::add(const std::string& text) {
  Config c;
  try {
    c = space_.parse(text);
  } catch (const Error&) {
    return;
  }
  if (tmpl_.check(w_, t_, space_, c)) return;
  for (const Config& seen : seeds_) {
    if (seen.index == c.index) return;
  }
  seeds_.push_back(std::move(c));
}

std::string factors_text(const std::vector<int64_t>& factors) {
  std::string s = "[";
  for (size_t i = 0; i < factors.size(); ++i) s += (i ? "," : "") + std::to_string(factors[i]);
  return s + "]";
}

int vector_registers(const CpuTarget& target) {
  return (target.isa == "avx512" || target.isa == "neon") ? 32 : 16;
}

std::vector<int64_t> vector_width_choices(const CpuTarget& target, int64_t extent) {
  std::vector<int64_t> widths;
  for (int64_t w = std::max(1, target.vector_lanes); w > 1; w /= 2) {
    if (is_power_of_two(w) && extent % w == 0) widths.push_back(w);
  }
  widths.push_back(1);
  return widths;
}

std::optional<std::string> check_register_tile(const CpuTarget& target, int64_t rows, int64_t cols,
                                               int64_t lanes) {
  if (!is_power_of_two(lanes)) {
    return "vector width " + std::to_string(lanes) + " is not a power of two";
  }
  if (cols % lanes != 0) {
    return "register tile width " + std::to_string(cols) + " is not a multiple of the vector width " +
           std::to_string(lanes);
  }
  const int64_t vectors = cols / lanes;
  const int64_t needed = rows * vectors + vectors + 1;
  if (needed > vector_registers(target)) {
    return "register tile " + std::to_string(rows) + "x" + std::to_string(cols) + " needs " +
           std::to_string(needed) + " vector registers; " + target.isa + " has " +
           std::to_string(vector_registers(target));
  }
  return std::nullopt;
}

// ---- LoopNest ----

void LoopNest::add(const std::string& var, int64_t extent, LoopKind kind) {
  if (extent <= 0) {
    throw Error("LoopNest: loop '" + var + "' has extent " + std::to_string(extent));
  }
  for (const Loop& l : loops_) {
    if (l.var == var) throw Error("LoopNest: loop variable '" + var + "' is added twice");
  }
  loops_.push_back({var, extent, kind, nullptr});
}

void LoopNest::guard(const std::string& var, Expr cond) {
  Loop& loop = const_cast<Loop&>(find(var));
  loop.guard = loop.guard ? ir::logical_and(loop.guard, cond) : std::move(cond);
}

void LoopNest::fuse_parallel(int count) {
  if (count < 0 || static_cast<size_t>(count) > loops_.size()) {
    throw Error("LoopNest: cannot fuse " + std::to_string(count) + " outermost loops of a nest of " +
                std::to_string(loops_.size()));
  }
  fused_ = count;
}

const LoopNest::Loop& LoopNest::find(const std::string& var) const {
  for (const Loop& l : loops_) {
    if (l.var == var) return l;
  }
  std::string known;
  for (const Loop& l : loops_) known += (known.empty() ? "" : ", ") + l.var;
  throw Error("LoopNest: no loop '" + var + "' (loops: " + known + ")");
}

int64_t LoopNest::extent(const std::string& var) const { return find(var).extent; }

ir::LoopKind LoopNest::kind(const std::string& var) const { return find(var).kind; }

namespace {

std::string fused_name(const std::vector<std::string>& vars) {
  std::string name;
  for (const std::string& v : vars) name += v + "_";
  return name + "fused";
}

}  // namespace

Expr LoopNest::var(const std::string& name) const {
  const Loop& loop = find(name);
  if (loop.extent == 1) return ir::int_imm(0);
  const size_t pos = static_cast<size_t>(&loop - loops_.data());
  if (fused_ <= 1 || pos >= static_cast<size_t>(fused_)) return ir::var(name);
  std::vector<std::string> names;
  int64_t inner = 1;  // product of the fused extents inside this loop
  for (size_t i = 0; i < static_cast<size_t>(fused_); ++i) {
    names.push_back(loops_[i].var);
    if (i > pos) inner *= loops_[i].extent;
  }
  Expr v = ir::floordiv(ir::var(fused_name(names)), ir::int_imm(inner));
  if (pos == 0) return v;
  return ir::floormod(v, ir::int_imm(loop.extent));
}

Stmt LoopNest::wrap(Stmt body) const {
  for (size_t i = loops_.size(); i-- > static_cast<size_t>(fused_);) {
    if (loops_[i].guard) body = ir::if_then_else(loops_[i].guard, body);
    if (loops_[i].extent == 1) continue;
    body = ir::for_loop(loops_[i].var, loops_[i].extent, loops_[i].kind, body);
  }
  if (fused_ == 1) {
    if (loops_[0].extent > 1) body = ir::for_loop(loops_[0].var, loops_[0].extent, LoopKind::kParallel, body);
  } else if (fused_ > 1) {
    std::vector<std::string> names;
    int64_t extent = 1;
    for (size_t i = 0; i < static_cast<size_t>(fused_); ++i) {
      names.push_back(loops_[i].var);
      extent *= loops_[i].extent;
    }
    if (extent > 1) body = ir::for_loop(fused_name(names), extent, LoopKind::kParallel, body);
  }
  return body;
}

// ---- SplitAxis ----

std::string SplitAxis::level(size_t i) const { return name + std::to_string(i); }

int64_t SplitAxis::stride(size_t i) const {
  int64_t s = 1;
  for (size_t j = i; j < factors.size(); ++j) s *= factors[j];
  return s;
}

Expr SplitAxis::index(const LoopNest& nest, int levels) const {
  const size_t n = levels < 0 ? factors.size() : static_cast<size_t>(levels);
  Expr sum = ir::int_imm(0);
  for (size_t i = 0; i < n; ++i) {
    if (factors[i] == 1) continue;
    sum = sum + nest.var(level(i)) * stride(i + 1);
  }
  return sum;
}

// ---- RegisterTile ----

RegisterTile::RegisterTile(const std::string& name, int64_t rows_, int64_t cols_, int64_t lanes_)
    : rows(rows_), cols(cols_), lanes(lanes_), prefix(name) {
  if (!is_power_of_two(lanes) || cols % lanes != 0) {
    throw Error("RegisterTile '" + name + "': width " + std::to_string(cols) +
                " must be a multiple of a power-of-two vector width (got " + std::to_string(lanes) +
                ")");
  }
  acc = ir::make_buffer(name, {rows, cols}, ir::Scope::kRegister);
}

Stmt loop_or_single(const std::string& var, int64_t extent, LoopKind kind,
                    const std::function<Stmt(Expr)>& body) {
  if (extent == 1) return body(ir::int_imm(0));
  return ir::for_loop(var, extent, kind, body(ir::var(var)));
}

Stmt RegisterTile::for_each_in_row(Expr row, const std::function<Stmt(Expr row, Expr col)>& f) const {
  return loop_or_single(prefix + "_jv", cols / lanes, LoopKind::kUnrolled, [&](Expr jv) {
    return loop_or_single(prefix + "_jl", lanes, LoopKind::kVectorized,
                          [&](Expr jl) { return f(row, jv * lanes + jl); });
  });
}

Stmt RegisterTile::for_each(const std::function<Stmt(Expr row, Expr col)>& f) const {
  return loop_or_single(prefix + "_i", rows, LoopKind::kUnrolled, [&](Expr row) { return for_each_in_row(row, f); });
}

Expr RegisterTile::value(Expr row, Expr col) const { return ir::load(acc, {row, col}); }

Stmt RegisterTile::zero() const {
  return for_each([&](Expr row, Expr col) { return ir::store(acc, {row, col}, ir::float_imm(0)); });
}

Stmt RegisterTile::accumulate(const std::function<Expr(Expr row, Expr col)>& f) const {
  return for_each([&](Expr row, Expr col) { return ir::accumulate(acc, {row, col}, f(row, col)); });
}

Stmt RegisterTile::write_back(const std::function<Stmt(Expr row, Expr col, Expr value)>& store,
                              Expr valid_rows, Expr valid_cols) const {
  auto row_body = [&](Expr row) -> Stmt {
    auto vector_row = loop_or_single(prefix + "_jv", cols / lanes, LoopKind::kUnrolled, [&](Expr jv) {
      return loop_or_single(prefix + "_jl", lanes, LoopKind::kVectorized, [&](Expr jl) {
        Expr col = jv * lanes + jl;
        return store(row, col, value(row, col));
      });
    });
    Stmt body = vector_row;
    if (valid_cols) {
      // Only the last tile of a padded axis is partial: its whole vectors are
      // still stored as vectors, the one cut by the edge element by element;
      // every full tile keeps its vector stores.
      Stmt partial = loop_or_single(prefix + "_jv", cols / lanes, LoopKind::kUnrolled, [&](Expr jv) {
        Stmt whole = loop_or_single(prefix + "_jl", lanes, LoopKind::kVectorized, [&](Expr jl) {
          Expr col = jv * lanes + jl;
          return store(row, col, value(row, col));
        });
        if (lanes == 1) return ir::if_then_else(ir::lt(jv, valid_cols), whole);
        Stmt cut = ir::for_loop(prefix + "_j", lanes, LoopKind::kSerial, [&] {
          Expr col = jv * lanes + ir::var(prefix + "_j");
          return ir::if_then_else(ir::lt(col, valid_cols), store(row, col, value(row, col)));
        }());
        return ir::if_then_else(ir::le((jv + 1) * lanes, valid_cols), whole, cut);
      });
      body = ir::if_then_else(ir::le(ir::int_imm(cols), valid_cols), vector_row, partial);
    }
    if (valid_rows) body = ir::if_then_else(ir::lt(row, valid_rows), body);
    return body;
  };
  return loop_or_single(prefix + "_i", rows, LoopKind::kUnrolled, row_body);
}

Stmt RegisterTile::compute(const LoopNest& reduction, const std::function<Expr(Expr row, Expr col)>& f,
                           Stmt write_back_stmt) const {
  return ir::allocate(acc, ir::seq({zero(), reduction.wrap(accumulate(f)), std::move(write_back_stmt)}));
}

Stmt RegisterTile::compute_by_rows(const LoopNest& reduction, const std::function<Expr(Expr row, Expr col)>& f,
                                   Stmt write_back_stmt) const {
  Stmt by_rows = loop_or_single(prefix + "_i", rows, LoopKind::kUnrolled, [&](Expr row) {
    return reduction.wrap(for_each_in_row(
        row, [&](Expr r, Expr col) { return ir::accumulate(acc, {r, col}, f(r, col)); }));
  });
  return ir::allocate(acc, ir::seq({zero(), by_rows, std::move(write_back_stmt)}));
}

// ---- stride phases ----

std::pair<int64_t, int64_t> StridePhases::inside(int64_t p) const {
  const int64_t lo = std::min(cols, std::max<int64_t>(0, ceil_div(pad_left - p, stride)));
  const int64_t hi = std::max(lo, std::min(cols, ceil_div(pad_left + width - p, stride)));
  return {lo, hi};
}

Expr StridePhases::image_col(const Expr& x, int64_t p) const {
  return x * ir::int_imm(stride) + ir::int_imm(p - pad_left);
}

Expr StridePhases::phase(const Expr& tap_col) const {
  return stride == 1 ? ir::int_imm(0) : ir::floormod(tap_col, ir::int_imm(stride));
}

Expr StridePhases::shift(const Expr& tap_col) const {
  return stride == 1 ? tap_col : ir::floordiv(tap_col, ir::int_imm(stride));
}

Stmt StridePhases::fill_row(int64_t p, const std::string& var_prefix,
                            const std::function<Stmt(Expr col, Expr value)>& store,
                            const std::function<Expr(Expr image_col)>& image) const {
  // Columns [x0, x1): copies or zeros.
  auto columns = [&](const std::string& var, int64_t x0, int64_t x1, bool copy) -> Stmt {
    if (x1 <= x0) return nullptr;
    const Expr x = ir::var(var) + x0;
    return ir::for_loop(var, x1 - x0, LoopKind::kSerial,
                        store(x, copy ? image(image_col(x, p)) : ir::float_imm(0.0f)));
  };
  if (!image) return columns(var_prefix + "xz", 0, cols, false);
  const auto [lo, hi] = inside(p);
  return ir::seq({columns(var_prefix + "xl", 0, lo, false), columns(var_prefix + "x", lo, hi, true),
                  columns(var_prefix + "xr", hi, cols, false)});
}

// ---- fill ----

namespace {

// How many of a parallel fill's outermost loops (their extents, outermost
// first) fuse into its parallel loop: up to the first that has more than one
// iteration (a batch-1 packing's batch loop alone would be no parallelism at
// all).
int parallel_fill_loops(const std::vector<int64_t>& extents) {
  size_t fused = 1;
  while (fused < extents.size() && extents[fused - 1] == 1) ++fused;
  return static_cast<int>(fused);
}

}  // namespace

Stmt fill(const ir::Buffer& dst, const std::string& prefix,
          const std::function<Expr(const std::vector<Expr>& index)>& value, LoopKind outer_kind) {
  std::vector<size_t> order(dst->shape.size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = d;
  return fill(dst, prefix, value, outer_kind, order);
}

Stmt fill(const ir::Buffer& dst, const std::string& prefix,
          const std::function<Expr(const std::vector<Expr>& index)>& value, LoopKind outer_kind,
          const std::vector<size_t>& loop_order) {
  std::vector<size_t> sorted = loop_order;
  std::sort(sorted.begin(), sorted.end());
  for (size_t d = 0; d < sorted.size(); ++d) {
    if (sorted.size() != dst->shape.size() || sorted[d] != d) {
      throw Error("fill of '" + dst->name + "': loop order is not a permutation of its " +
                  std::to_string(dst->shape.size()) + " dimensions");
    }
  }
  LoopNest nest;
  std::vector<int64_t> extents;
  for (size_t d : loop_order) {
    nest.add(prefix + std::to_string(d), dst->shape[d]);
    extents.push_back(dst->shape[d]);
  }
  if (outer_kind == LoopKind::kParallel && !extents.empty()) nest.fuse_parallel(parallel_fill_loops(extents));
  std::vector<Expr> index;
  for (size_t d = 0; d < dst->shape.size(); ++d) index.push_back(nest.var(prefix + std::to_string(d)));
  return nest.wrap(ir::store(dst, index, value(index)));
}

std::optional<Stmt> fill_transposed(const ir::Buffer& dst, const std::string& prefix,
                                    const std::function<Expr(const std::vector<Expr>& index)>& value,
                                    LoopKind outer_kind, int64_t lanes) {
  const size_t n = dst->shape.size();
  if (n < 2 || lanes < 4) return std::nullopt;
  const int64_t ks = dst->shape[n - 2], rs = dst->shape[n - 1];
  if (ks % lanes != 0 || 2 * rs < lanes || rs > 2 * lanes) return std::nullopt;
  LoopNest nest;
  const std::vector<int64_t> extents(dst->shape.begin(), dst->shape.end() - 2);
  for (size_t d = 0; d < extents.size(); ++d) nest.add(prefix + std::to_string(d), extents[d]);
  if (outer_kind == LoopKind::kParallel && !extents.empty()) nest.fuse_parallel(parallel_fill_loops(extents));
  nest.add(prefix + "kv", ks / lanes);
  std::vector<Expr> outer;
  for (size_t d = 0; d < extents.size(); ++d) outer.push_back(nest.var(prefix + std::to_string(d)));
  const Expr kl = ir::var(prefix + "kl"), r = ir::var(prefix + "r");
  const Expr k = nest.var(prefix + "kv") * lanes + kl;
  std::vector<Expr> at = outer;
  at.push_back(k);
  at.push_back(r);
  const ir::Buffer tile = ir::make_buffer(prefix + "t", {rs, lanes}, ir::Scope::kRegister);
  const Stmt load = ir::for_loop(prefix + "r", rs, LoopKind::kUnrolled,
                                 ir::for_loop(prefix + "kl", lanes, LoopKind::kVectorized,
                                              ir::store(tile, {r, kl}, value(at))));
  const Stmt write = ir::for_loop(prefix + "kl", lanes, LoopKind::kUnrolled,
                                  ir::for_loop(prefix + "r", rs, LoopKind::kUnrolled,
                                               ir::store(dst, at, ir::load(tile, {r, kl}))));
  return nest.wrap(ir::allocate(tile, ir::seq({load, write})));
}

int64_t nearest_split_choice(const ConfigSpace& space, const std::string& knob, const std::vector<double>& want) {
  const auto& k = static_cast<const SplitKnob&>(space.knob(space.knob_index(knob)));
  int64_t best = 0;
  double best_d = 1e30;
  for (int64_t j = 0; j < k.size(); ++j) {
    const auto& f = k.factors(j);
    double d = 0;
    for (size_t l = 1; l < f.size() && l - 1 < want.size(); ++l) d += std::abs(std::log2(f[l] / want[l - 1]));
    if (d < best_d) best_d = d, best = j;
  }
  return best;
}

std::optional<std::string> check_gpu_block(const CudaTarget& d, int64_t threads, int64_t shared_bytes,
                                           int64_t registers) {
  if (threads > d.max_threads_per_block) {
    return std::to_string(threads) + " threads per block, the device allows " + std::to_string(d.max_threads_per_block);
  }
  if (threads < d.warp_size / 2) return std::to_string(threads) + " threads per block: under half a warp";
  if (shared_bytes > d.shared_bytes_per_block) {
    return std::to_string(shared_bytes) + " bytes of shared memory, the device allows " +
           std::to_string(d.shared_bytes_per_block);
  }
  if (registers > d.max_registers_per_thread) {
    return "about " + std::to_string(registers) + " registers per thread, the device allows " +
           std::to_string(d.max_registers_per_thread);
  }
  if (registers * threads > d.registers_per_block) {
    return "about " + std::to_string(registers * threads) + " registers per block, the device allows " +
           std::to_string(d.registers_per_block);
  }
  return std::nullopt;
}

ir::Stmt cooperative_copy(const std::string& var, const std::vector<int64_t>& shape, int64_t nthreads,
                          const ir::Expr& tid, bool first_fastest,
                          const std::function<ir::Stmt(const std::vector<ir::Expr>&)>& put, int64_t vector_width) {
  using namespace ir;
  const size_t rank = shape.size();
  if (rank == 0) throw Error("cooperative_copy: a tile needs at least one dimension");
  const size_t fastest = first_fastest ? 0 : rank - 1;
  if (vector_width < 1 || shape[fastest] % vector_width != 0) {
    throw Error("cooperative_copy: vector width " + std::to_string(vector_width) + " does not divide the extent " +
                std::to_string(shape[fastest]) + " of the fastest dimension");
  }
  std::vector<int64_t> groups = shape;  // the tile in units of vectors
  groups[fastest] /= vector_width;
  int64_t total = 1;
  for (int64_t d : groups) total *= d;
  const int64_t steps = ceil_div(total, nthreads);
  const Expr e = ir::var(var) * int_imm(nthreads) + tid;
  const std::string lane = var + "_v";
  std::vector<Expr> idx(rank);
  int64_t inner = 1;  // groups of the dimensions that vary faster
  for (size_t n = 0; n < rank; ++n) {
    const size_t d = first_fastest ? n : rank - 1 - n;
    const Expr above = inner == 1 ? e : floordiv(e, int_imm(inner));
    // The slowest dimension needs no modulo: e < total where it is stored.
    idx[d] = n + 1 == rank ? above : floormod(above, int_imm(groups[d]));
    inner *= groups[d];
  }
  if (vector_width > 1) idx[fastest] = idx[fastest] * int_imm(vector_width) + ir::var(lane);
  Stmt st = put(idx);
  if (vector_width > 1) st = for_loop(lane, vector_width, LoopKind::kVectorized, st);
  if (total % nthreads != 0) st = if_then_else(lt(e, int_imm(total)), st);
  return for_loop(var, steps, steps <= 8 ? LoopKind::kUnrolled : LoopKind::kSerial, st);
}

void add_unroll_knobs(ConfigSpace& space) {
  space.add_choice("auto_unroll_max_step", {0, 512, 1500});
  space.add_choice("unroll_explicit", {0, 1});
}

void apply_unroll_knobs(const ConfigSpace& space, const Config& c, ir::Program& program) {
  program.body = ir::unroll_loops(program.body, space.value(c, "auto_unroll_max_step"));
  program.explicit_unroll = space.value(c, "unroll_explicit") == 1;
}

}  // namespace ktune::templates
