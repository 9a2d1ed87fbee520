#include "schedule_space/unroll.h"

#include <algorithm>
#include <map>

#include "schedule_space/linear_expr.h"

namespace ktune::ir {

namespace {

bool declares_buffer(const Stmt& s) {
  bool found = false;
  visit(s, [&](const StmtNode& n) { found |= n.kind == StmtKind::kAllocate; });
  return found;
}

}  // namespace

int64_t step_count(const Stmt& s) {
  if (!s) return 0;
  switch (s->kind) {
    case StmtKind::kStore:
    case StmtKind::kBarrier:
      return 1;
    case StmtKind::kSeq: {
      int64_t n = 0;
      for (const Stmt& c : s->seq) n += step_count(c);
      return n;
    }
    case StmtKind::kFor:
      return s->extent * step_count(s->body);
    case StmtKind::kIf:
      return 1 + std::max(step_count(s->then_body), step_count(s->else_body));
    case StmtKind::kAllocate:
      return step_count(s->body);
  }
  return 0;
}

Stmt unroll_loops(const Stmt& s, int64_t max_step) {
  if (!s) return s;
  switch (s->kind) {
    case StmtKind::kStore:
    case StmtKind::kBarrier:
      return s;
    case StmtKind::kSeq: {
      std::vector<Stmt> out;
      for (const Stmt& c : s->seq) out.push_back(unroll_loops(c, max_step));
      return seq(std::move(out));
    }
    case StmtKind::kIf:
      return if_then_else(s->cond, unroll_loops(s->then_body, max_step), unroll_loops(s->else_body, max_step));
    case StmtKind::kAllocate:
      return allocate(s->buffer, unroll_loops(s->body, max_step));
    case StmtKind::kFor:
      break;
  }
  Stmt body = unroll_loops(s->body, max_step);
  LoopKind kind = s->loop_kind;
  if (kind == LoopKind::kSerial && s->extent * step_count(body) <= max_step) kind = LoopKind::kUnrolled;
  return for_loop(s->loop_var, s->extent, kind, body);
}

Stmt unrolled_copies(const Stmt& loop) {
  if (!loop || loop->kind != StmtKind::kFor || loop->loop_kind != LoopKind::kUnrolled) return nullptr;
  if (step_count(loop) > kMaxExplicitUnrollSteps || declares_buffer(loop->body)) return nullptr;
  std::vector<Stmt> copies;
  for (int64_t v = 0; v < loop->extent; ++v) copies.push_back(substitute(loop->body, {{loop->loop_var, v}}));
  return seq(std::move(copies));
}

}  // namespace ktune::ir
