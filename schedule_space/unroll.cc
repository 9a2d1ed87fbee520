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

Stmt unroll_loops(const Stmt& s, int64_t max_step, bool explicit_copies) {
  if (!s) return s;
  switch (s->kind) {
    case StmtKind::kStore:
    case StmtKind::kBarrier:
      return s;
    case StmtKind::kSeq: {
      std::vector<Stmt> out;
      for (const Stmt& c : s->seq) out.push_back(unroll_loops(c, max_step, explicit_copies));
      return seq(std::move(out));
    }
    case StmtKind::kIf:
      return if_then_else(s->cond, unroll_loops(s->then_body, max_step, explicit_copies),
                          unroll_loops(s->else_body, max_step, explicit_copies));
    case StmtKind::kAllocate:
      return allocate(s->buffer, unroll_loops(s->body, max_step, explicit_copies));
    case StmtKind::kFor:
      break;
  }
  Stmt body = unroll_loops(s->body, max_step, explicit_copies);
  const bool rollable = s->loop_kind == LoopKind::kSerial || s->loop_kind == LoopKind::kUnrolled;
  if (!rollable) return for_loop(s->loop_var, s->extent, s->loop_kind, body);
  const int64_t steps = s->extent * step_count(body);
  const bool unroll = s->loop_kind == LoopKind::kUnrolled || steps <= max_step;
  if (!unroll) return for_loop(s->loop_var, s->extent, LoopKind::kSerial, body);
  if (!explicit_copies || steps > kMaxExplicitUnrollSteps || declares_buffer(body)) {
    return for_loop(s->loop_var, s->extent, LoopKind::kUnrolled, body);
  }
  std::vector<Stmt> copies;
  for (int64_t v = 0; v < s->extent; ++v) copies.push_back(substitute(body, {{s->loop_var, v}}));
  return seq(std::move(copies));
}

}  // namespace ktune::ir
