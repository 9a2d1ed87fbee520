// A test-only emulator of GPU programs (loop-nest IR with block- and
// thread-bound loops), so the CUDA templates' kernels are checked for
// correctness on machines without a GPU. Not a mock of the CUDA path: the
// same Program is what codegen_cuda emits for NVRTC.
//
// Every thread block runs with all its threads in lockstep, one statement
// at a time (SIMT); an `if` masks threads; shared buffers are per block,
// register / stack buffers per thread, and start as NaN. Races the lockstep
// order would hide are errors: a thread reading a shared element another
// thread wrote since the last barrier, or writing one another thread read
// since then. So is a barrier reached by only some threads.
#pragma once

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedule_space/ir.h"

namespace ktune::testing {

class GpuEmulator {
 public:
  // Runs program on params (inputs in order, then the output), row-major.
  static void run(const ir::Program& p, std::vector<std::vector<float>>& params) {
    GpuEmulator e(p, params);
    e.top(p.body);
  }

 private:
  using Stmt = ir::Stmt;
  using Expr = ir::Expr;
  struct SharedCell {
    int64_t writer = -1, write_epoch = -1;
    int64_t reader = -1, read_epoch = -1;  // reader -2: several
  };

  GpuEmulator(const ir::Program& p, std::vector<std::vector<float>>& params) : params_(params) {
    for (size_t i = 0; i < p.params.size(); ++i) global_[p.params[i].get()] = i;
  }

  // Peels the GPU-bound loops (they enclose everything), then runs every block.
  void top(const Stmt& s) {
    Stmt body = s;
    while (body->kind == ir::StmtKind::kFor && gpu(body->loop_kind)) {
      gpu_loops_.push_back(body.get());
      body = body->body;
    }
    std::vector<const ir::StmtNode*> blocks, threads;
    for (const auto* l : gpu_loops_) (is_block(l->loop_kind) ? blocks : threads).push_back(l);
    int64_t nthreads = 1;
    for (const auto* t : threads) nthreads *= t->extent;
    std::vector<int64_t> bidx(blocks.size(), 0);
    while (true) {
      // One block: its threads' loop variables.
      vars_.assign(static_cast<size_t>(nthreads), {});
      for (int64_t t = 0; t < nthreads; ++t) {
        int64_t rest = t;
        for (size_t i = threads.size(); i-- > 0;) {
          vars_[t][threads[i]->loop_var] = rest % threads[i]->extent;
          rest /= threads[i]->extent;
        }
        for (size_t i = 0; i < blocks.size(); ++i) vars_[t][blocks[i]->loop_var] = bidx[i];
      }
      local_.assign(static_cast<size_t>(nthreads), {});
      shared_.clear();
      cells_.clear();
      epoch_ = 0;
      exec(body, std::vector<bool>(static_cast<size_t>(nthreads), true));
      size_t i = blocks.size();
      while (i-- > 0) {
        if (++bidx[i] < blocks[i]->extent) break;
        bidx[i] = 0;
      }
      if (i == static_cast<size_t>(-1)) break;
    }
  }

  static bool gpu(ir::LoopKind k) { return k >= ir::LoopKind::kBlockX; }
  static bool is_block(ir::LoopKind k) {
    return k == ir::LoopKind::kBlockX || k == ir::LoopKind::kBlockY || k == ir::LoopKind::kBlockZ;
  }

  int64_t flat(const ir::Buffer& b, const std::vector<Expr>& idx, int64_t t) {
    int64_t f = 0;
    for (size_t i = 0; i < idx.size(); ++i) {
      const int64_t v = ival(idx[i], t);
      if (v < 0 || v >= b->shape[i]) {
        throw std::runtime_error("index " + std::to_string(v) + " out of bounds of " + b->name + " dim " + std::to_string(i));
      }
      f = f * b->shape[i] + v;
    }
    return f;
  }

  float& cell(const ir::Buffer& b, int64_t offset, int64_t t, bool write) {
    auto g = global_.find(b.get());
    if (g != global_.end()) return params_[g->second].at(static_cast<size_t>(offset));
    if (b->scope == ir::Scope::kShared) {
      SharedCell& c = cells_[b->name][offset];
      if (write) {
        if (c.read_epoch == epoch_ && c.reader != t) {
          throw std::runtime_error("race: " + b->name + "[" + std::to_string(offset) + "] written by thread " +
                                   std::to_string(t) + " after another thread read it, with no barrier between");
        }
        c.writer = t, c.write_epoch = epoch_;
      } else {
        if (c.write_epoch == epoch_ && c.writer != t) {
          throw std::runtime_error("race: " + b->name + "[" + std::to_string(offset) + "] read by thread " +
                                   std::to_string(t) + " after thread " + std::to_string(c.writer) +
                                   " wrote it, with no barrier between");
        }
        c.reader = c.read_epoch == epoch_ && c.reader != t ? -2 : t;
        c.read_epoch = epoch_;
      }
      return shared_.at(b->name).at(static_cast<size_t>(offset));
    }
    return local_[t].at(b->name).at(static_cast<size_t>(offset));
  }

  int64_t ival(const Expr& e, int64_t t) {
    using K = ir::ExprKind;
    switch (e->kind) {
      case K::kIntImm: return e->int_value;
      case K::kVar: return vars_[t].at(e->var_name);
      case K::kSelect: return ival(e->a, t) ? ival(e->b, t) : ival(e->c, t);
      case K::kBinary: break;
      default: throw std::runtime_error("not an integer expression");
    }
    const int64_t a = ival(e->a, t), b = ival(e->b, t);
    using O = ir::BinaryOp;
    switch (e->op) {
      case O::kAdd: return a + b;
      case O::kSub: return a - b;
      case O::kMul: return a * b;
      case O::kDiv: return a >= 0 ? a / b : -((-a + b - 1) / b);
      case O::kMod: return a - b * (a >= 0 ? a / b : -((-a + b - 1) / b));
      case O::kMin: return std::min(a, b);
      case O::kMax: return std::max(a, b);
      case O::kLT: return a < b;
      case O::kLE: return a <= b;
      case O::kEQ: return a == b;
      case O::kNE: return a != b;
      case O::kAnd: return a && b;
      case O::kOr: return a || b;
    }
    return 0;
  }

  float fval(const Expr& e, int64_t t) {
    using K = ir::ExprKind;
    switch (e->kind) {
      case K::kFloatImm: return e->float_value;
      case K::kLoad: return cell(e->buffer, flat(e->buffer, e->indices, t), t, false);
      case K::kSelect: return ival(e->a, t) ? fval(e->b, t) : fval(e->c, t);
      case K::kBinary: break;
      default: throw std::runtime_error("not a float expression");
    }
    const float a = fval(e->a, t), b = fval(e->b, t);
    using O = ir::BinaryOp;
    switch (e->op) {
      case O::kAdd: return a + b;
      case O::kSub: return a - b;
      case O::kMul: return a * b;
      case O::kDiv: return a / b;
      case O::kMin: return std::fmin(a, b);
      case O::kMax: return std::fmax(a, b);
      default: throw std::runtime_error("bad float operator");
    }
  }

  void exec(const Stmt& s, const std::vector<bool>& mask) {
    if (!s) return;
    using K = ir::StmtKind;
    const int64_t n = static_cast<int64_t>(mask.size());
    switch (s->kind) {
      case K::kSeq:
        for (const Stmt& c : s->seq) exec(c, mask);
        return;
      case K::kFor:
        if (gpu(s->loop_kind)) throw std::runtime_error("GPU-bound loop " + s->loop_var + " inside other code");
        for (int64_t v = 0; v < s->extent; ++v) {
          for (int64_t t = 0; t < n; ++t) vars_[t][s->loop_var] = v;
          exec(s->body, mask);
        }
        return;
      case K::kStore:
        for (int64_t t = 0; t < n; ++t) {
          if (!mask[t]) continue;
          const float v = fval(s->value, t);
          float& c = cell(s->buffer, flat(s->buffer, s->indices, t), t, true);
          c = s->accumulate ? c + v : v;
        }
        return;
      case K::kIf: {
        std::vector<bool> yes(mask.size()), no(mask.size());
        for (int64_t t = 0; t < n; ++t) {
          const bool c = mask[t] && ival(s->cond, t);
          yes[t] = c;
          no[t] = mask[t] && !c;
        }
        exec(s->then_body, yes);
        exec(s->else_body, no);
        return;
      }
      case K::kAllocate:
        if (s->buffer->scope == ir::Scope::kShared) {
          shared_[s->buffer->name].assign(static_cast<size_t>(s->buffer->elements()), NAN);
        } else {
          for (int64_t t = 0; t < n; ++t) local_[t][s->buffer->name].assign(static_cast<size_t>(s->buffer->elements()), NAN);
        }
        exec(s->body, mask);
        return;
      case K::kBarrier:
        for (bool m : mask) {
          if (!m) throw std::runtime_error("barrier reached by only some threads");
        }
        ++epoch_;
        return;
    }
  }

  std::vector<std::vector<float>>& params_;
  std::map<const ir::BufferNode*, size_t> global_;
  std::vector<const ir::StmtNode*> gpu_loops_;
  std::vector<std::map<std::string, int64_t>> vars_;
  std::vector<std::map<std::string, std::vector<float>>> local_;
  std::map<std::string, std::vector<float>> shared_;
  std::map<std::string, std::map<int64_t, SharedCell>> cells_;
  int64_t epoch_ = 0;
};

}  // namespace ktune::testing
