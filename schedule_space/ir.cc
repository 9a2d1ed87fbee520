#include "schedule_space/ir.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune::ir {

int64_t BufferNode::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Buffer make_buffer(std::string name, std::vector<int64_t> shape, Scope scope, bool prepared) {
  if (name.empty()) throw Error("make_buffer: a buffer needs a name");
  for (int64_t d : shape) {
    if (d <= 0) throw Error("make_buffer: buffer '" + name + "' has a non-positive dimension");
  }
  auto b = std::make_shared<BufferNode>();
  b->name = std::move(name);
  b->shape = std::move(shape);
  b->scope = scope;
  b->prepared = prepared;
  return b;
}

// ---- expressions ----

namespace {

std::shared_ptr<ExprNode> node(ExprKind kind, DType dtype) {
  auto e = std::make_shared<ExprNode>();
  e->kind = kind;
  e->dtype = dtype;
  return e;
}

bool is_int(const Expr& e, int64_t v) { return e->kind == ExprKind::kIntImm && e->int_value == v; }

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

bool is_comparison_or_logic(BinaryOp op) {
  switch (op) {
    case BinaryOp::kLT: case BinaryOp::kLE: case BinaryOp::kEQ: case BinaryOp::kNE:
    case BinaryOp::kAnd: case BinaryOp::kOr:
      return true;
    default:
      return false;
  }
}

std::optional<int64_t> fold_int(BinaryOp op, int64_t a, int64_t b) {
  if ((op == BinaryOp::kDiv || op == BinaryOp::kMod) && b == 0) return std::nullopt;
  return apply_int(op, a, b);
}

std::optional<float> fold_float(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kMin: return std::min(a, b);
    case BinaryOp::kMax: return std::max(a, b);
    default: return std::nullopt;
  }
}

const char* op_symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd: return "+";
    case BinaryOp::kSub: return "-";
    case BinaryOp::kMul: return "*";
    case BinaryOp::kDiv: return "/";
    case BinaryOp::kMod: return "%";
    case BinaryOp::kMin: return "min";
    case BinaryOp::kMax: return "max";
    case BinaryOp::kLT: return "<";
    case BinaryOp::kLE: return "<=";
    case BinaryOp::kEQ: return "==";
    case BinaryOp::kNE: return "!=";
    case BinaryOp::kAnd: return "&&";
    case BinaryOp::kOr: return "||";
  }
  return "?";
}

}  // namespace

Expr int_imm(int64_t v) {
  auto e = node(ExprKind::kIntImm, DType::kInt);
  e->int_value = v;
  return e;
}

Expr float_imm(float v) {
  auto e = node(ExprKind::kFloatImm, DType::kFloat);
  e->float_value = v;
  return e;
}

Expr var(const std::string& name) {
  if (name.empty()) throw Error("ir::var: a variable needs a name");
  auto e = node(ExprKind::kVar, DType::kInt);
  e->var_name = name;
  return e;
}

int64_t apply_int(BinaryOp op, int64_t a, int64_t b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return b == 0 ? 0 : floor_div(a, b);
    case BinaryOp::kMod: return b == 0 ? 0 : floor_mod(a, b);
    case BinaryOp::kMin: return std::min(a, b);
    case BinaryOp::kMax: return std::max(a, b);
    case BinaryOp::kLT: return a < b;
    case BinaryOp::kLE: return a <= b;
    case BinaryOp::kEQ: return a == b;
    case BinaryOp::kNE: return a != b;
    case BinaryOp::kAnd: return (a != 0) && (b != 0);
    case BinaryOp::kOr: return (a != 0) || (b != 0);
  }
  return 0;
}

Expr binary(BinaryOp op, Expr a, Expr b) {
  if (!a || !b) throw Error(std::string("ir::binary: null operand of '") + op_symbol(op) + "'");
  if (a->dtype != b->dtype) {
    throw Error(std::string("ir::binary: operands of '") + op_symbol(op) +
                "' mix integer and float; the IR has no implicit conversions");
  }
  const bool is_float = a->dtype == DType::kFloat;
  if (is_float && (op == BinaryOp::kMod || is_comparison_or_logic(op))) {
    throw Error(std::string("ir::binary: '") + op_symbol(op) + "' is defined on integers only");
  }
  // Constant folding. Float identities (x+0, x*1) are not folded: they are
  // not exact for -0 and NaN, and float expressions are values, not indices.
  if (!is_float) {
    if (a->kind == ExprKind::kIntImm && b->kind == ExprKind::kIntImm) {
      if (auto v = fold_int(op, a->int_value, b->int_value)) return int_imm(*v);
    }
    switch (op) {
      case BinaryOp::kAdd:
        if (is_int(a, 0)) return b;
        if (is_int(b, 0)) return a;
        break;
      case BinaryOp::kSub:
        if (is_int(b, 0)) return a;
        break;
      case BinaryOp::kMul:
        if (is_int(a, 0) || is_int(b, 0)) return int_imm(0);
        if (is_int(a, 1)) return b;
        if (is_int(b, 1)) return a;
        break;
      case BinaryOp::kDiv:
        if (is_int(b, 1)) return a;
        if (is_int(a, 0)) return a;
        break;
      case BinaryOp::kMod:
        if (is_int(b, 1) || is_int(a, 0)) return int_imm(0);
        break;
      case BinaryOp::kAnd:
        if (is_int(a, 0) || is_int(b, 0)) return int_imm(0);
        if (a->kind == ExprKind::kIntImm) return b;
        if (b->kind == ExprKind::kIntImm) return a;
        break;
      case BinaryOp::kOr:
        if ((a->kind == ExprKind::kIntImm && a->int_value != 0) ||
            (b->kind == ExprKind::kIntImm && b->int_value != 0)) {
          return int_imm(1);
        }
        if (is_int(a, 0)) return b;
        if (is_int(b, 0)) return a;
        break;
      default:
        break;
    }
  } else if (a->kind == ExprKind::kFloatImm && b->kind == ExprKind::kFloatImm) {
    if (auto v = fold_float(op, a->float_value, b->float_value)) return float_imm(*v);
  }
  auto e = node(ExprKind::kBinary, is_comparison_or_logic(op) ? DType::kInt : a->dtype);
  e->op = op;
  e->a = std::move(a);
  e->b = std::move(b);
  return e;
}

Expr load(Buffer b, std::vector<Expr> indices) {
  if (!b) throw Error("ir::load: null buffer");
  if (indices.size() != b->shape.size()) {
    throw Error("ir::load: buffer '" + b->name + "' has " + std::to_string(b->shape.size()) +
                " dimensions but " + std::to_string(indices.size()) + " indices were given");
  }
  for (const Expr& i : indices) {
    if (!i || i->dtype != DType::kInt) {
      throw Error("ir::load: indices of buffer '" + b->name + "' must be integer expressions");
    }
  }
  auto e = node(ExprKind::kLoad, DType::kFloat);
  e->buffer = std::move(b);
  e->indices = std::move(indices);
  return e;
}

Expr select(Expr cond, Expr then_value, Expr else_value) {
  if (!cond || !then_value || !else_value) throw Error("ir::select: null operand");
  if (cond->dtype != DType::kInt) throw Error("ir::select: the condition must be an integer (boolean)");
  if (then_value->dtype != else_value->dtype) {
    throw Error("ir::select: both values must have the same type");
  }
  if (cond->kind == ExprKind::kIntImm) return cond->int_value != 0 ? then_value : else_value;
  auto e = node(ExprKind::kSelect, then_value->dtype);
  e->a = std::move(cond);
  e->b = std::move(then_value);
  e->c = std::move(else_value);
  return e;
}

Expr operator+(Expr a, Expr b) { return binary(BinaryOp::kAdd, std::move(a), std::move(b)); }
Expr operator-(Expr a, Expr b) { return binary(BinaryOp::kSub, std::move(a), std::move(b)); }
Expr operator*(Expr a, Expr b) { return binary(BinaryOp::kMul, std::move(a), std::move(b)); }
Expr operator+(Expr a, int64_t b) { return binary(BinaryOp::kAdd, std::move(a), int_imm(b)); }
Expr operator*(Expr a, int64_t b) { return binary(BinaryOp::kMul, std::move(a), int_imm(b)); }
Expr floordiv(Expr a, Expr b) { return binary(BinaryOp::kDiv, std::move(a), std::move(b)); }
Expr floormod(Expr a, Expr b) { return binary(BinaryOp::kMod, std::move(a), std::move(b)); }
Expr min(Expr a, Expr b) { return binary(BinaryOp::kMin, std::move(a), std::move(b)); }
Expr max(Expr a, Expr b) { return binary(BinaryOp::kMax, std::move(a), std::move(b)); }
Expr lt(Expr a, Expr b) { return binary(BinaryOp::kLT, std::move(a), std::move(b)); }
Expr le(Expr a, Expr b) { return binary(BinaryOp::kLE, std::move(a), std::move(b)); }
Expr logical_and(Expr a, Expr b) { return binary(BinaryOp::kAnd, std::move(a), std::move(b)); }

// ---- statements ----

namespace {

std::shared_ptr<StmtNode> stmt_node(StmtKind kind) {
  auto s = std::make_shared<StmtNode>();
  s->kind = kind;
  return s;
}

Stmt make_store(Buffer b, std::vector<Expr> indices, Expr value, bool accumulate) {
  if (!b) throw Error("ir::store: null buffer");
  if (indices.size() != b->shape.size()) {
    throw Error("ir::store: buffer '" + b->name + "' has " + std::to_string(b->shape.size()) +
                " dimensions but " + std::to_string(indices.size()) + " indices were given");
  }
  for (const Expr& i : indices) {
    if (!i || i->dtype != DType::kInt) {
      throw Error("ir::store: indices of buffer '" + b->name + "' must be integer expressions");
    }
  }
  if (!value || value->dtype != DType::kFloat) {
    throw Error("ir::store: the value stored to '" + b->name + "' must be a float expression");
  }
  auto s = stmt_node(StmtKind::kStore);
  s->buffer = std::move(b);
  s->indices = std::move(indices);
  s->value = std::move(value);
  s->accumulate = accumulate;
  return s;
}

}  // namespace

Stmt for_loop(const std::string& var, int64_t extent, LoopKind kind, Stmt body) {
  if (var.empty()) throw Error("ir::for_loop: a loop needs a variable name");
  if (extent <= 0) {
    throw Error("ir::for_loop: loop '" + var + "' has extent " + std::to_string(extent) +
                "; extents must be positive");
  }
  if (!body) throw Error("ir::for_loop: loop '" + var + "' has no body");
  auto s = stmt_node(StmtKind::kFor);
  s->loop_var = var;
  s->extent = extent;
  s->loop_kind = kind;
  s->body = std::move(body);
  return s;
}

Stmt seq(std::vector<Stmt> stmts) {
  std::vector<Stmt> flat;
  for (Stmt& s : stmts) {
    if (!s) continue;
    if (s->kind == StmtKind::kSeq) {
      flat.insert(flat.end(), s->seq.begin(), s->seq.end());
    } else {
      flat.push_back(std::move(s));
    }
  }
  if (flat.size() == 1) return flat[0];
  auto s = stmt_node(StmtKind::kSeq);
  s->seq = std::move(flat);
  return s;
}

Stmt store(Buffer b, std::vector<Expr> indices, Expr value) {
  return make_store(std::move(b), std::move(indices), std::move(value), false);
}

Stmt accumulate(Buffer b, std::vector<Expr> indices, Expr value) {
  return make_store(std::move(b), std::move(indices), std::move(value), true);
}

Stmt if_then_else(Expr cond, Stmt then_body, Stmt else_body) {
  if (!cond || cond->dtype != DType::kInt) {
    throw Error("ir::if_then_else: the condition must be an integer (boolean) expression");
  }
  if (!then_body) throw Error("ir::if_then_else: missing then-branch");
  // Constant conditions fold: guards that always hold cost nothing.
  if (cond->kind == ExprKind::kIntImm) {
    if (cond->int_value != 0) return then_body;
    return else_body ? else_body : seq({});
  }
  auto s = stmt_node(StmtKind::kIf);
  s->cond = std::move(cond);
  s->then_body = std::move(then_body);
  s->else_body = std::move(else_body);
  return s;
}

Stmt allocate(Buffer b, Stmt body) {
  if (!b) throw Error("ir::allocate: null buffer");
  if (b->scope == Scope::kGlobal) {
    throw Error("ir::allocate: buffer '" + b->name +
                "' has global scope; global buffers are params or workspace, not allocations");
  }
  if (!body) throw Error("ir::allocate: allocation of '" + b->name + "' has no body");
  auto s = stmt_node(StmtKind::kAllocate);
  s->buffer = std::move(b);
  s->body = std::move(body);
  return s;
}

Stmt barrier() { return stmt_node(StmtKind::kBarrier); }

// ---- printing ----

std::string to_string(const Expr& e) {
  if (!e) return "<null>";
  switch (e->kind) {
    case ExprKind::kIntImm:
      return std::to_string(e->int_value);
    case ExprKind::kFloatImm: {
      std::ostringstream os;
      os << e->float_value;
      std::string s = os.str();
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s + "f";
    }
    case ExprKind::kVar:
      return e->var_name;
    case ExprKind::kBinary:
      if (e->op == BinaryOp::kMin || e->op == BinaryOp::kMax) {
        return std::string(op_symbol(e->op)) + "(" + to_string(e->a) + ", " + to_string(e->b) + ")";
      }
      return "(" + to_string(e->a) + " " + op_symbol(e->op) + " " + to_string(e->b) + ")";
    case ExprKind::kLoad: {
      std::string s = e->buffer->name + "[";
      for (size_t i = 0; i < e->indices.size(); ++i) {
        if (i) s += ", ";
        s += to_string(e->indices[i]);
      }
      return s + "]";
    }
    case ExprKind::kSelect:
      return "select(" + to_string(e->a) + ", " + to_string(e->b) + ", " + to_string(e->c) + ")";
  }
  return "?";
}

namespace {

const char* loop_kind_name(LoopKind k) {
  switch (k) {
    case LoopKind::kSerial: return "serial";
    case LoopKind::kParallel: return "parallel";
    case LoopKind::kUnrolled: return "unrolled";
    case LoopKind::kVectorized: return "vectorized";
    case LoopKind::kBlockX: return "blockIdx.x";
    case LoopKind::kBlockY: return "blockIdx.y";
    case LoopKind::kBlockZ: return "blockIdx.z";
    case LoopKind::kThreadX: return "threadIdx.x";
    case LoopKind::kThreadY: return "threadIdx.y";
    case LoopKind::kThreadZ: return "threadIdx.z";
  }
  return "?";
}

const char* scope_name(Scope s) {
  switch (s) {
    case Scope::kGlobal: return "global";
    case Scope::kStack: return "stack";
    case Scope::kRegister: return "register";
    case Scope::kShared: return "shared";
  }
  return "?";
}

std::string shape_string(const Buffer& b) {
  std::string s = b->name + "[";
  for (size_t i = 0; i < b->shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(b->shape[i]);
  }
  return s + "]";
}

void print_stmt(std::ostringstream& os, const Stmt& s, int depth) {
  const std::string pad(2 * depth, ' ');
  if (!s) return;
  switch (s->kind) {
    case StmtKind::kFor:
      os << pad << "for " << s->loop_var << " in 0.." << s->extent;
      if (s->loop_kind != LoopKind::kSerial) os << " " << loop_kind_name(s->loop_kind);
      os << ":\n";
      print_stmt(os, s->body, depth + 1);
      break;
    case StmtKind::kSeq:
      for (const Stmt& c : s->seq) print_stmt(os, c, depth);
      break;
    case StmtKind::kStore: {
      os << pad << s->buffer->name << "[";
      for (size_t i = 0; i < s->indices.size(); ++i) {
        if (i) os << ", ";
        os << to_string(s->indices[i]);
      }
      os << "] " << (s->accumulate ? "+=" : "=") << " " << to_string(s->value) << "\n";
      break;
    }
    case StmtKind::kIf:
      os << pad << "if " << to_string(s->cond) << ":\n";
      print_stmt(os, s->then_body, depth + 1);
      if (s->else_body) {
        os << pad << "else:\n";
        print_stmt(os, s->else_body, depth + 1);
      }
      break;
    case StmtKind::kAllocate:
      os << pad << "allocate " << shape_string(s->buffer) << " " << scope_name(s->buffer->scope)
         << ":\n";
      print_stmt(os, s->body, depth + 1);
      break;
    case StmtKind::kBarrier:
      os << pad << "barrier\n";
      break;
  }
}

}  // namespace

std::string to_string(const Program& p) {
  std::ostringstream os;
  os << "program " << p.name << " threads=" << p.threads << "\n";
  for (const Buffer& b : p.params) os << "  param " << shape_string(b) << "\n";
  for (const Buffer& b : p.workspace) {
    os << "  workspace " << shape_string(b) << (b->prepared ? " prepared" : "") << "\n";
  }
  if (p.prepare) {
    os << "prepare:\n";
    print_stmt(os, p.prepare, 1);
  }
  os << "body:\n";
  print_stmt(os, p.body, 1);
  return os.str();
}

void visit(const Stmt& s, const std::function<void(const StmtNode&)>& f) {
  if (!s) return;
  f(*s);
  switch (s->kind) {
    case StmtKind::kFor:
    case StmtKind::kAllocate:
      visit(s->body, f);
      break;
    case StmtKind::kSeq:
      for (const Stmt& c : s->seq) visit(c, f);
      break;
    case StmtKind::kIf:
      visit(s->then_body, f);
      visit(s->else_body, f);
      break;
    case StmtKind::kStore:
    case StmtKind::kBarrier:
      break;
  }
}

}  // namespace ktune::ir
