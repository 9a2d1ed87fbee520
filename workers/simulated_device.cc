#include "workers/simulated_device.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "schedule_space/error.h"
#include "schedule_space/ir.h"
#include "schedule_space/templates/common.h"

namespace ktune {
namespace {

using ir::BinaryOp;
using ir::DType;
using ir::Expr;
using ir::ExprKind;
using ir::ExprNode;
using ir::LoopKind;
using ir::Scope;
using ir::Stmt;
using ir::StmtKind;
using ir::StmtNode;

constexpr double kLineBytes = 64;
constexpr double kElementBytes = 4;  // fp32
constexpr double kHashSpread = 0.03;
constexpr double kComputeOverlap = 0.1;  // of the instruction kinds that are not the bottleneck
constexpr double kMemoryOverlap = 0.5;   // of the cache levels and compute that are not

// The simulated machine: a target's numbers, and the micro-architecture the
// target does not describe (ports, latencies, bandwidths) fixed at values
// typical of its kind.
struct Machine {
  bool gpu = false;
  double hz = 3e9;
  double lanes = 8;              // fp32 elements of one vector instruction (GPU: a warp)
  double vector_registers = 16;  // architectural vector registers (CPU)
  double fma_ports = 2, load_ports = 2, store_ports = 1, issue_width = 4;  // per cycle
  double fma_latency = 4;        // cycles of a multiply-add into a register
  double memory_latency = 10;    // an accumulation into memory: load, add, store forwarding
  double workers = 1;            // parallel iterations in flight: threads (GPU: SMs)
  struct Level {
    double bytes;               // capacity of one worker's share
    double bytes_per_cycle;     // bandwidth of what misses it, per worker
    bool shared = false;        // capacity shared by the workers
  };
  std::vector<Level> levels;     // innermost first
  double dram_scaling = 4;       // the last level's bandwidth grows with workers only this far
  double fork_join_s = 3e-6;     // entering a parallel loop
  double call_s = 1e-6;          // one call of the kernel
};

Machine machine_of(const Target& t) {
  Machine m;
  if (t.kind == TargetKind::kCuda) {
    const CudaTarget& g = t.cuda;
    m.gpu = true;
    m.hz = 1.4e9;
    m.lanes = std::max(1, g.warp_size);
    m.vector_registers = 1e9;  // registers per thread: the template's checks bound them
    m.fma_ports = 4;           // warp instructions per cycle and SM
    m.load_ports = 1;
    m.store_ports = 1;
    m.issue_width = 4;
    m.workers = std::max(1, g.sm_count);
    m.levels = {{128.0 * 1024, 32}, {40.0 * 1024 * 1024 / m.workers, 12}};
    m.dram_scaling = m.workers;
    m.fork_join_s = 5e-6;  // a kernel launch
    m.call_s = 2e-6;
    return m;
  }
  const CpuTarget& c = t.cpu;
  m.lanes = std::max(1, c.vector_lanes);
  m.vector_registers = templates::vector_registers(c);
  m.workers = std::max(1, c.threads);
  m.levels = {{static_cast<double>(c.l1d_bytes), 64},
              {static_cast<double>(c.l2_bytes), 32},
              {static_cast<double>(c.l3_bytes), 6, true}};
  return m;
}

bool vector_kind(LoopKind k, bool gpu) {
  if (gpu) return k == LoopKind::kThreadX || k == LoopKind::kThreadY || k == LoopKind::kThreadZ;
  return k == LoopKind::kVectorized;
}
bool parallel_kind(LoopKind k, bool gpu) {
  if (gpu) return k == LoopKind::kBlockX || k == LoopKind::kBlockY || k == LoopKind::kBlockZ;
  return k == LoopKind::kParallel;
}
// Straight-line code: what the compiler hoists invariant loads out of.
bool unrolled_kind(LoopKind k, bool gpu) { return k == LoopKind::kUnrolled || (!gpu && k == LoopKind::kVectorized); }

// ---- integer index expressions ----

// The value of an index expression with the given loop variables (others 0).
int64_t eval(const Expr& e, const std::map<std::string, int64_t>& env) {
  if (!e) return 0;
  switch (e->kind) {
    case ExprKind::kIntImm: return e->int_value;
    case ExprKind::kFloatImm: return 0;
    case ExprKind::kVar: {
      auto it = env.find(e->var_name);
      return it == env.end() ? 0 : it->second;
    }
    case ExprKind::kLoad: return 0;
    case ExprKind::kSelect: return eval(e->a, env) ? eval(e->b, env) : eval(e->c, env);
    case ExprKind::kBinary: return ir::apply_int(e->op, eval(e->a, env), eval(e->b, env));
  }
  return 0;
}

void vars_of(const Expr& e, std::set<std::string>& out) {
  if (!e) return;
  if (e->kind == ExprKind::kVar) out.insert(e->var_name);
  vars_of(e->a, out);
  vars_of(e->b, out);
  vars_of(e->c, out);
  for (const Expr& i : e->indices) vars_of(i, out);
}

// The float loads of a value (not those inside index expressions).
void loads_of(const Expr& e, std::vector<const ExprNode*>& out) {
  if (!e || e->dtype != DType::kFloat) return;
  if (e->kind == ExprKind::kLoad) {
    out.push_back(e.get());
    return;
  }
  loads_of(e->a, out);
  loads_of(e->b, out);
  loads_of(e->c, out);
}

struct FloatOps {
  double mul = 0, add = 0, other = 0;
};
void count_ops(const Expr& e, FloatOps& ops) {
  if (!e || e->dtype != DType::kFloat || e->kind == ExprKind::kLoad) return;
  if (e->kind == ExprKind::kBinary) {
    if (e->op == BinaryOp::kMul) {
      ops.mul += 1;
    } else if (e->op == BinaryOp::kAdd || e->op == BinaryOp::kSub) {
      ops.add += 1;
    } else {
      ops.other += e->op == BinaryOp::kDiv ? 4 : 1;
    }
  } else if (e->kind == ExprKind::kSelect) {
    ops.other += 1;
  }
  count_ops(e->a, ops);
  count_ops(e->b, ops);
  count_ops(e->c, ops);
}

// ---- the model ----

struct Loop {
  std::string var;
  int64_t extent;
  LoopKind kind;
};

// A buffer access of a store, seen from its loops: per loop, how far the
// flattened (row-major) element index moves per step of the loop (finite
// differences over the loop's range: exact for affine indices, a slope for
// the others; 0: the access does not depend on the loop) and where its first
// step goes (1: contiguous).
struct Access {
  const ir::BufferNode* buffer = nullptr;
  std::vector<double> stride;
  std::vector<int64_t> first_step;
  bool depends_on(size_t loop) const { return stride[loop] > 0; }
};

Access access_of(const ir::BufferNode& buffer, const std::vector<Expr>& indices, const std::vector<Loop>& loops) {
  Access a;
  a.buffer = &buffer;
  a.stride.assign(loops.size(), 0);
  a.first_step.assign(loops.size(), 0);
  std::vector<int64_t> dim_stride(indices.size(), 1);
  for (size_t d = indices.size(); d-- > 1;) {
    dim_stride[d - 1] = dim_stride[d] * (d < buffer.shape.size() ? std::max<int64_t>(1, buffer.shape[d]) : 1);
  }
  std::map<std::string, int64_t> env;
  auto flat = [&] {
    int64_t f = 0;
    for (size_t d = 0; d < indices.size(); ++d) f += eval(indices[d], env) * dim_stride[d];
    return f;
  };
  const int64_t base = flat();
  for (size_t l = 0; l < loops.size(); ++l) {
    if (loops[l].extent <= 1) continue;
    env[loops[l].var] = 1;
    const int64_t one = flat() - base;
    env[loops[l].var] = loops[l].extent - 1;
    const int64_t last = flat() - base;
    env.erase(loops[l].var);
    double stride = std::abs(static_cast<double>(last)) / static_cast<double>(loops[l].extent - 1);
    if (stride == 0 && one != 0) stride = std::abs(static_cast<double>(one));
    a.stride[l] = stride;
    a.first_step[l] = one;
  }
  return a;
}

// Bytes of cache lines an access touches during the loops from depth `from`
// inward: loops by increasing stride extend a contiguous span while their
// step stays inside it, and repeat the span elsewhere once it does not.
double footprint(const Access& a, const std::vector<Loop>& loops, size_t from) {
  std::vector<std::pair<double, double>> steps;  // stride, extent
  for (size_t l = from; l < loops.size(); ++l) {
    if (a.stride[l] > 0 && loops[l].extent > 1) steps.emplace_back(a.stride[l], static_cast<double>(loops[l].extent));
  }
  std::sort(steps.begin(), steps.end());
  double span = 1, blocks = 1;
  for (const auto& [stride, extent] : steps) {
    if (stride <= span) {
      span += stride * (extent - 1);
    } else {
      blocks *= extent;
    }
  }
  const auto lines = [](double elements) { return std::ceil(elements * kElementBytes / kLineBytes) * kLineBytes; };
  return std::min(blocks * lines(span), lines(static_cast<double>(std::max<int64_t>(1, a.buffer->elements()))));
}

// The fraction of the loops' iterations for which cond holds: every
// combination of the loops it reads when there are few, else a fixed sample.
double fraction_true(const Expr& cond, const std::vector<Loop>& loops) {
  std::set<std::string> vars;
  vars_of(cond, vars);
  std::vector<const Loop*> read;
  double combinations = 1;
  for (const Loop& l : loops) {
    if (vars.count(l.var) && l.extent > 1) {
      read.push_back(&l);
      combinations *= static_cast<double>(l.extent);
    }
  }
  std::map<std::string, int64_t> env;
  if (combinations <= 4096) {
    std::vector<int64_t> at(read.size(), 0);
    double hits = 0;
    for (double n = 0; n < combinations; ++n) {
      for (size_t i = 0; i < read.size(); ++i) env[read[i]->var] = at[i];
      hits += eval(cond, env) != 0;
      for (size_t i = 0; i < read.size() && ++at[i] == read[i]->extent; ++i) at[i] = 0;
    }
    return hits / combinations;
  }
  constexpr int kSamples = 1024;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  double hits = 0;
  for (int n = 0; n < kSamples; ++n) {
    for (const Loop* l : read) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      env[l->var] = static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(l->extent));
    }
    hits += eval(cond, env) != 0;
  }
  return hits / kSamples;
}

// The slowest resource, plus a part of the others: overlap is never perfect,
// so a config has to be good at everything to be the best.
double roofline(const std::vector<double>& cycles, double others) {
  const double slowest = *std::max_element(cycles.begin(), cycles.end());
  double sum = 0;
  for (double c : cycles) sum += c;
  return slowest + others * (sum - slowest);
}

class Model {
 public:
  explicit Model(Machine m) : m_(std::move(m)) {}

  double seconds(const ir::Program& p) {
    std::vector<Loop> loops;
    walk(p.body, loops, 0, 1);
    return total_s_ + m_.call_s;
  }

 private:
  // weight: the fraction of the loops' iterations that reach s (branches).
  void walk(const Stmt& s, std::vector<Loop>& loops, double register_elements, double weight) {
    if (!s || weight <= 0) return;
    switch (s->kind) {
      case StmtKind::kFor:
        loops.push_back({s->loop_var, std::max<int64_t>(1, s->extent), s->loop_kind});
        walk(s->body, loops, register_elements, weight);
        loops.pop_back();
        return;
      case StmtKind::kSeq:
        for (const Stmt& c : s->seq) walk(c, loops, register_elements, weight);
        return;
      case StmtKind::kIf: {
        const double p = fraction_true(s->cond, loops);
        walk(s->then_body, loops, register_elements, weight * p);
        walk(s->else_body, loops, register_elements, weight * (1 - p));
        return;
      }
      case StmtKind::kAllocate:
        walk(s->body, loops,
             register_elements + (s->buffer->scope == Scope::kRegister ? static_cast<double>(s->buffer->elements()) : 0),
             weight);
        return;
      case StmtKind::kStore:
        total_s_ += weight * store_seconds(*s, loops, register_elements);
        return;
      case StmtKind::kBarrier:
        return;
    }
  }

  double store_seconds(const StmtNode& st, const std::vector<Loop>& loops, double register_elements) const {
    const bool gpu = m_.gpu;
    const size_t n = loops.size();
    double iters = 1;
    for (const Loop& l : loops) iters *= static_cast<double>(l.extent);
    // The innermost run of straight-line loops (unrolled, vectorized).
    size_t run = n;
    while (run > 0 && (unrolled_kind(loops[run - 1].kind, gpu) || vector_kind(loops[run - 1].kind, gpu))) --run;
    double run_iters = 1;
    for (size_t l = run; l < n; ++l) run_iters *= static_cast<double>(loops[l].extent);

    double vec_elems = 1;
    size_t vector_loop = n;  // the innermost vector loop
    for (size_t l = 0; l < n; ++l) {
      if (!vector_kind(loops[l].kind, gpu)) continue;
      vec_elems *= static_cast<double>(loops[l].extent);
      vector_loop = l;
    }
    const double vec_factor = vec_elems / std::ceil(vec_elems / m_.lanes);  // elements per instruction
    const double ops = iters / vec_factor;

    // Instructions: loads (hoisted out of the straight-line run where
    // invariant; a vector index that is not contiguous is a gather),
    // stores, arithmetic.
    auto instructions = [&](const Access& a) {
      double count = iters;
      bool vector_dependent = false;
      for (size_t l = run; l < n; ++l) {
        if (vector_kind(loops[l].kind, gpu)) {
          vector_dependent = vector_dependent || a.depends_on(l);
        } else if (!a.depends_on(l)) {
          count /= static_cast<double>(loops[l].extent);
        }
      }
      if (vector_loop < n && !vector_dependent) return count / vec_elems;  // a broadcast
      count /= vec_factor;
      if (vector_loop < n && a.first_step[vector_loop] != 1) count *= vec_factor;  // element by element
      return count;
    };
    std::vector<const ExprNode*> loads;
    loads_of(st.value, loads);
    std::vector<Access> memory;  // what moves through the caches
    double load_instr = 0;
    for (const ExprNode* l : loads) {
      if (l->buffer->scope == Scope::kRegister) continue;
      Access a = access_of(*l->buffer, l->indices, loops);
      load_instr += instructions(a);
      if (l->buffer->scope != Scope::kShared) memory.push_back(std::move(a));
    }
    const Access dest = access_of(*st.buffer, st.indices, loops);
    const bool to_register = st.buffer->scope == Scope::kRegister;
    double store_instr = 0;
    if (!to_register) {
      store_instr = instructions(dest);
      if (st.buffer->scope != Scope::kShared) memory.push_back(dest);
    }
    FloatOps f;
    count_ops(st.value, f);
    if (st.accumulate) f.add += 1;
    const double fused = std::min(f.mul, f.add);
    double arith = (f.mul + f.add - fused + f.other) * ops;
    if (arith == 0 && to_register) arith = ops;  // a move or a zeroing

    // Accumulation chains: a reduction loop (one the destination does not
    // depend on) makes each accumulator a chain of dependent adds; the loops
    // inside it that the destination does depend on interleave independent
    // chains (the register tile).
    double latency_cycles = 0;
    if (st.accumulate) {
      double chains = 1;
      size_t l = n;
      while (l > 0 && dest.depends_on(l - 1)) {
        --l;
        chains *= vector_kind(loops[l].kind, gpu) ? std::ceil(static_cast<double>(loops[l].extent) / m_.lanes)
                                                 : static_cast<double>(loops[l].extent);
      }
      if (l > 0) {
        if (gpu) chains *= std::max(1.0, std::ceil(vec_elems / m_.lanes));  // warps hide each other's latency
        latency_cycles = ops / chains * (to_register ? m_.fma_latency : m_.memory_latency);
      }
    }
    // Loops that are not straight-line code: a counter and a branch per iteration.
    const double loop_instr = 2 * iters / run_iters;
    double compute = roofline({arith / m_.fma_ports, load_instr / m_.load_ports, store_instr / m_.store_ports,
                               (arith + load_instr + store_instr + loop_instr) / m_.issue_width, latency_cycles},
                              kComputeOverlap);
    // A register tile beyond the register file spills.
    const double vectors = register_elements / m_.lanes;
    if (!gpu && vectors > m_.vector_registers) compute *= 1 + 2 * (vectors - m_.vector_registers) / vectors;

    // The parallel loop: the outermost one (GPU: every block-bound loop).
    size_t par = n;
    double par_iters = 1;
    for (size_t l = 0; l < n; ++l) {
      if (!parallel_kind(loops[l].kind, gpu)) continue;
      if (par == n) par = l;
      par_iters *= static_cast<double>(loops[l].extent);
      if (!gpu) break;  // at most one active level on a CPU
    }
    double speedup = 1, active = 1, entries = 0;
    if (par < n && m_.workers > 1) {
      speedup = par_iters / std::ceil(par_iters / m_.workers);
      active = std::min(m_.workers, par_iters);
      entries = 1;
      for (size_t l = 0; l < par; ++l) entries *= static_cast<double>(loops[l].extent);
    }

    // Memory, per cache level: the loops from depth `fits` inward touch what
    // fits; each iteration of the loops around them brings it in again, but
    // for what the loop just around does not move (it stays).
    std::vector<std::vector<double>> bytes(memory.size(), std::vector<double>(n + 1, 0));  // [access][depth]
    std::vector<double> total(n + 1, 0);
    for (size_t from = 0; from <= n; ++from) {
      std::map<const ir::BufferNode*, double> per_buffer;  // accesses of one buffer overlap
      for (size_t a = 0; a < memory.size(); ++a) {
        bytes[a][from] = footprint(memory[a], loops, from);
        double& b = per_buffer[memory[a].buffer];
        b = std::max(b, bytes[a][from]);
      }
      for (const auto& [buffer, b] : per_buffer) total[from] += b;
    }
    std::vector<double> terms = {compute / speedup};
    for (size_t c = 0; c < m_.levels.size() && !memory.empty(); ++c) {
      const Machine::Level& level = m_.levels[c];
      const double capacity = level.shared ? level.bytes / active : level.bytes;
      size_t fits = n;
      while (fits > 0 && total[fits - 1] <= capacity) --fits;
      double around = 1;
      for (size_t l = 0; l + 1 < fits; ++l) around *= static_cast<double>(loops[l].extent);
      std::map<const ir::BufferNode*, double> per_buffer;
      for (size_t a = 0; a < memory.size(); ++a) {
        double b = bytes[a][fits];
        if (fits > 0 && memory[a].depends_on(fits - 1)) b *= static_cast<double>(loops[fits - 1].extent);
        per_buffer[memory[a].buffer] = std::max(per_buffer[memory[a].buffer], b);
      }
      double traffic = 0;
      for (const auto& [buffer, b] : per_buffer) traffic += b * around;
      const double scaling = c + 1 == m_.levels.size() ? std::min(speedup, m_.dram_scaling) : speedup;
      terms.push_back(traffic / level.bytes_per_cycle / scaling);
    }
    const double cycles = roofline(terms, kMemoryOverlap);
    return cycles / m_.hz + entries * m_.fork_join_s;
  }

  const Machine m_;
  double total_s_ = 0;
};

// A deterministic factor in [1 - kHashSpread, 1 + kHashSpread] (FNV-1a).
double hash_factor(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  const double u = static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);  // [0, 1)
  return 1 + kHashSpread * (2 * u - 1);
}

std::string format_seconds(double s) {
  std::ostringstream out;
  out.precision(4);
  out << s;
  return out.str();
}

}  // namespace

double simulated_cost(const MeasureInput& input, const ConfigSpace& space) {
  if (input.tmpl == nullptr) throw Error("no template given");
  const Template& tmpl = *input.tmpl;
  if (tmpl.target_kind() != input.target.kind) {
    throw Error("template " + tmpl.name() + " is for " +
                (tmpl.target_kind() == TargetKind::kCpu ? "cpu" : "cuda") + " targets, not " +
                (input.target.kind == TargetKind::kCpu ? "cpu" : "cuda"));
  }
  if (auto reason = tmpl.check(input.workload, input.target, space, input.config)) throw Error(*reason);
  const ir::Program program = tmpl.instantiate(input.workload, input.target, space, input.config);
  Model model(machine_of(input.target));
  const double seconds = model.seconds(program);
  return seconds * hash_factor(input.workload.key() + "|" + tmpl.name() + "|" + space.describe(input.config));
}

MeasureResult simulate(const MeasureInput& input, const ConfigSpace& space, const MeasureOptions& options) {
  MeasureResult r;
  r.timestamp = static_cast<int64_t>(std::time(nullptr));
  double cost = 0;
  try {
    cost = simulated_cost(input, space);
  } catch (const std::exception& e) {
    r.error = MeasureError::kInvalidConfig;
    r.error_message = e.what();
    return r;
  }
  for (int i = 0; i < std::max(1, options.repeat); ++i) {
    r.costs.push_back(cost);
    if (i == 0 && options.best_so_far_s > 0 && cost > options.best_so_far_s * options.cut_short_factor) {
      r.error_message = "cut short: " + format_seconds(cost) + " s per call > " +
                        format_seconds(options.cut_short_factor) + " x the best so far (" +
                        format_seconds(options.best_so_far_s) + " s)";
      break;
    }
  }
  return r;
}

MeasureResult simulate(const MeasureInput& input, const MeasureOptions& options) {
  if (input.tmpl == nullptr) {
    MeasureResult r;
    r.timestamp = static_cast<int64_t>(std::time(nullptr));
    r.error = MeasureError::kInvalidConfig;
    r.error_message = "no template given";
    return r;
  }
  ConfigSpace space;
  try {
    space = input.tmpl->space(input.workload, input.target);
  } catch (const std::exception& e) {
    MeasureResult r;
    r.timestamp = static_cast<int64_t>(std::time(nullptr));
    r.error = MeasureError::kInvalidConfig;
    r.error_message = e.what();
    return r;
  }
  return simulate(input, space, options);
}

}  // namespace ktune
