#include "schedule_space/linear_expr.h"

namespace ktune::ir {

bool mentions(const Expr& e, const std::string& v) {
  if (!e) return false;
  switch (e->kind) {
    case ExprKind::kVar:
      return e->var_name == v;
    case ExprKind::kIntImm:
    case ExprKind::kFloatImm:
      return false;
    case ExprKind::kLoad:
      for (const Expr& i : e->indices) {
        if (mentions(i, v)) return true;
      }
      return false;
    default:
      return mentions(e->a, v) || mentions(e->b, v) || mentions(e->c, v);
  }
}

Expr substitute(const Expr& e, const std::map<std::string, int64_t>& consts) {
  if (!e || consts.empty()) return e;
  switch (e->kind) {
    case ExprKind::kVar: {
      auto it = consts.find(e->var_name);
      return it == consts.end() ? e : ir::int_imm(it->second);
    }
    case ExprKind::kIntImm:
    case ExprKind::kFloatImm:
      return e;
    case ExprKind::kBinary: {
      Expr a = substitute(e->a, consts), b = substitute(e->b, consts);
      if (a == e->a && b == e->b) return e;
      return ir::binary(e->op, a, b);
    }
    case ExprKind::kLoad: {
      std::vector<Expr> idx;
      bool changed = false;
      for (const Expr& i : e->indices) {
        idx.push_back(substitute(i, consts));
        changed |= idx.back() != i;
      }
      return changed ? ir::load(e->buffer, idx) : e;
    }
    case ExprKind::kSelect: {
      Expr a = substitute(e->a, consts), b = substitute(e->b, consts), c = substitute(e->c, consts);
      if (a == e->a && b == e->b && c == e->c) return e;
      return ir::select(a, b, c);
    }
  }
  return e;
}


Stmt substitute(const Stmt& s, const std::map<std::string, int64_t>& consts) {
  if (!s || consts.empty()) return s;
  auto exprs = [&](const std::vector<Expr>& v) {
    std::vector<Expr> out;
    for (const Expr& e : v) out.push_back(substitute(e, consts));
    return out;
  };
  switch (s->kind) {
    case StmtKind::kFor:
      return for_loop(s->loop_var, s->extent, s->loop_kind, substitute(s->body, consts));
    case StmtKind::kSeq: {
      std::vector<Stmt> out;
      for (const Stmt& c : s->seq) out.push_back(substitute(c, consts));
      return seq(std::move(out));
    }
    case StmtKind::kStore:
      return s->accumulate ? accumulate(s->buffer, exprs(s->indices), substitute(s->value, consts))
                           : store(s->buffer, exprs(s->indices), substitute(s->value, consts));
    case StmtKind::kIf:
      return if_then_else(substitute(s->cond, consts), substitute(s->then_body, consts),
                          substitute(s->else_body, consts));
    case StmtKind::kAllocate:
      return allocate(s->buffer, substitute(s->body, consts));
    case StmtKind::kBarrier:
      return s;
  }
  return s;
}

Expr to_expr(const Linear& l) {
  Expr e = int_imm(0);
  for (const Linear::Term& t : l.terms) e = e + t.expr * int_imm(t.coeff);
  return e + int_imm(l.constant);
}

Linear flat_offset(const Buffer& b, const std::vector<Expr>& indices) {
  Expr flat = int_imm(0);
  for (size_t d = 0; d < indices.size(); ++d) flat = flat * b->shape[d] + indices[d];
  return linearize(flat);
}

void Linear::add(const Term& t, int64_t scale) {
  for (Term& u : terms) {
    if (u.key == t.key) {
      u.coeff += t.coeff * scale;
      return;
    }
  }
  terms.push_back({t.key, t.expr, t.coeff * scale});
}

void Linear::add(const Linear& o, int64_t scale) {
  for (const Term& t : o.terms) add(t, scale);
  constant += o.constant * scale;
}

void Linear::drop_zeros() {
  std::vector<Term> kept;
  for (Term& t : terms) {
    if (t.coeff != 0) kept.push_back(std::move(t));
  }
  terms = std::move(kept);
}

std::optional<int64_t> Linear::coeff_of(const std::string& v) const {
  int64_t c = 0;
  for (const Term& t : terms) {
    if (t.expr->kind == ExprKind::kVar) {
      if (t.expr->var_name == v) c = t.coeff;
    } else if (mentions(t.expr, v)) {
      return std::nullopt;
    }
  }
  return c;
}

Linear Linear::without(const std::string& v) const {
  Linear l = *this;
  l.terms.clear();
  for (const Term& t : terms) {
    if (!(t.expr->kind == ExprKind::kVar && t.expr->var_name == v)) l.terms.push_back(t);
  }
  return l;
}

bool Linear::divisible_by(int64_t w) const {
  if (constant % w != 0) return false;
  for (const Term& t : terms) {
    if (t.coeff % w != 0) return false;
  }
  return true;
}

Linear Linear::divided_by(int64_t w) const {
  Linear l = *this;
  for (Term& t : l.terms) t.coeff /= w;
  l.constant /= w;
  return l;
}

Linear linearize(const Expr& e) {
  Linear l;
  if (e->kind == ExprKind::kIntImm) {
    l.constant = e->int_value;
    return l;
  }
  if (e->kind == ExprKind::kBinary &&
      (e->op == BinaryOp::kAdd || e->op == BinaryOp::kSub || e->op == BinaryOp::kMul)) {
    Linear a = linearize(e->a), b = linearize(e->b);
    if (e->op == BinaryOp::kAdd || e->op == BinaryOp::kSub) {
      a.add(b, e->op == BinaryOp::kAdd ? 1 : -1);
      a.drop_zeros();
      return a;
    }
    if (a.is_constant() || b.is_constant()) {
      Linear r;
      r.add(a.is_constant() ? b : a, a.is_constant() ? a.constant : b.constant);
      r.drop_zeros();
      return r;
    }
  }
  l.terms.push_back({ir::to_string(e), e, 1});
  return l;
}

bool non_negative(const Expr& e) {
  switch (e->kind) {
    case ExprKind::kIntImm:
      return e->int_value >= 0;
    case ExprKind::kVar:
      return true;
    case ExprKind::kBinary:
      switch (e->op) {
        case BinaryOp::kAdd: case BinaryOp::kMul: case BinaryOp::kDiv: case BinaryOp::kMod:
        case BinaryOp::kMin: case BinaryOp::kMax:
          return non_negative(e->a) && non_negative(e->b);
        default:
          return false;
      }
    default:
      return false;
  }
}

}  // namespace ktune::ir
