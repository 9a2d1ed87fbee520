#include "schedule_space/codegen_cpp.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "schedule_space/error.h"
#include "schedule_space/linear_expr.h"

namespace ktune {
namespace {

using ir::BinaryOp;
using ir::Buffer;
using ir::BufferNode;
using ir::DType;
using ir::Expr;
using ir::ExprKind;
using ir::LoopKind;
using ir::Scope;
using ir::Stmt;
using ir::StmtKind;
using ir::Linear;
using ir::linearize;
using ir::mentions;
using ir::non_negative;
using ir::substitute;

constexpr int64_t kMaxExplicitUnroll = 16;  // larger unrolled loops get #pragma GCC unroll
constexpr int64_t kMaxVectorWidth = 64;
constexpr int64_t kWorkspaceAlignFloats = 16;  // 64 bytes

std::string float_literal(float v) {
  if (std::isnan(v)) return "__builtin_nanf(\"\")";
  if (std::isinf(v)) return v > 0 ? "__builtin_inff()" : "(-__builtin_inff())";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

std::string int_literal(int64_t v) {
  if (v > 2147483647LL || v < -2147483647LL) return "INT64_C(" + std::to_string(v) + ")";
  return std::to_string(v);
}

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  static const std::set<std::string> reserved = {
      "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double",
      "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "new",
      "delete", "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
      "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "class", "this",
      "template", "typename", "namespace", "using", "operator", "private", "public", "protected",
      "virtual", "friend", "true", "false", "nullptr", "memcpy", "int64_t", "inputs", "output",
      "workspace", "and", "or", "not", "xor", "main"};
  if (reserved.count(s)) return false;
  return s.rfind("kt_", 0) != 0 && s.rfind("ktune", 0) != 0 && s.rfind("__", 0) != 0;
}

// "(a < b)" -> "a < b", for conditions that get their own parentheses.
std::string strip_parens(const std::string& s) {
  if (s.size() < 2 || s.front() != '(' || s.back() != ')') return s;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
    if (depth == 0 && i + 1 < s.size()) return s;  // the first '(' closes early
  }
  return s.substr(1, s.size() - 2);
}

std::string vec_type(int64_t w) { return "kt_f32x" + std::to_string(w); }

// ---- emitter ----

struct BufferInfo {
  std::string name;
  std::vector<int64_t> shape;
  bool writable = true;
  bool vector_array = false;  // declared as an array of vectors of `width`
  int64_t width = 0;
};

// The element pairs that stride-2 window reads load (two vectors from one
// position, their even or odd elements picked): by the position's text,
// whether an even pick and an odd pick of it are made.
struct PairUse {
  bool even = false, odd = false;
};
using PairUses = std::map<std::string, PairUse>;

class CppEmitter {
 public:
  CppEmitter(const ir::Program& p, CppEmitOptions options, PairUses known = {})
      : program_(p), options_(std::move(options)), known_pairs_(std::move(known)) {}

  std::string emit();
  // What a finished emit() loaded for stride-2 windows (see window_even_load).
  const PairUses& pair_uses() const { return pair_uses_; }

 private:
  // statements
  void stmt(const Stmt& s);
  std::string threads_text() const;
  bool shares_one_region(const Stmt& seq) const;
  void parallel_region(const Stmt& seq);
  void vector_stmt(const Stmt& s);
  void for_loop(const Stmt& s);
  void unrolled(const Stmt& s, bool vector_context);
  bool transposed_write(const Stmt& s);
  std::optional<int64_t> lane_write_stores(const Stmt& s, std::set<const BufferNode*>* tiles = nullptr) const;
  bool lane_write_loop(const Stmt& s);
  void allocate(const Stmt& s);
  void store(const Stmt& s);
  void vector_store(const Stmt& s);

  // expressions; inputs are substituted first
  std::string scalar(const Expr& e);
  std::string vector(const Expr& e);
  std::string gather(const Expr& e);
  std::optional<uint64_t> lane_mask(const Expr& cond);
  Expr decide(const Expr& cond) const;
  std::optional<std::string> masked_load(const Expr& select);
  std::string even_load(const std::string& buffer, const Linear& base, uint64_t mask);
  std::string window_even_load(const BufferInfo& bi, const Linear& base, const Expr& cond, uint64_t mask);
  std::string pair_pick(const BufferInfo& bi, const Linear& first, int64_t odd,
                        const std::function<bool(int64_t)>& own_lane);
  std::optional<bool> lane_holds(const Expr& cond, int64_t lane);
  bool provably_inside(const Linear& at, const BufferInfo& bi) const;
  std::optional<std::pair<int64_t, int64_t>> bounds(const Linear& l) const;
  std::string pair_key(const BufferInfo& bi, const Linear& at) { return bi.name + "[" + index_text(at) + "]"; }
  std::string masked_read(const std::string& buffer, const Linear& at, uint64_t mask);
  bool stride_two(const std::optional<int64_t>& coeff, const BufferInfo& bi) const;
  bool masked_store(const Stmt& guarded);
  std::string index_text(const Linear& l);
  Linear flat_index(const Buffer& b, const std::vector<Expr>& indices);
  std::string scalar_access(const Buffer& b, const std::vector<Expr>& indices);
  const BufferInfo& info(const Buffer& b) const;

  void decide_register_layout(const Stmt& alloc);

  void line(const std::string& text) {
    // A line shallower than a value's declaration closed its scope.
    for (auto it = hoisted_.begin(); it != hoisted_.end();) {
      it = it->second.second > indent_ ? hoisted_.erase(it) : std::next(it);
    }
    body_ << std::string(2 * indent_, ' ') << text << "\n";
  }
  std::string hoist(const std::string& value);
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("emit_cpp: program '" + program_.name + "': " + what);
  }
  void use_width(int64_t w) { widths_.insert(w); }
  void declare_var(const std::string& v);

  const ir::Program& program_;
  CppEmitOptions options_;
  std::ostringstream body_;
  int indent_ = 1;
  std::map<const BufferNode*, BufferInfo> buffers_;
  std::set<std::string> names_;        // buffer names
  std::set<std::string> live_vars_;    // loop variables in scope
  std::map<std::string, int64_t> consts_;  // unrolled loop variables -> current value
  std::map<std::string, int64_t> extents_;  // loop variables emitted as loops -> their extent
  std::string vec_var_;                // the vectorized loop variable, when inside one
  int64_t vec_width_ = 0;
  bool in_parallel_ = false;
  bool in_region_ = false;  // inside one `omp parallel` region shared by several loops
  bool in_prepare_ = false;
  std::set<int64_t> widths_;
  std::set<int64_t> transposes_;  // widths whose in-register transpose is used
  std::set<int64_t> masked_;      // widths whose masked load and store are used
  std::set<int64_t> evens_;       // widths whose even-lane pick (stride-2 loads) is used
  std::set<int64_t> aligns_;      // widths whose lane shift and lane zeroing are used
  PairUses known_pairs_;          // from a first emission of the same program
  PairUses pair_uses_;            // this emission's
  // Vector values of read-only buffers declared once in the current scope
  // (hoist): by their text, their name and the indent of their declaration.
  std::map<std::string, std::pair<std::string, int>> hoisted_;
  int hoisted_count_ = 0;
  int in_conditional_ = 0;        // inside a branch of a ? : (nothing is hoisted from there)
  int transposed_writes_ = 0;     // names the temporaries of each
  int lane_copies_ = 0;           // names the arrays of lane_write_loop
  const ir::StmtNode* lane_write_ = nullptr;  // the loop of the lane write being emitted, if any
};

const BufferInfo& CppEmitter::info(const Buffer& b) const {
  auto it = buffers_.find(b.get());
  if (it == buffers_.end()) {
    fail("buffer '" + b->name + "' is used but is neither a param, a workspace buffer, nor allocated"
         " in an enclosing scope");
  }
  return it->second;
}

void CppEmitter::declare_var(const std::string& v) {
  if (!is_identifier(v)) fail("loop variable '" + v + "' is not a valid C identifier");
  if (names_.count(v)) fail("loop variable '" + v + "' has the name of a buffer");
  if (live_vars_.count(v) || consts_.count(v) || v == vec_var_) {
    fail("loop variable '" + v + "' shadows an enclosing loop of the same name");
  }
}

Linear CppEmitter::flat_index(const Buffer& b, const std::vector<Expr>& indices) {
  std::vector<Expr> idx;
  for (const Expr& i : indices) idx.push_back(substitute(i, consts_));
  return ir::flat_offset(b, idx);
}

std::string CppEmitter::index_text(const Linear& l) {
  std::string s;
  for (const Linear::Term& t : l.terms) {
    std::string term = scalar(t.expr);
    int64_t c = t.coeff;
    if (s.empty()) {
      if (c < 0) s += "-";
    } else {
      s += c < 0 ? " - " : " + ";
    }
    const int64_t abs_c = c < 0 ? -c : c;
    s += abs_c == 1 ? term : term + " * " + int_literal(abs_c);
  }
  if (s.empty()) return int_literal(l.constant);
  if (l.constant > 0) s += " + " + int_literal(l.constant);
  if (l.constant < 0) s += " - " + int_literal(-l.constant);
  return s;
}

std::string CppEmitter::scalar_access(const Buffer& b, const std::vector<Expr>& indices) {
  const BufferInfo& bi = info(b);
  Linear flat = flat_index(b, indices);
  if (!bi.vector_array) return bi.name + "[" + index_text(flat) + "]";
  // One lane of a vector register array.
  const int64_t w = bi.width;
  if (flat.is_constant()) {
    return bi.name + "[" + int_literal(flat.constant / w) + "][" + int_literal(flat.constant % w) + "]";
  }
  std::string idx = index_text(flat);
  return bi.name + "[(" + idx + ") / " + int_literal(w) + "][(" + idx + ") % " + int_literal(w) + "]";
}

std::string CppEmitter::scalar(const Expr& e0) {
  Expr e = substitute(e0, consts_);
  switch (e->kind) {
    case ExprKind::kIntImm:
      return int_literal(e->int_value);
    case ExprKind::kFloatImm:
      return float_literal(e->float_value);
    case ExprKind::kVar:
      if (e->var_name == vec_var_) {
        fail("the vectorized loop variable '" + vec_var_ + "' is used where a scalar is needed");
      }
      if (!live_vars_.count(e->var_name)) {
        fail("variable '" + e->var_name + "' is used outside of a loop that defines it");
      }
      return e->var_name;
    case ExprKind::kLoad:
      return scalar_access(e->buffer, e->indices);
    case ExprKind::kSelect:
      return "(" + scalar(e->a) + " ? " + scalar(e->b) + " : " + scalar(e->c) + ")";
    case ExprKind::kBinary: {
      const std::string a = scalar(e->a), b = scalar(e->b);
      const bool is_float = e->a->dtype == DType::kFloat;
      switch (e->op) {
        case BinaryOp::kAdd: return "(" + a + " + " + b + ")";
        case BinaryOp::kSub: return "(" + a + " - " + b + ")";
        case BinaryOp::kMul: return "(" + a + " * " + b + ")";
        case BinaryOp::kDiv:
          if (is_float) return "(" + a + " / " + b + ")";
          if (non_negative(e->a) && non_negative(e->b)) return "(" + a + " / " + b + ")";
          return "kt_floordiv(" + a + ", " + b + ")";
        case BinaryOp::kMod:
          if (non_negative(e->a) && non_negative(e->b)) return "(" + a + " % " + b + ")";
          return "kt_floormod(" + a + ", " + b + ")";
        case BinaryOp::kMin: return std::string(is_float ? "kt_fmin(" : "kt_imin(") + a + ", " + b + ")";
        case BinaryOp::kMax: return std::string(is_float ? "kt_fmax(" : "kt_imax(") + a + ", " + b + ")";
        case BinaryOp::kLT: return "(" + a + " < " + b + ")";
        case BinaryOp::kLE: return "(" + a + " <= " + b + ")";
        case BinaryOp::kEQ: return "(" + a + " == " + b + ")";
        case BinaryOp::kNE: return "(" + a + " != " + b + ")";
        case BinaryOp::kAnd: return "(" + a + " && " + b + ")";
        case BinaryOp::kOr: return "(" + a + " || " + b + ")";
      }
    }
  }
  fail("unknown expression kind");
}

// Each lane computed as a scalar: loads whose index is not contiguous in the
// vectorized variable, and selects whose condition depends on it (evaluated
// per lane, so a guarded load never reads out of bounds).
std::string CppEmitter::gather(const Expr& e) {
  const std::string v = vec_var_;
  std::string s = "(" + vec_type(vec_width_) + "){";
  vec_var_.clear();
  live_vars_.insert(v);
  for (int64_t lane = 0; lane < vec_width_; ++lane) {
    consts_[v] = lane;
    s += (lane ? ", " : "") + scalar(e);
  }
  consts_.erase(v);
  live_vars_.erase(v);
  vec_var_ = v;
  return s + "}";
}

// cond with the comparisons that the enclosing loops' bounds decide (an
// affine difference that is negative, or not, for every value of the loop
// variables in it) replaced by their value, and "and"/"or" folded around
// them: the row tests of a tile that never reaches the image's edge vanish.
Expr CppEmitter::decide(const Expr& cond) const {
  if (!cond || cond->kind != ExprKind::kBinary) return cond;
  switch (cond->op) {
    case BinaryOp::kAnd:
    case BinaryOp::kOr: {
      const Expr a = decide(cond->a), b = decide(cond->b);
      const bool is_and = cond->op == BinaryOp::kAnd;
      for (const Expr& x : {a, b}) {
        if (x->kind == ExprKind::kIntImm && (x->int_value != 0) != is_and) return ir::int_imm(is_and ? 0 : 1);
      }
      if (a->kind == ExprKind::kIntImm) return b;
      if (b->kind == ExprKind::kIntImm) return a;
      return a == cond->a && b == cond->b ? cond : ir::binary(cond->op, a, b);
    }
    case BinaryOp::kLT:
    case BinaryOp::kLE: {
      if (cond->a->dtype != DType::kInt || cond->b->dtype != DType::kInt) return cond;
      Linear d = ir::linearize(cond->a);
      d.add(ir::linearize(cond->b), -1);
      d.drop_zeros();
      const std::optional<std::pair<int64_t, int64_t>> range = bounds(d);  // of a - b
      if (!range) return cond;
      const auto [lo, hi] = *range;
      const bool lt = cond->op == BinaryOp::kLT;
      if (lt ? hi < 0 : hi <= 0) return ir::int_imm(1);
      if (lt ? lo >= 0 : lo > 0) return ir::int_imm(0);
      return cond;
    }
    default:
      return cond;
  }
}

// The lanes for which cond holds, when that is known here: cond depends on
// no variable but the vectorized one and unrolled loops' (constants here).
std::optional<uint64_t> CppEmitter::lane_mask(const Expr& cond) {
  uint64_t mask = 0;
  for (int64_t lane = 0; lane < vec_width_; ++lane) {
    const std::optional<bool> holds = lane_holds(cond, lane);
    if (!holds) return std::nullopt;
    if (*holds) mask |= uint64_t{1} << lane;
  }
  return mask;
}

// select(cond, buf[contiguous], 0) where cond is known per lane (the kernel
// window's edges in an unrolled tile): one masked vector load, which reads
// nothing in the lanes cond excludes (they may lie outside the buffer).
// nullopt where that does not apply; the caller then builds it lane by lane.
std::optional<std::string> CppEmitter::masked_load(const Expr& e) {
  if (e->b->kind != ExprKind::kLoad || e->c->kind != ExprKind::kFloatImm || e->c->float_value != 0.0f) {
    return std::nullopt;
  }
  const BufferInfo& bi = info(e->b->buffer);
  const Linear flat = flat_index(e->b->buffer, e->b->indices);
  const std::optional<int64_t> c = flat.coeff_of(vec_var_);
  const bool strided = stride_two(c, bi);
  if (bi.vector_array || !c || (*c != 1 && !strided)) return std::nullopt;
  const std::optional<uint64_t> mask = lane_mask(e->a);
  if (!mask) return std::nullopt;
  if (*mask == 0) return "kt_splat" + std::to_string(vec_width_) + "(0.0f)";
  if (strided) return window_even_load(bi, flat.without(vec_var_), e->a, *mask);
  return masked_read(bi.name, flat.without(vec_var_), *mask);
}

// Where a stride-2 read of buf[base + 2 l] takes its pair of vectors, and
// which elements of it: base itself, even elements; where base is odd
// whatever the variables are, base - 1, odd elements (a window one column to
// the right of an even one then reads the same two vectors).
std::pair<Linear, int64_t> pair_of(const Linear& base) {
  Linear first = base;
  first.constant -= first.constant & 1;
  if (first.divisible_by(2) && base.constant % 2 != 0) return {first, 1};
  return {base, 0};
}

// cond at one lane of the vectorized loop, which may lie outside the vector
// (the window's validity there); nullopt where that is not known here.
std::optional<bool> CppEmitter::lane_holds(const Expr& cond, int64_t lane) {
  std::map<std::string, int64_t> lane_consts = consts_;
  lane_consts[vec_var_] = lane;
  const Expr c = decide(substitute(cond, lane_consts));
  if (c->kind != ExprKind::kIntImm) return std::nullopt;
  return c->int_value != 0;
}

// value (a vector computed from read-only buffers alone) as a constant of
// the current scope, declared where it is first used: a register tile's
// statements then compute a window read that several of them share once
// (the compiler does not always find that itself across a large unrolled
// tile). Inside a branch of a conditional, where the value may not be
// computable (a row outside the image), only one declared before is reused.
std::string CppEmitter::hoist(const std::string& value) {
  auto it = hoisted_.find(value);
  if (it != hoisted_.end()) return it->second.first;
  if (in_conditional_ > 0) return value;
  const std::string name = "kt_v" + std::to_string(hoisted_count_++);
  line("const " + vec_type(vec_width_) + " " + name + " = " + value + ";");
  hoisted_.emplace(value, std::make_pair(name, indent_));
  return name;
}

// True if buf[at] lies inside the buffer for every value of the enclosing
// loops' variables.
bool CppEmitter::provably_inside(const Linear& at, const BufferInfo& bi) const {
  int64_t size = 1;
  for (int64_t d : bi.shape) size *= d;
  const std::optional<std::pair<int64_t, int64_t>> range = bounds(at);
  return range && range->first >= 0 && range->second < size;
}

// The least and greatest value of l over the enclosing loops' variables
// (each from 0 to its extent - 1); nullopt if l has a term that is not such
// a variable.
std::optional<std::pair<int64_t, int64_t>> CppEmitter::bounds(const Linear& l) const {
  int64_t lo = l.constant, hi = l.constant;
  for (const Linear::Term& term : l.terms) {
    if (term.expr->kind != ExprKind::kVar) return std::nullopt;
    auto it = extents_.find(term.expr->var_name);
    if (it == extents_.end() || it->second < 1) return std::nullopt;
    const int64_t last = term.coeff * (it->second - 1);
    lo += std::min<int64_t>(0, last);
    hi += std::max<int64_t>(0, last);
  }
  return std::make_pair(lo, hi);
}

// The even (odd = 0) or odd elements of the two vectors at buf[first], not
// zeroed: each vector loaded with the elements that own_lane says the pick
// uses (lane l is element 2 l + odd) and every other element that lies
// inside the buffer whatever the loop variables are. Every read of the same
// position then loads the same vectors with the same masks, whatever its
// tap: the compiler loads each pair once per tile, and a stride-2 window's
// even and odd taps share it.
std::string CppEmitter::pair_pick(const BufferInfo& bi, const Linear& first, int64_t odd,
                                  const std::function<bool(int64_t)>& own_lane) {
  const int64_t w = vec_width_;
  uint64_t element[2] = {0, 0};
  for (int64_t e = 0; e < 2 * w; ++e) {
    Linear at = first;
    at.constant += e;
    const bool own = (e - odd) % 2 == 0 && e >= odd && own_lane((e - odd) / 2);
    if (own || provably_inside(at, bi)) element[e / w] |= uint64_t{1} << (e % w);
  }
  evens_.insert(w);
  PairUse& use = pair_uses_[pair_key(bi, first)];
  (odd ? use.odd : use.even) = true;
  Linear second = first;
  second.constant += w;
  const std::string pick = std::string(odd ? "kt_odds" : "kt_evens") + std::to_string(w) + "(" +
                           masked_read(bi.name, first, element[0]) + ", " +
                           masked_read(bi.name, second, element[1]) + ")";
  return bi.writable ? pick : hoist(pick);
}

// A stride-2 window read, select(cond, buf[base + 2 l], 0) for the lanes l
// of mask: the even or odd elements of a pair of vectors (pair_pick), the
// lanes outside mask zeroed. Pairs two elements apart hold the same picks
// one lane apart, so a read whose pair a neighbouring pair outranks is that
// neighbour's pick shifted one lane (the lane shifted in from the pick of
// the pair one vector further, which the vector beside reads): a lane shift
// in place of two more loads and a two-vector shuffle. A pair ranks by how
// many of its two neighbours the window reads (the middle of a 5x5 or 7x7
// window), then by whether an even tap reads it (a 3x3 window's middle
// pair, not the pair left of it that only its left tap reads); only a pair
// that no neighbour outranks is loaded for others. Which pairs the taps
// read comes from a first emission of the program (known_pairs_).
std::string CppEmitter::window_even_load(const BufferInfo& bi, const Linear& base, const Expr& cond,
                                         uint64_t mask) {
  const int64_t w = vec_width_;
  const uint64_t all = (uint64_t{1} << w) - 1;
  if (mask == 0) return "kt_splat" + std::to_string(w) + "(0.0f)";
  auto valid = [&](int64_t lane) {
    if (lane >= 0 && lane < w) return (mask >> lane & 1) != 0;
    return lane_holds(cond, lane).value_or(false);
  };
  // Not a structured binding: the lambdas below capture first (clang 14 cannot).
  const std::pair<Linear, int64_t> pair = pair_of(base);
  const Linear& first = pair.first;
  const int64_t odd = pair.second;
  auto at = [&](int64_t delta) {
    Linear l = first;
    l.constant += delta;
    return l;
  };
  auto known = [&](int64_t delta) { return known_pairs_.count(pair_key(bi, at(delta))) > 0; };
  // The rank of the pair at first + delta; -1 where the window does not read it.
  auto rank = [&](int64_t delta) {
    auto it = known_pairs_.find(pair_key(bi, at(delta)));
    if (it == known_pairs_.end()) return -1;
    return 2 * (int{known(delta - 2)} + int{known(delta + 2)}) + (it->second.even ? 1 : 0);
  };
  std::string value;
  bool shifted = false;
  for (int64_t dir : {2, -2}) {
    const int r = rank(dir);
    if (r <= rank(0) || rank(2 * dir) > r) continue;  // not above this pair, or itself shifted
    // From the right (dir 2): lane l is lane l - 1 of the neighbour's pick,
    // lane 0 the last of the pick one vector left. From the left: lane l + 1,
    // lane w - 1 the first of the pick one vector right.
    const int64_t beyond = dir > 0 ? dir - 2 * w : dir + 2 * w;
    const bool need_beyond = ((dir > 0 ? mask : mask >> (w - 1)) & 1) != 0;
    if (need_beyond && !known(beyond)) continue;
    const std::string near = pair_pick(bi, at(dir), odd, [&](int64_t l) { return valid(dir > 0 ? l + 1 : l - 1); });
    const std::string far =
        need_beyond ? pair_pick(bi, at(beyond), odd, [&](int64_t l) { return valid(dir > 0 ? l - w + 1 : l + w - 1); })
                    : "kt_splat" + std::to_string(w) + "(0.0f)";
    aligns_.insert(w);
    value = "kt_alignr" + std::to_string(w) + "(" + (dir > 0 ? near + ", " + far + ", " + std::to_string(w - 1)
                                                          : far + ", " + near + ", 1") + ")";
    shifted = true;
    break;
  }
  if (!shifted) value = pair_pick(bi, first, odd, valid);
  if (mask != all) {
    aligns_.insert(w);
    value = "kt_zero" + std::to_string(w) + "(" + value + ", " + std::to_string(mask) + "u)";
  }
  return bi.writable || (!shifted && mask == all) ? value : hoist(value);
}

// The lanes of mask of the vector at buf[at], zero in the others: a plain
// load for every lane, a zero vector for none, otherwise a masked load.
std::string CppEmitter::masked_read(const std::string& buffer, const Linear& at, uint64_t mask) {
  const std::string w = std::to_string(vec_width_);
  if (mask == 0) return "kt_splat" + w + "(0.0f)";
  const std::string addr = "&" + buffer + "[" + index_text(at) + "]";
  if (mask == (uint64_t{1} << vec_width_) - 1) return "kt_load" + w + "(" + addr + ")";
  masked_.insert(vec_width_);
  return "kt_maskload" + w + "(" + addr + ", " + std::to_string(mask) + "u)";
}

// A read with stride 2 along the lanes (coefficient 2) that even_load can
// emit: of a buffer in memory, in vectors of 4 to 16 lanes.
bool CppEmitter::stride_two(const std::optional<int64_t>& coeff, const BufferInfo& bi) const {
  return coeff && *coeff == 2 && !bi.vector_array && vec_width_ >= 4 && vec_width_ <= 16;
}

std::string CppEmitter::vector(const Expr& e0) {
  Expr e = substitute(e0, consts_);
  if (e->dtype != DType::kFloat) fail("a vectorized store's value must be a float expression");
  const std::string w = std::to_string(vec_width_);
  if (!mentions(e, vec_var_)) return "kt_splat" + w + "(" + scalar(e) + ")";
  switch (e->kind) {
    case ExprKind::kLoad: {
      const BufferInfo& bi = info(e->buffer);
      Linear flat = flat_index(e->buffer, e->indices);
      std::optional<int64_t> c = flat.coeff_of(vec_var_);
      if (c && *c == 1) {
        Linear base = flat.without(vec_var_);
        if (bi.vector_array) {
          if (bi.width != vec_width_ || !base.divisible_by(vec_width_)) {
            fail("internal: unaligned vector access to register buffer '" + bi.name + "'");
          }
          return bi.name + "[" + index_text(base.divided_by(vec_width_)) + "]";
        }
        return "kt_load" + w + "(&" + bi.name + "[" + index_text(base) + "])";
      }
      if (stride_two(c, bi)) {
        // Every other element (a stride-2 window): two vector loads, the second
        // stopping at the last element used, and one two-vector shuffle.
        const uint64_t all = (uint64_t{1} << vec_width_) - 1;
        return even_load(bi.name, flat.without(vec_var_), all);
      }
      return gather(e);
    }
    case ExprKind::kBinary: {
      const std::string a = vector(e->a), b = vector(e->b);
      switch (e->op) {
        case BinaryOp::kAdd: return "(" + a + " + " + b + ")";
        case BinaryOp::kSub: return "(" + a + " - " + b + ")";
        case BinaryOp::kMul: return "(" + a + " * " + b + ")";
        case BinaryOp::kDiv: return "(" + a + " / " + b + ")";
        case BinaryOp::kMin: return "kt_vmin" + w + "(" + a + ", " + b + ")";
        case BinaryOp::kMax: return "kt_vmax" + w + "(" + a + ", " + b + ")";
        default: fail("float expression with an integer operator");
      }
    }
    case ExprKind::kSelect:
      if (mentions(e->a, vec_var_)) {
        if (std::optional<std::string> m = masked_load(e)) return *m;
        return gather(e);
      }
      {
        const Expr c = decide(e->a);
        if (c->kind == ExprKind::kIntImm) return vector(c->int_value != 0 ? e->b : e->c);
        ++in_conditional_;
        const std::string taken = vector(e->b), other = vector(e->c);
        --in_conditional_;
        return "(" + scalar(c) + " ? " + taken + " : " + other + ")";
      }
    default:
      return gather(e);
  }
}

// ---- register buffers ----

// A register buffer becomes an array of vectors when every contiguous vector
// access to it uses one width and starts at a multiple of it: then each
// access is a whole vector and the compiler keeps the array in registers
// (the micro-kernel's accumulators). Other accesses read or write one lane.
void CppEmitter::decide_register_layout(const Stmt& alloc) {
  const Buffer& buf = alloc->buffer;
  BufferInfo& bi = buffers_.at(buf.get());
  if (buf->scope != Scope::kRegister || buf->shape.empty()) return;
  int64_t width = 0;
  bool ok = true;
  std::string vv;  // vectorized variable in the walk
  int64_t vw = 0;
  std::function<void(const Expr&)> walk_expr;
  auto access = [&](const std::vector<Expr>& indices) {
    if (vv.empty()) return;
    Linear l = ir::flat_offset(buf, indices);
    std::optional<int64_t> c = l.coeff_of(vv);
    if (!c) {
      ok = false;
      return;
    }
    if (*c == 0) return;  // broadcast of one lane
    if (*c != 1 || !l.without(vv).divisible_by(vw) || (width != 0 && width != vw)) {
      ok = false;
      return;
    }
    width = vw;
  };
  walk_expr = [&](const Expr& e) {
    if (!e) return;
    if (e->kind == ExprKind::kLoad) {
      if (e->buffer == buf) access(e->indices);
      for (const Expr& i : e->indices) walk_expr(i);
      return;
    }
    walk_expr(e->a);
    walk_expr(e->b);
    walk_expr(e->c);
  };
  std::function<void(const Stmt&)> walk = [&](const Stmt& s) {
    if (!s) return;
    switch (s->kind) {
      case StmtKind::kFor: {
        const bool vec = s->loop_kind == LoopKind::kVectorized && s->extent > 1 && vv.empty();
        if (vec) {
          vv = s->loop_var;
          vw = s->extent;
        }
        walk(s->body);
        if (vec) vv.clear();
        break;
      }
      case StmtKind::kSeq:
        for (const Stmt& c : s->seq) walk(c);
        break;
      case StmtKind::kStore:
        if (s->buffer == buf) access(s->indices);
        for (const Expr& i : s->indices) walk_expr(i);
        walk_expr(s->value);
        break;
      case StmtKind::kIf:
        walk_expr(s->cond);
        walk(s->then_body);
        walk(s->else_body);
        break;
      case StmtKind::kAllocate:
        walk(s->body);
        break;
      case StmtKind::kBarrier:
        break;
    }
  };
  walk(alloc->body);
  if (ok && width > 1 && buf->shape.back() % width == 0) {
    bi.vector_array = true;
    bi.width = width;
  }
}

// ---- statements ----

void CppEmitter::allocate(const Stmt& s) {
  const Buffer& b = s->buffer;
  if (!is_identifier(b->name)) fail("buffer name '" + b->name + "' is not a valid C identifier");
  if (names_.count(b->name) || live_vars_.count(b->name)) {
    fail("allocation '" + b->name + "' reuses the name of a buffer or loop variable in scope");
  }
  if (b->scope == Scope::kGlobal) fail("allocation '" + b->name + "' has global scope");
  buffers_[b.get()] = BufferInfo{b->name, b->shape, true, false, 0};
  names_.insert(b->name);
  decide_register_layout(s);
  const BufferInfo& bi = buffers_.at(b.get());
  line("{");
  ++indent_;
  if (bi.vector_array) {
    use_width(bi.width);
    line(vec_type(bi.width) + " " + b->name + "[" + int_literal(b->elements() / bi.width) + "];");
  } else {
    line("alignas(64) float " + b->name + "[" + int_literal(b->elements()) + "];");
  }
  stmt(s->body);
  --indent_;
  line("}");
  names_.erase(b->name);
  buffers_.erase(b.get());
}

void CppEmitter::store(const Stmt& s) {
  const BufferInfo& bi = info(s->buffer);
  if (!bi.writable) {
    fail(std::string(in_prepare_ ? "prepare" : "body") + " stores to '" + bi.name +
         "', which it may only read");
  }
  line(scalar_access(s->buffer, s->indices) + (s->accumulate ? " += " : " = ") + scalar(s->value) + ";");
}

void CppEmitter::vector_store(const Stmt& s) {
  const BufferInfo& bi = info(s->buffer);
  if (!bi.writable) {
    fail(std::string(in_prepare_ ? "prepare" : "body") + " stores to '" + bi.name +
         "', which it may only read");
  }
  Linear flat = flat_index(s->buffer, s->indices);
  std::optional<int64_t> c = flat.coeff_of(vec_var_);
  if (!c || *c != 1) {
    fail("vectorized loop '" + vec_var_ + "': the store to '" + bi.name +
         "' is not contiguous in the loop variable (coefficient " +
         (c ? std::to_string(*c) : std::string("non-affine")) +
         "); vectorize the loop over the innermost dimension of the stored buffer");
  }
  if (s->accumulate) {
    // Adding a known zero (a kernel tap that reads only padding here) does nothing.
    const Expr v = substitute(s->value, consts_);
    if (v->kind == ExprKind::kFloatImm && v->float_value == 0.0f) return;
  }
  const std::string value = vector(s->value);
  Linear base = flat.without(vec_var_);
  if (bi.vector_array) {
    if (bi.width != vec_width_ || !base.divisible_by(vec_width_)) {
      fail("internal: unaligned vector store to register buffer '" + bi.name + "'");
    }
    line(bi.name + "[" + index_text(base.divided_by(vec_width_)) + "]" + (s->accumulate ? " += " : " = ") +
         value + ";");
    return;
  }
  const std::string w = std::to_string(vec_width_);
  const std::string addr = "&" + bi.name + "[" + index_text(base) + "]";
  if (s->accumulate) {
    line("kt_store" + w + "(" + addr + ", kt_load" + w + "(" + addr + ") + " + value + ");");
  } else {
    line("kt_store" + w + "(" + addr + ", " + value + ");");
  }
}

// Lanes l of mask from buf[base + 2 l]: the even elements of two vectors,
// loaded with masks that take only the elements used (never one past the
// last lane's), and picked by one two-vector shuffle. Where base is odd
// whatever the variables are, the odd elements of the two vectors from
// base - 1 instead: a window one column to the right of an even one then
// reads the same two vectors (a stride-2 kernel's neighbouring taps).
std::string CppEmitter::even_load(const std::string& buffer, const Linear& base, uint64_t mask) {
  const int64_t w = vec_width_;
  const auto [first, odd] = pair_of(base);
  uint64_t lo = 0, hi = 0;  // element masks of the two vectors
  for (int64_t l = 0; l < w; ++l) {
    if (!(mask >> l & 1)) continue;
    const int64_t element = 2 * l + odd;
    if (element < w) lo |= uint64_t{1} << element;
    else hi |= uint64_t{1} << (element - w);
  }
  evens_.insert(w);
  Linear second = first;
  second.constant += w;
  return std::string(odd ? "kt_odds" : "kt_evens") + std::to_string(w) + "(" + masked_read(buffer, first, lo) + ", " +
         masked_read(buffer, second, hi) + ")";
}

// if (cond) buf[contiguous] = value, with cond known per lane (a row's
// last, cut vector in an unrolled tile): one masked vector store. Returns
// false, emitting nothing, where that does not apply.
bool CppEmitter::masked_store(const Stmt& s) {
  const Stmt& st = s->then_body;
  if (s->else_body || !st || st->kind != StmtKind::kStore || st->accumulate) return false;
  const BufferInfo& bi = info(st->buffer);
  if (!bi.writable || bi.vector_array) return false;
  const Linear flat = flat_index(st->buffer, st->indices);
  const std::optional<int64_t> c = flat.coeff_of(vec_var_);
  if (!c || *c != 1) return false;
  const std::optional<uint64_t> mask = lane_mask(s->cond);
  if (!mask) return false;
  if (*mask == 0) return true;
  if (*mask == (uint64_t{1} << vec_width_) - 1) {
    vector_store(st);
    return true;
  }
  masked_.insert(vec_width_);
  const std::string w = std::to_string(vec_width_);
  line("kt_maskstore" + w + "(&" + bi.name + "[" + index_text(flat.without(vec_var_)) + "], " +
       std::to_string(*mask) + "u, " + vector(st->value) + ");");
  return true;
}

void CppEmitter::unrolled(const Stmt& s, bool vector_context) {
  declare_var(s->loop_var);
  bool has_alloc = false;
  ir::visit(s->body, [&](const ir::StmtNode& n) { has_alloc |= n.kind == StmtKind::kAllocate; });
  for (int64_t i = 0; i < s->extent; ++i) {
    consts_[s->loop_var] = i;
    if (has_alloc) {
      line("{");
      ++indent_;
    }
    if (vector_context) {
      vector_stmt(s->body);
    } else {
      stmt(s->body);
    }
    if (has_alloc) {
      --indent_;
      line("}");
    }
  }
  consts_.erase(s->loop_var);
}

// Per iteration of a loop nest that only stores: the stores it makes (inner
// loops counted out), or nullopt when it is not such a nest (it stores to a
// register tile, or holds anything but stores, ifs and serial or unrolled
// loops). The register tiles it reads go to `tiles`.
std::optional<int64_t> CppEmitter::lane_write_stores(const Stmt& s, std::set<const BufferNode*>* tiles) const {
  bool ok = true;
  int64_t stores = 0, times = 1;
  std::function<void(const Expr&)> walk_expr = [&](const Expr& e) {
    if (!e) return;
    if (e->kind == ExprKind::kLoad) {
      auto it = buffers_.find(e->buffer.get());
      if (it != buffers_.end() && it->second.vector_array && tiles) tiles->insert(e->buffer.get());
      for (const Expr& i : e->indices) walk_expr(i);
    }
    walk_expr(e->a);
    walk_expr(e->b);
    walk_expr(e->c);
  };
  std::function<void(const Stmt&)> walk = [&](const Stmt& t) {
    if (!t || !ok) return;
    switch (t->kind) {
      case StmtKind::kSeq:
        for (const Stmt& c : t->seq) walk(c);
        break;
      case StmtKind::kFor:
        ok = t->loop_kind == LoopKind::kSerial || t->loop_kind == LoopKind::kUnrolled;
        times *= t->extent;
        walk(t->body);
        times /= t->extent;
        break;
      case StmtKind::kIf:
        walk_expr(t->cond);
        walk(t->then_body);
        walk(t->else_body);
        break;
      case StmtKind::kStore: {
        auto it = buffers_.find(t->buffer.get());
        ok = it != buffers_.end() && !it->second.vector_array;
        stores += times;
        for (const Expr& i : t->indices) walk_expr(i);
        walk_expr(t->value);
        break;
      }
      case StmtKind::kAllocate:
      case StmtKind::kBarrier:
        ok = false;
        break;
    }
  };
  walk(s->body);
  if (!ok) return std::nullopt;
  return stores;
}

// The unroll factor of a loop of a lane write (see lane_write_loop): about
// 32 stores an iteration, as fast as written out in full (one at a time was
// 6% slower on a depthwise kernel).
int64_t lane_write_unroll(int64_t extent, int64_t stores_per_iteration) {
  int64_t unroll = 1;
  while (unroll < 16 && 2 * unroll * stores_per_iteration <= 32 && 2 * unroll <= extent) unroll *= 2;
  return unroll;
}

// An unrolled loop nest that writes hundreds of lanes of register tiles out
// to memory, one by one (the NCHW write of a channel-blocked tile too narrow
// to transpose, e.g. 48 channels x 7 pixels): written out in full it is as
// many lane extracts, which cost GCC more than the rest of the kernel (2.7 s
// of 3.3 s for one depthwise kernel) for no speed. Instead the tiles it
// reads are copied whole into float arrays, one vector store each, and the
// nest reads them as ordinary loops. The tiles stay arrays indexed by
// constants, so they stay in registers in the compute. The nest's own loop
// and the loops inside it longer than kMaxExplicitUnroll are unrolled in
// part (lane_write_unroll; written out in full from the copy, the 48 x 7
// depthwise write was 8% slower), the other inner loops written out.
// Returns false, emitting nothing, for any other loop nest and for one of
// at most kMaxLaneStores stores.
bool CppEmitter::lane_write_loop(const Stmt& s) {
  constexpr int64_t kMaxLaneStores = 64;
  if (lane_write_) return false;
  std::set<const BufferNode*> read;
  const std::optional<int64_t> stores = lane_write_stores(s, &read);
  if (!stores || read.empty() || *stores * s->extent <= kMaxLaneStores) return false;

  line("{");
  ++indent_;
  std::vector<std::pair<const BufferNode*, BufferInfo>> saved;
  for (const BufferNode* b : read) {
    BufferInfo& bi = buffers_.at(b);
    const std::string copy = "kt_lanes" + std::to_string(lane_copies_++);
    line("alignas(64) float " + copy + "[" + int_literal(b->elements()) + "];");
    for (int64_t v = 0; v < b->elements() / bi.width; ++v) {
      line("kt_store" + std::to_string(bi.width) + "(&" + copy + "[" + int_literal(v * bi.width) + "], " +
           bi.name + "[" + int_literal(v) + "]);");
    }
    saved.emplace_back(b, bi);
    bi = BufferInfo{copy, bi.shape, false, false, 0};
  }
  lane_write_ = s.get();
  for_loop(s);
  lane_write_ = nullptr;
  for (auto& [b, bi] : saved) buffers_.at(b) = std::move(bi);
  --indent_;
  line("}");
  return true;
}

// A register tile written out across its lanes: two unrolled loops around
//   out[base + oc * c + r] = acc[ar * r + c + a0]
// where acc is an array of w-lane vectors, so that c runs along acc's lanes
// while r runs along out's rows (an NCHW output written from accumulators
// that hold output channels in their lanes). Element by element that is a
// lane extract and a scalar store per element; instead each w x w block is
// transposed in registers (w * log2(w) two-vector shuffles) and written as w
// row pieces of up to w floats; a block of fewer than w/2 rows (mostly
// padding) is written lane by lane, and so is a tile of fewer than w/2 rows
// altogether. Returns false, emitting nothing, for any other loop nest (the
// caller then emits it as it is).
bool CppEmitter::transposed_write(const Stmt& s) {
  const Stmt& inner = s->body;
  if (!inner || inner->kind != StmtKind::kFor || inner->loop_kind != LoopKind::kUnrolled) return false;
  const Stmt& st = inner->body;
  if (!st || st->kind != StmtKind::kStore || st->accumulate || !st->value ||
      st->value->kind != ExprKind::kLoad) {
    return false;
  }
  const Buffer& acc = st->value->buffer;
  auto acc_it = buffers_.find(acc.get());
  auto out_it = buffers_.find(st->buffer.get());
  if (acc_it == buffers_.end() || out_it == buffers_.end()) return false;
  const BufferInfo& ai = acc_it->second;
  const BufferInfo& oi = out_it->second;
  const int64_t w = ai.width;
  if (!ai.vector_array || oi.vector_array || !oi.writable || (w != 4 && w != 8 && w != 16)) return false;
  const std::string& x = s->loop_var;
  const std::string& y = inner->loop_var;
  if (x == y || consts_.count(x) || consts_.count(y) || live_vars_.count(x) || live_vars_.count(y)) return false;
  const Linear a = flat_index(acc, st->value->indices);
  const Linear o = flat_index(st->buffer, st->indices);
  const std::optional<int64_t> ax = a.coeff_of(x), ay = a.coeff_of(y), ox = o.coeff_of(x), oy = o.coeff_of(y);
  if (!ax || !ay || !ox || !oy) return false;
  const Linear a0 = a.without(x).without(y);
  if (!a0.is_constant()) return false;
  // c: the lane variable (stride 1 in acc); r: the row variable (stride 1 in out).
  const bool x_is_lane = *ax == 1 && *oy == 1;
  const bool y_is_lane = *ay == 1 && *ox == 1;
  if (x_is_lane == y_is_lane) return false;
  const int64_t lanes_extent = x_is_lane ? s->extent : inner->extent;
  const int64_t rows_extent = x_is_lane ? inner->extent : s->extent;
  const int64_t acc_row_stride = x_is_lane ? *ay : *ax;
  const int64_t out_lane_stride = x_is_lane ? *ox : *oy;
  if (lanes_extent % w != 0 || acc_row_stride % w != 0 || a0.constant % w != 0 || 2 * rows_extent < w ||
      lanes_extent * rows_extent > 4096) {
    return false;
  }
  // Every element read must lie inside acc.
  const int64_t last = a0.constant + acc_row_stride * (rows_extent - 1) + lanes_extent - 1;
  if (a0.constant < 0 || acc_row_stride < 0 || last >= acc->elements()) return false;
  const Linear base = o.without(x).without(y);
  const std::string& lane_var = x_is_lane ? x : y;
  const std::string& row_var = x_is_lane ? y : x;

  transposes_.insert(w);
  use_width(w);
  const std::string t = "kt_tr" + std::to_string(transposed_writes_++);
  const std::string zero = "kt_splat" + std::to_string(w) + "(0.0f)";
  line("{");
  ++indent_;
  line(vec_type(w) + " " + t + "[" + int_literal(w) + "];");
  for (int64_t g = 0; g < lanes_extent / w; ++g) {
    for (int64_t r0 = 0; r0 < rows_extent; r0 += w) {
      const int64_t rows = std::min(w, rows_extent - r0);
      if (2 * rows < w) {
        // A block mostly of padding rows: its few rows lane by lane, as the
        // loops would be written out (cheaper than a transpose of w vectors,
        // measured on 7-pixel rows).
        for (int64_t l = 0; l < w; ++l) {
          for (int64_t j = 0; j < rows; ++j) {
            consts_[lane_var] = g * w + l;
            consts_[row_var] = r0 + j;
            store(st);
          }
        }
        consts_.erase(lane_var);
        consts_.erase(row_var);
        continue;
      }
      for (int64_t j = 0; j < w; ++j) {
        if (j < rows) {
          const int64_t v = (a0.constant + acc_row_stride * (r0 + j) + g * w) / w;
          line(t + "[" + int_literal(j) + "] = " + ai.name + "[" + int_literal(v) + "];");
        } else {
          line(t + "[" + int_literal(j) + "] = " + zero + ";");
        }
      }
      line("kt_transpose" + std::to_string(w) + "(" + t + ");");
      for (int64_t l = 0; l < w; ++l) {
        Linear at = base;
        at.constant += out_lane_stride * (g * w + l) + r0;
        const std::string addr = "&" + oi.name + "[" + index_text(at) + "]";
        if (rows == w) {
          line("kt_store" + std::to_string(w) + "(" + addr + ", " + t + "[" + int_literal(l) + "]);");
        } else {
          line("memcpy(" + addr + ", &" + t + "[" + int_literal(l) + "], " + int_literal(rows) +
               " * sizeof(float));");
        }
      }
    }
  }
  --indent_;
  line("}");
  return true;
}

void CppEmitter::for_loop(const Stmt& s) {
  const std::string& v = s->loop_var;
  switch (s->loop_kind) {
    case LoopKind::kSerial:
    case LoopKind::kParallel:
    case LoopKind::kUnrolled:
      break;
    case LoopKind::kVectorized: {
      if (s->extent == 1) return unrolled(s, false);
      if (s->extent > kMaxVectorWidth || (s->extent & (s->extent - 1)) != 0) {
        fail("vectorized loop '" + v + "' has extent " + std::to_string(s->extent) +
             "; vector widths must be powers of two up to " + std::to_string(kMaxVectorWidth));
      }
      declare_var(v);
      vec_var_ = v;
      vec_width_ = s->extent;
      use_width(vec_width_);
      vector_stmt(s->body);
      vec_var_.clear();
      vec_width_ = 0;
      return;
    }
    default:
      fail("loop '" + v + "' is bound to a GPU block/thread index; the CPU code generator cannot emit it");
  }
  if (s->loop_kind == LoopKind::kUnrolled && transposed_write(s)) return;
  if (s->loop_kind == LoopKind::kUnrolled && lane_write_loop(s)) return;
  if (s->extent == 1 ||
      (s->loop_kind == LoopKind::kUnrolled && s->extent <= kMaxExplicitUnroll && s.get() != lane_write_)) {
    return unrolled(s, false);
  }
  declare_var(v);
  bool parallel = false;
  if (s->loop_kind == LoopKind::kParallel && !in_parallel_ && program_.threads > 1) {
    line(in_region_ ? std::string("#pragma omp for schedule(static)")
                    : "#pragma omp parallel for num_threads(" + threads_text() + ") schedule(static)");
    parallel = true;
  } else if (s->loop_kind == LoopKind::kUnrolled) {
    const int64_t unroll = lane_write_ ? lane_write_unroll(s->extent, *lane_write_stores(s)) : s->extent;
    line("#pragma GCC unroll " + std::to_string(unroll));
  }
  line("for (int64_t " + v + " = 0; " + v + " < " + int_literal(s->extent) + "; ++" + v + ") {");
  ++indent_;
  live_vars_.insert(v);
  extents_[v] = s->extent;
  if (parallel) in_parallel_ = true;
  stmt(s->body);
  if (parallel) in_parallel_ = false;
  extents_.erase(v);
  live_vars_.erase(v);
  --indent_;
  line("}");
}

std::string CppEmitter::threads_text() const {
  return options_.threads_hook.empty() ? std::to_string(program_.threads)
                                       : options_.threads_hook + "(" + std::to_string(program_.threads) + ")";
}

// Two or more parallel loops one after the other (a packing loop, then the
// compute) run in one `omp parallel` region, each an `omp for` with its
// barrier: one fork and join per call instead of one per loop, which small
// kernels on several threads feel.
bool CppEmitter::shares_one_region(const Stmt& seq) const {
  if (in_parallel_ || in_region_ || program_.threads <= 1 || seq->seq.size() < 2) return false;
  for (const Stmt& c : seq->seq) {
    if (!c || c->kind != StmtKind::kFor || c->loop_kind != LoopKind::kParallel || c->extent <= 1) return false;
  }
  return true;
}

void CppEmitter::parallel_region(const Stmt& seq) {
  line("#pragma omp parallel num_threads(" + threads_text() + ")");
  line("{");
  ++indent_;
  in_region_ = true;
  for (const Stmt& c : seq->seq) stmt(c);
  in_region_ = false;
  --indent_;
  line("}");
}

void CppEmitter::stmt(const Stmt& s) {
  if (!s) return;
  switch (s->kind) {
    case StmtKind::kFor:
      return for_loop(s);
    case StmtKind::kSeq:
      if (shares_one_region(s)) return parallel_region(s);
      for (const Stmt& c : s->seq) stmt(c);
      return;
    case StmtKind::kStore:
      return store(s);
    case StmtKind::kIf: {
      Expr cond = decide(substitute(s->cond, consts_));
      if (cond->kind == ExprKind::kIntImm) {  // decided by unrolled loop values or loop bounds
        if (cond->int_value != 0) return stmt(s->then_body);
        return stmt(s->else_body);
      }
      line("if (" + strip_parens(scalar(cond)) + ") {");
      ++indent_;
      stmt(s->then_body);
      --indent_;
      if (s->else_body) {
        line("} else {");
        ++indent_;
        stmt(s->else_body);
        --indent_;
      }
      line("}");
      return;
    }
    case StmtKind::kAllocate:
      return allocate(s);
    case StmtKind::kBarrier:
      fail("barrier is a GPU statement; the CPU code generator cannot emit it");
  }
}

// Inside a vectorized loop: stores become vector stores; guards and inner
// serial/unrolled loops must not depend on the vectorized variable.
void CppEmitter::vector_stmt(const Stmt& s) {
  if (!s) return;
  switch (s->kind) {
    case StmtKind::kStore:
      return vector_store(s);
    case StmtKind::kSeq:
      for (const Stmt& c : s->seq) vector_stmt(c);
      return;
    case StmtKind::kIf: {
      Expr cond = decide(substitute(s->cond, consts_));
      if (mentions(cond, vec_var_)) {
        if (masked_store(s)) return;
        fail("vectorized loop '" + vec_var_ + "': the condition " + ir::to_string(cond) +
             " depends on the loop variable and is not known per lane where it is emitted (only a store "
             "guarded by lanes known in unrolled code can be masked); use a select in the stored value instead");
      }
      if (cond->kind == ExprKind::kIntImm) {
        if (cond->int_value != 0) return vector_stmt(s->then_body);
        return vector_stmt(s->else_body);
      }
      line("if (" + strip_parens(scalar(cond)) + ") {");
      ++indent_;
      vector_stmt(s->then_body);
      --indent_;
      if (s->else_body) {
        line("} else {");
        ++indent_;
        vector_stmt(s->else_body);
        --indent_;
      }
      line("}");
      return;
    }
    case StmtKind::kFor: {
      if (s->loop_kind != LoopKind::kSerial && s->loop_kind != LoopKind::kUnrolled) {
        fail("vectorized loop '" + vec_var_ + "' contains loop '" + s->loop_var +
             "' that is not serial or unrolled");
      }
      if (s->extent == 1 || (s->loop_kind == LoopKind::kUnrolled && s->extent <= kMaxExplicitUnroll)) {
        return unrolled(s, true);
      }
      declare_var(s->loop_var);
      if (s->loop_kind == LoopKind::kUnrolled) line("#pragma GCC unroll " + std::to_string(s->extent));
      const std::string& v = s->loop_var;
      line("for (int64_t " + v + " = 0; " + v + " < " + int_literal(s->extent) + "; ++" + v + ") {");
      ++indent_;
      live_vars_.insert(v);
      extents_[v] = s->extent;
      vector_stmt(s->body);
      extents_.erase(v);
      live_vars_.erase(v);
      --indent_;
      line("}");
      return;
    }
    case StmtKind::kAllocate:
      fail("vectorized loop '" + vec_var_ + "' contains allocation '" + s->buffer->name +
           "'; allocate outside the vectorized loop");
    case StmtKind::kBarrier:
      fail("barrier is a GPU statement; the CPU code generator cannot emit it");
  }
}

// ---- the translation unit ----

// v[i][k] <- v[k][i] for a w x w block of w-lane vectors: at each stage d
// (w/2 down to 1) the off-diagonal d x d blocks of every 2d x 2d block are
// swapped, one two-vector shuffle per vector.
std::string transpose_helper(int64_t w) {
  const std::string t = vec_type(w), n = std::to_string(w);
  std::ostringstream os;
  os << "KT_INLINE void kt_transpose" << n << "(" << t << "* v) {\n";
  for (int64_t d = w / 2; d >= 1; d /= 2) {
    for (int64_t i = 0; i < w; ++i) {
      if (i & d) continue;
      std::string lo, hi;
      for (int64_t k = 0; k < w; ++k) {
        lo += (k ? ", " : "") + std::to_string((k & d) ? w + k - d : k);
        hi += (k ? ", " : "") + std::to_string((k & d) ? w + k : k + d);
      }
      os << "  { " << t << " a = v[" << i << "], b = v[" << i + d << "];\n"
         << "    v[" << i << "] = KT_SHUFFLE" << n << "(a, b, " << lo << ");\n"
         << "    v[" << i + d << "] = KT_SHUFFLE" << n << "(a, b, " << hi << "); }\n";
    }
  }
  os << "}\n";
  return os.str();
}

// The x86 intrinsics for a w-lane float vector: whether w has them (4, 8
// and 16 lanes), the condition under which their AVX-512 forms exist (VL
// below 16 lanes), the register types, the suffix of _mm<suffix>_ and the
// mask type.
struct X86Vector {
  bool intrinsics = false;
  std::string avx512, reg, ireg, suffix, mask_type;
};
X86Vector x86_vector(int64_t w) {
  X86Vector x;
  x.intrinsics = w == 4 || w == 8 || w == 16;
  x.avx512 = w == 16 ? "defined(__AVX512F__)" : "defined(__AVX512F__) && defined(__AVX512VL__)";
  x.reg = w == 16 ? "__m512" : w == 8 ? "__m256" : "__m128";
  x.ireg = x.reg + "i";
  x.suffix = w == 16 ? "512" : w == 8 ? "256" : "";
  x.mask_type = w == 16 ? "__mmask16" : "__mmask8";
  return x;
}

// kt_maskload<w>(p, m) reads lane i of p only where bit i of m is set
// (zero elsewhere) and kt_maskstore<w>(p, m, v) writes only those lanes, so
// the other lanes' addresses may lie outside the buffer: AVX-512 masked moves
// where the compiler targets AVX-512, AVX2-era vmaskmovps for 4 and 8 lanes,
// otherwise lane by lane.
std::string mask_helpers(int64_t w) {
  const std::string t = vec_type(w), n = std::to_string(w);
  const X86Vector x = x86_vector(w);
  std::ostringstream os;
  os << "KT_INLINE " << t << " kt_maskload" << n << "(const float* p, unsigned m) {\n";
  if (x.intrinsics) {
    os << "#if " << x.avx512 << "\n"
       << "  return (" << t << ")_mm" << x.suffix << "_maskz_loadu_ps((" << x.mask_type << ")m, p);\n";
    if (w != 16) {
      os << "#elif defined(__AVX2__)\n"
         << "  return (" << t << ")_mm" << x.suffix << "_maskload_ps(p, kt_lanes" << n << "(m));\n";
    }
    os << "#else\n";
  }
  os << "  " << t << " v = kt_splat" << n << "(0.0f);\n"
     << "  for (int i = 0; i < " << n << "; ++i) if (m >> i & 1u) v[i] = p[i];\n"
     << "  return v;\n";
  if (x.intrinsics) os << "#endif\n";
  os << "}\n";
  os << "KT_INLINE void kt_maskstore" << n << "(float* p, unsigned m, " << t << " v) {\n";
  if (x.intrinsics) {
    os << "#if " << x.avx512 << "\n"
       << "  _mm" << x.suffix << "_mask_storeu_ps(p, (" << x.mask_type << ")m, (" << x.reg << ")v);\n";
    if (w != 16) {
      os << "#elif defined(__AVX2__)\n"
         << "  _mm" << x.suffix << "_maskstore_ps(p, kt_lanes" << n << "(m), (" << x.reg << ")v);\n";
    }
    os << "#else\n";
  }
  os << "  for (int i = 0; i < " << n << "; ++i) if (m >> i & 1u) p[i] = v[i];\n";
  if (x.intrinsics) os << "#endif\n";
  os << "}\n";
  return os.str();
}

// kt_alignr<w>(hi, lo, n): lanes n.. of lo followed by hi's first ones (lane
// l is element l + n of lo:hi); kt_zero<w>(v, m): v with the lanes whose bit
// of m is clear set to zero. AVX-512 valignd and a zero-masked move where
// the compiler targets AVX-512, otherwise the generic shuffle and lane loop.
std::string align_helpers(int64_t w) {
  const std::string t = vec_type(w), n = std::to_string(w);
  const X86Vector x = x86_vector(w);
  std::ostringstream os;
  os << "#define kt_alignr" << n << "(hi, lo, n) kt_alignr" << n << "_(hi, lo, n)\n";
  os << "#if " << (x.intrinsics ? x.avx512 : "0") << "\n";
  if (x.intrinsics) {
    // The zero-masking form with every lane taken: the plain one starts from
    // an undefined vector, which GCC 12 warns of as used uninitialized.
    os << "#define kt_alignr" << n << "_(hi, lo, n) ((" << t << ")_mm" << x.suffix << "_maskz_alignr_epi32(("
       << x.mask_type << ")" << (w == 16 ? "0xffff" : w == 8 ? "0xff" : "0xf") << ", (" << x.ireg << ")(hi), ("
       << x.ireg << ")(lo), (n)))\n"
       << "KT_INLINE " << t << " kt_zero" << n << "(" << t << " v, unsigned m) { return (" << t << ")_mm"
       << x.suffix << "_maskz_mov_ps((" << x.mask_type << ")m, (" << x.reg << ")v); }\n";
  }
  os << "#else\n"
     << "KT_INLINE " << t << " kt_alignr" << n << "_(" << t << " hi, " << t
     << " lo, int n) {\n"
     << "  " << t << " v;\n"
     << "  for (int i = 0; i < " << n << "; ++i) v[i] = i + n < " << n << " ? lo[i + n] : hi[i + n - " << n << "];\n"
     << "  return v;\n"
     << "}\n"
     << "KT_INLINE " << t << " kt_zero" << n << "(" << t << " v, unsigned m) {\n"
     << "  for (int i = 0; i < " << n << "; ++i) if (!(m >> i & 1u)) v[i] = 0.0f;\n"
     << "  return v;\n"
     << "}\n"
     << "#endif\n";
  return os.str();
}

std::string helpers(const std::set<int64_t>& widths, const std::set<int64_t>& transposes,
                    const std::set<int64_t>& masked, const std::set<int64_t>& evens,
                    const std::set<int64_t>& aligns) {
  std::ostringstream os;
  if (!aligns.empty() || !masked.empty()) {
    os << "#if defined(__x86_64__) || defined(__i386__)\n#include <immintrin.h>\n#endif\n";
  }
  if (!masked.empty()) {
    os << "#if defined(__AVX2__)\n"
       << "// An AVX lane mask from mask bits: all ones in the lanes whose bit is set.\n"
       << "KT_INLINE __m256i kt_lanes8(unsigned m) {\n"
       << "  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);\n"
       << "  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);\n"
       << "}\n"
       << "KT_INLINE __m128i kt_lanes4(unsigned m) {\n"
       << "  const __m128i bit = _mm_setr_epi32(1, 2, 4, 8);\n"
       << "  return _mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32((int)m), bit), bit);\n"
       << "}\n"
       << "#endif\n";
  }
  os << "static inline int64_t kt_floordiv(int64_t a, int64_t b) {\n"
        "  int64_t q = a / b;\n"
        "  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;\n"
        "}\n"
        "static inline int64_t kt_floormod(int64_t a, int64_t b) { return a - kt_floordiv(a, b) * b; }\n"
        "static inline int64_t kt_imin(int64_t a, int64_t b) { return a < b ? a : b; }\n"
        "static inline int64_t kt_imax(int64_t a, int64_t b) { return a > b ? a : b; }\n"
        "static inline float kt_fmin(float a, float b) { return a < b ? a : b; }\n"
        "static inline float kt_fmax(float a, float b) { return a > b ? a : b; }\n";
  for (int64_t w : widths) {
    const std::string t = vec_type(w), n = std::to_string(w);
    os << "\n// " << n << "-lane vectors (GCC/Clang vector extensions); loads and stores go through\n"
       << "// memcpy so they need no alignment.\n"
       << "typedef float " << t << " __attribute__((vector_size(" << 4 * w << ")));\n"
       << "KT_INLINE " << t << " kt_load" << n << "(const float* p) { " << t
       << " v; memcpy(&v, p, sizeof v); return v; }\n"
       << "KT_INLINE void kt_store" << n << "(float* p, " << t << " v) { memcpy(p, &v, sizeof v); }\n"
       << "KT_INLINE " << t << " kt_splat" << n << "(float x) { return (" << t << "){";
    for (int64_t i = 0; i < w; ++i) os << (i ? ", " : "") << "x";
    os << "}; }\n"
       << "KT_INLINE " << t << " kt_vmin" << n << "(" << t << " a, " << t << " b) { return a < b ? a : b; }\n"
       << "KT_INLINE " << t << " kt_vmax" << n << "(" << t << " a, " << t << " b) { return a > b ? a : b; }\n";
    if (transposes.count(w) || evens.count(w)) {
      os << "typedef int32_t kt_i32x" << n << " __attribute__((vector_size(" << 4 * w << ")));\n"
         << "#if defined(__clang__)\n"
         << "#define KT_SHUFFLE" << n << "(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)\n"
         << "#else\n"
         << "#define KT_SHUFFLE" << n << "(a, b, ...) __builtin_shuffle(a, b, (kt_i32x" << n << "){__VA_ARGS__})\n"
         << "#endif\n";
    }
    if (transposes.count(w)) os << transpose_helper(w);
    if (masked.count(w)) os << mask_helpers(w);
    if (evens.count(w)) {
      os << "KT_INLINE " << t << " kt_evens" << n << "(" << t << " a, " << t << " b) { return KT_SHUFFLE" << n
         << "(a, b";
      for (int64_t i = 0; i < w; ++i) os << ", " << 2 * i;
      os << "); }\n";
      os << "KT_INLINE " << t << " kt_odds" << n << "(" << t << " a, " << t << " b) { return KT_SHUFFLE" << n
         << "(a, b";
      for (int64_t i = 0; i < w; ++i) os << ", " << 2 * i + 1;
      os << "); }\n";
    }
    if (aligns.count(w)) os << align_helpers(w);
  }
  return os.str();
}

std::string CppEmitter::emit() {
  const ir::Program& p = program_;
  if (p.params.empty()) fail("a program needs at least an output param");
  if (!p.body) fail("the program has no body");
  if (p.threads < 1) fail("threads must be >= 1, got " + std::to_string(p.threads));

  // Global buffers: inputs, output, workspace.
  std::vector<int64_t> offsets;
  int64_t workspace_floats = 0;
  auto add_global = [&](const Buffer& b, bool writable) {
    if (!b) fail("null buffer among params or workspace");
    if (!is_identifier(b->name)) {
      fail("buffer name '" + b->name + "' is not a valid C identifier (or is reserved)");
    }
    if (names_.count(b->name)) fail("two buffers are named '" + b->name + "'");
    if (b->scope != Scope::kGlobal) fail("param/workspace buffer '" + b->name + "' must have global scope");
    names_.insert(b->name);
    buffers_[b.get()] = BufferInfo{b->name, b->shape, writable, false, 0};
  };
  for (size_t i = 0; i + 1 < p.params.size(); ++i) add_global(p.params[i], false);
  add_global(p.params.back(), true);
  for (const Buffer& b : p.workspace) {
    add_global(b, true);
    offsets.push_back(workspace_floats);
    workspace_floats += (b->elements() + kWorkspaceAlignFloats - 1) / kWorkspaceAlignFloats *
                        kWorkspaceAlignFloats;
  }

  auto signature = [&](bool with_output, bool prepare) {
    std::string s;
    for (size_t i = 0; i + 1 < p.params.size(); ++i) {
      s += (s.empty() ? "" : ", ") + std::string("const float* __restrict ") + p.params[i]->name;
    }
    if (with_output) s += (s.empty() ? "" : ", ") + std::string("float* __restrict ") + p.params.back()->name;
    for (const Buffer& b : p.workspace) {
      const bool read_only = !prepare && b->prepared;
      s += (s.empty() ? "" : ", ") + std::string(read_only ? "const float* __restrict " : "float* __restrict ") +
           b->name;
    }
    return s;
  };
  auto call_args = [&](bool with_output) {
    std::string s;
    for (size_t i = 0; i + 1 < p.params.size(); ++i) {
      s += (s.empty() ? "" : ", ") + std::string("inputs[") + std::to_string(i) + "]";
    }
    if (with_output) s += (s.empty() ? "" : ", ") + std::string("output");
    for (size_t i = 0; i < p.workspace.size(); ++i) {
      s += (s.empty() ? "" : ", ") + std::string("workspace + ") + int_literal(offsets[i]);
    }
    return s;
  };
  auto unused_guard = [&](bool with_output) {
    std::string s = " ";
    for (size_t i = 0; i + 1 < p.params.size(); ++i) s += " (void)" + p.params[i]->name + ";";
    if (with_output) s += " (void)" + p.params.back()->name + ";";
    for (const Buffer& b : p.workspace) s += " (void)" + b->name + ";";
    return s;
  };

  // prepare: reads inputs, writes prepared workspace; the output does not exist yet.
  std::string prepare_fn;
  if (p.prepare) {
    in_prepare_ = true;
    const BufferNode* out_key = p.params.back().get();
    BufferInfo saved = buffers_.at(out_key);
    buffers_.erase(out_key);
    for (const Buffer& b : p.workspace) buffers_.at(b.get()).writable = b->prepared;
    body_.str("");
    stmt(p.prepare);
    prepare_fn = "static void kt_prepare(" + signature(false, true) + ") {\n" + unused_guard(false) + "\n" +
                 body_.str() + "}\n";
    buffers_[out_key] = saved;
    in_prepare_ = false;
  }
  for (const Buffer& b : p.workspace) buffers_.at(b.get()).writable = !b->prepared;
  body_.str("");
  stmt(p.body);
  const std::string run_fn = "static void kt_run(" + signature(true, false) + ") {\n" + unused_guard(true) +
                             "\n" + body_.str() + "}\n";

  std::ostringstream os;
  os << "// Generated by ktune from program '" << p.name << "' (kernel ABI v" << kKernelAbiVersion
     << ").\n#include <stdint.h>\n#include <string.h>\n"
     << "#if defined(__GNUC__) && !defined(__clang__)\n"
     << "// Vectors wider than the machine's are fine (the compiler splits them);\n"
     << "// they never cross an ABI boundary: the helpers taking or returning\n"
     << "// them are always inlined (a large kernel calls them often enough that\n"
     << "// GCC would otherwise make some of them calls).\n"
     << "#pragma GCC diagnostic ignored \"-Wpsabi\"\n"
     << "#endif\n"
     << "#if defined(__GNUC__)\n#define KT_INLINE static inline __attribute__((always_inline))\n"
     << "#else\n#define KT_INLINE static inline\n#endif\n";
  os << "\n" << helpers(widths_, transposes_, masked_, evens_, aligns_) << "\n";
  if (!options_.threads_hook.empty()) os << "extern \"C\" int " << options_.threads_hook << "(int tuned);\n\n";
  if (p.prepare) os << prepare_fn << "\n";
  os << run_fn << "\n";
  const std::string& prefix = options_.symbol_prefix;
  os << "extern \"C\" int " << prefix << "abi_version(void) { return " << kKernelAbiVersion << "; }\n";
  os << "extern \"C\" int64_t " << prefix << "workspace_floats(void) { return " << int_literal(workspace_floats)
     << "; }\n";
  os << "extern \"C\" void " << prefix << "prepare(const float* const* inputs, float* workspace) {\n"
     << "  (void)inputs; (void)workspace;\n";
  if (p.prepare) os << "  kt_prepare(" << call_args(false) << ");\n";
  os << "}\n";
  os << "extern \"C\" void " << prefix << "run(const float* const* inputs, float* output, float* workspace) {\n"
     << "  (void)inputs; (void)workspace;\n"
     << "  kt_run(" << call_args(true) << ");\n"
     << "}\n";
  return os.str();
}

}  // namespace

std::string emit_cpp(const ir::Program& program) { return emit_cpp(program, CppEmitOptions{}); }

// Twice where the program has stride-2 window reads: the first emission
// finds the element pairs the window's taps load, the second reads a tap
// whose pair a neighbouring pair outranks from that pair (window_even_load).
std::string emit_cpp(const ir::Program& program, const CppEmitOptions& options) {
  CppEmitter first(program, options);
  std::string code = first.emit();
  if (first.pair_uses().empty()) return code;
  return CppEmitter(program, options, first.pair_uses()).emit();
}

}  // namespace ktune
