#include "cost_model/features.h"

#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <utility>

#include "schedule_space/error.h"

namespace ktune::cost_model {

FeatureKind parse_feature_kind(std::string_view name) {
  if (name == "itervar") return FeatureKind::kItervar;
  if (name == "curve") return FeatureKind::kCurve;
  if (name == "knob") return FeatureKind::kKnob;
  if (name == "itervar+knob") return FeatureKind::kItervarKnob;
  throw Error("unknown feature kind '" + std::string(name) +
              "': accepted kinds are itervar, curve, knob, itervar+knob");
}

std::string_view feature_kind_name(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::kItervar: return "itervar";
    case FeatureKind::kCurve: return "curve";
    case FeatureKind::kKnob: return "knob";
    case FeatureKind::kItervarKnob: return "itervar+knob";
  }
  return "?";
}

namespace {

using ir::Buffer;
using ir::Expr;
using ir::ExprKind;
using ir::LoopKind;
using ir::Stmt;
using ir::StmtKind;

float lg(double x) { return static_cast<float>(std::log2(1.0 + std::fabs(x))); }

// Integer value of an index expression with the given variables set (the
// others 0); loads inside indices (indirect access) count as 0.
int64_t eval(const Expr& e, const std::string& var, int64_t value) {
  if (!e) return 0;
  switch (e->kind) {
    case ExprKind::kIntImm: return e->int_value;
    case ExprKind::kVar: return e->var_name == var ? value : 0;
    case ExprKind::kSelect: return eval(e->a, var, value) ? eval(e->b, var, value) : eval(e->c, var, value);
    case ExprKind::kBinary: return ir::apply_int(e->op, eval(e->a, var, value), eval(e->b, var, value));
    default: return 0;
  }
}

struct Loop {
  std::string var;
  int64_t extent = 1;
  LoopKind kind = LoopKind::kSerial;
  int depth = 0;
  double above = 1;  // product of the extents of the loops around it
  double below = 1;  // largest product of extents of a chain of loops inside it
};

// One access of a buffer (a store or a load) and the loops around it.
struct Site {
  size_t buffer = 0;
  std::vector<size_t> path;      // loop ids, outermost first
  std::vector<int64_t> strides;  // elements, per loop of path
};

// Walks a program's body once, collecting loops and access sites.
class Analysis {
 public:
  explicit Analysis(const ir::Program& p) {
    for (const Buffer& b : p.params) buffer_id(b);
    for (const Buffer& b : p.workspace) buffer_id(b);
    walk(p.body);
    for (const Site& s : sites) {
      for (size_t i = 0; i < s.path.size(); ++i) {
        double chain = 1;
        for (size_t j = i + 1; j < s.path.size(); ++j) chain *= static_cast<double>(loops[s.path[j]].extent);
        loops[s.path[i]].below = std::max(loops[s.path[i]].below, chain);
      }
    }
  }

  std::vector<Loop> loops;  // program order (pre-order)
  std::vector<Site> sites;
  std::vector<Buffer> buffers;

  // Over the sites of buffer b inside loop `loop`: the smallest non-zero
  // stride, the elements touched by the whole loop (an upper bound: the
  // product of the extents of the loops from it inward that move the
  // access) and the accesses made.
  struct Use {
    bool present = false;
    double stride = 0, touched = 0, count = 0;
  };
  Use use(size_t loop, size_t buffer) const {
    Use u;
    for (const Site& s : sites) {
      if (s.buffer != buffer) continue;
      auto at = std::find(s.path.begin(), s.path.end(), loop);
      if (at == s.path.end()) continue;
      const size_t i = static_cast<size_t>(at - s.path.begin());
      double touched = 1, count = 1;
      for (size_t j = i; j < s.path.size(); ++j) {
        const double e = static_cast<double>(loops[s.path[j]].extent);
        count *= e;
        if (s.strides[j] != 0) touched *= e;
      }
      const double stride = static_cast<double>(std::llabs(s.strides[i]));
      if (stride != 0 && (u.stride == 0 || stride < u.stride)) u.stride = stride;
      u.touched = std::max(u.touched, touched);
      u.count += count;
      u.present = true;
    }
    return u;
  }

 private:
  size_t buffer_id(const Buffer& b) {
    for (size_t i = 0; i < buffers.size(); ++i) {
      if (buffers[i] == b) return i;
    }
    buffers.push_back(b);
    return buffers.size() - 1;
  }

  void access(const Buffer& b, const std::vector<Expr>& indices) {
    Site s;
    s.buffer = buffer_id(b);
    s.path = stack_;
    // Flattened row-major index; its change when one loop variable goes
    // from 0 to 1 (the others 0) is the stride.
    for (size_t id : stack_) {
      int64_t stride = 0, place = 1;
      for (size_t d = indices.size(); d-- > 0;) {
        stride += (eval(indices[d], loops[id].var, 1) - eval(indices[d], loops[id].var, 0)) * place;
        place *= d < b->shape.size() ? b->shape[d] : 1;
      }
      s.strides.push_back(stride);
    }
    sites.push_back(std::move(s));
  }

  void loads(const Expr& e) {
    if (!e) return;
    if (e->kind == ExprKind::kLoad) {
      access(e->buffer, e->indices);
      for (const Expr& i : e->indices) loads(i);
      return;
    }
    loads(e->a);
    loads(e->b);
    loads(e->c);
  }

  void walk(const Stmt& s) {
    if (!s) return;
    switch (s->kind) {
      case StmtKind::kFor: {
        Loop l;
        l.var = s->loop_var;
        l.extent = s->extent;
        l.kind = s->loop_kind;
        l.depth = static_cast<int>(stack_.size());
        for (size_t id : stack_) l.above *= static_cast<double>(loops[id].extent);
        loops.push_back(l);
        stack_.push_back(loops.size() - 1);
        walk(s->body);
        stack_.pop_back();
        return;
      }
      case StmtKind::kSeq:
        for (const Stmt& c : s->seq) walk(c);
        return;
      case StmtKind::kStore:
        access(s->buffer, s->indices);
        if (s->accumulate) access(s->buffer, s->indices);  // read and written
        loads(s->value);
        for (const Expr& i : s->indices) loads(i);
        return;
      case StmtKind::kIf:
        walk(s->then_body);
        walk(s->else_body);
        return;
      case StmtKind::kAllocate:
        buffer_id(s->buffer);
        walk(s->body);
        return;
      case StmtKind::kBarrier:
        return;
    }
  }

  std::vector<size_t> stack_;
};

int kind_slot(LoopKind k) {
  switch (k) {
    case LoopKind::kSerial: return 0;
    case LoopKind::kParallel: return 1;
    case LoopKind::kUnrolled: return 2;
    case LoopKind::kVectorized: return 3;
    case LoopKind::kBlockX: case LoopKind::kBlockY: case LoopKind::kBlockZ: return 4;
    default: return 5;  // GPU thread-bound
  }
}

}  // namespace

std::vector<float> itervar_features(const ir::Program& program) {
  const Analysis a(program);
  // The loops around the access executed most often (the compute nest, not
  // a packing loop before it) come first, outermost first, so they sit at
  // the same positions for every config; then the others in program order.
  std::vector<size_t> order;
  const Site* heaviest = nullptr;
  double most = -1;
  for (const Site& s : a.sites) {
    double n = 1;
    for (size_t id : s.path) n *= static_cast<double>(a.loops[id].extent);
    if (n >= most) most = n, heaviest = &s;
  }
  if (heaviest) order = heaviest->path;
  for (size_t i = 0; i < a.loops.size(); ++i) {
    if (std::find(order.begin(), order.end(), i) == order.end()) order.push_back(i);
  }
  std::vector<float> f(kItervarLength, 0.0f);
  const size_t per_loop = kLoopFeatures + kMaxBuffers * kBufferFeatures;
  for (size_t slot = 0; slot < order.size() && slot < kMaxLoops; ++slot) {
    const size_t i = order[slot];
    const Loop& l = a.loops[i];
    float* out = f.data() + slot * per_loop;
    out[0] = lg(static_cast<double>(l.extent));
    out[1] = static_cast<float>(l.depth);
    out[2] = lg(l.above);
    out[3] = lg(l.below);
    out[4 + kind_slot(l.kind)] = 1.0f;
    for (size_t b = 0; b < a.buffers.size() && b < kMaxBuffers; ++b) {
      const Analysis::Use u = a.use(i, b);
      if (!u.present) continue;
      float* bo = out + kLoopFeatures + b * kBufferFeatures;
      bo[0] = lg(u.stride);
      bo[1] = lg(u.touched * 4);
      bo[2] = lg(u.touched > 0 ? u.count / u.touched : 0);
      bo[3] = lg(u.count);
    }
  }
  return f;
}

std::vector<float> curve_features(const ir::Program& program) {
  const Analysis a(program);
  // Per buffer: (log2 bytes touched, log2 reuse) at every loop that reaches it.
  std::vector<std::vector<std::pair<float, float>>> points(a.buffers.size());
  std::vector<float> largest(a.buffers.size(), 0.0f);
  for (size_t b = 0; b < a.buffers.size(); ++b) {
    for (size_t l = 0; l < a.loops.size(); ++l) {
      const Analysis::Use u = a.use(l, b);
      if (!u.present) continue;
      const float bytes = lg(u.touched * 4);
      points[b].push_back({bytes, lg(u.touched > 0 ? u.count / u.touched : 0)});
      largest[b] = std::max(largest[b], bytes);
    }
    std::sort(points[b].begin(), points[b].end());
  }
  std::vector<size_t> order(a.buffers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return largest[x] > largest[y]; });

  std::vector<float> f(kCurveLength, 0.0f);
  for (size_t slot = 0; slot < kCurveBuffers && slot < order.size(); ++slot) {
    const auto& pts = points[order[slot]];
    for (size_t k = 0; k < kCurvePoints; ++k) {
      const float x = 6.0f + 2.0f * static_cast<float>(k);
      float reuse = 0;
      for (const auto& [bytes, r] : pts) {
        if (bytes <= x) reuse = std::max(reuse, r);
      }
      f[slot * kCurvePoints + k] = reuse;
    }
  }
  double parallel = 0, vector = 0, unrolled = 0, iterations = 0;
  double gpu = 1;
  bool on_gpu = false;
  for (const Loop& l : a.loops) {
    if (kind_slot(l.kind) >= 4) gpu *= static_cast<double>(l.extent), on_gpu = true;
  }
  if (on_gpu) parallel = gpu;
  for (const Loop& l : a.loops) {
    if (l.kind == LoopKind::kParallel) parallel = std::max(parallel, static_cast<double>(l.extent));
    if (l.kind == LoopKind::kVectorized) vector = std::max(vector, static_cast<double>(l.extent));
  }
  for (const Site& s : a.sites) {
    double unroll = 1, all = 1;
    for (size_t id : s.path) {
      all *= static_cast<double>(a.loops[id].extent);
      if (a.loops[id].kind == LoopKind::kUnrolled) unroll *= static_cast<double>(a.loops[id].extent);
    }
    unrolled = std::max(unrolled, unroll);
    iterations = std::max(iterations, all);
  }
  float* g = f.data() + kCurveBuffers * kCurvePoints;
  g[0] = lg(parallel);
  g[1] = lg(vector);
  g[2] = lg(unrolled);
  g[3] = lg(iterations);
  return f;
}

std::vector<float> knob_features(const ConfigSpace& space, const Config& config) {
  std::vector<float> f;
  for (size_t k = 0; k < space.num_knobs(); ++k) {
    for (double v : space.knob(k).values(config.choices.at(k))) f.push_back(lg(v));
  }
  return f;
}

FeatureExtractor::FeatureExtractor(const Workload& workload, const Target& target, const Template& tmpl,
                                   const ConfigSpace& space, FeatureKind kind)
    : workload_(workload), target_(target), tmpl_(tmpl), space_(space), kind_(kind) {
  switch (kind) {
    case FeatureKind::kItervar: length_ = kItervarLength; break;
    case FeatureKind::kCurve: length_ = kCurveLength; break;
    case FeatureKind::kKnob: length_ = knob_features(space, space.get(0)).size(); break;
    case FeatureKind::kItervarKnob: length_ = kItervarLength + knob_features(space, space.get(0)).size(); break;
  }
}

const std::vector<float>& FeatureExtractor::get(const Config& config) {
  auto it = cache_.find(config.index);
  if (it != cache_.end()) return it->second;
  if (kind_ == FeatureKind::kKnob) return cache_.emplace(config.index, knob_features(space_, config)).first->second;
  std::optional<ir::Program> p;
  try {
    p = tmpl_.instantiate(workload_, target_, space_, config);
  } catch (const Error&) {
    std::vector<float> f(kind_ == FeatureKind::kCurve ? kCurveLength : kItervarLength, 0.0f);
    if (kind_ == FeatureKind::kItervarKnob) {
      const std::vector<float> knobs = knob_features(space_, config);
      f.insert(f.end(), knobs.begin(), knobs.end());
    }
    return cache_.emplace(config.index, std::move(f)).first->second;
  }
  return get(config, *p);
}

const std::vector<float>& FeatureExtractor::get(const Config& config, const ir::Program& program) {
  auto it = cache_.find(config.index);
  if (it != cache_.end()) return it->second;
  std::vector<float> f;
  if (kind_ == FeatureKind::kKnob) {
    f = knob_features(space_, config);
  } else {
    f = kind_ == FeatureKind::kCurve ? curve_features(program) : itervar_features(program);
    if (kind_ == FeatureKind::kItervarKnob) {
      const std::vector<float> knobs = knob_features(space_, config);
      f.insert(f.end(), knobs.begin(), knobs.end());
    }
  }
  return cache_.emplace(config.index, std::move(f)).first->second;
}

}  // namespace ktune::cost_model
