// The loop-nest IR: what a template instantiates and what code generators
// and feature extraction read.
//
// Nodes are small and immutable, shared through shared_ptr<const ...>.
// Expressions are integer (indices, conditions) or float32 (values).
// Buffers are multi-dimensional and row-major; indices are given per
// dimension and flattened by the code generator.
//
// A Program computes one workload:
//   - params: the operator's inputs (Workload::inputs() order) and its output;
//   - workspace: global buffers the kernel owns. `prepared` ones are filled
//     once by `prepare` (e.g. weights packed into blocked layouts, outside
//     the timed region, as a library user pre-packs constant weights); the
//     others are scratch written inside `body` (inside the timed region);
//   - body: the timed computation. Local buffers (stack / register scope)
//     are introduced by Allocate statements inside it; an Allocate inside a
//     parallel loop is private to each thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ktune::ir {

enum class Scope {
  kGlobal,    // parameters and workspace
  kStack,     // a local array (cache-level scratch)
  kRegister,  // a small local array meant to live in (vector) registers
  kShared,    // GPU: one copy per thread block (__shared__)
};

struct BufferNode {
  std::string name;
  std::vector<int64_t> shape;
  Scope scope = Scope::kGlobal;
  bool prepared = false;  // workspace filled by Program::prepare
  int64_t elements() const;
};
using Buffer = std::shared_ptr<const BufferNode>;
Buffer make_buffer(std::string name, std::vector<int64_t> shape, Scope scope = Scope::kGlobal,
                   bool prepared = false);

// ---- expressions ----

enum class ExprKind { kIntImm, kFloatImm, kVar, kBinary, kLoad, kSelect };
enum class BinaryOp {
  kAdd, kSub, kMul,
  kDiv,  // integer: floor division; float: division
  kMod,  // integer only, floor modulo
  kMin, kMax,
  kLT, kLE, kEQ, kNE,  // integer comparisons -> boolean (integer 0/1)
  kAnd, kOr,           // boolean
};
enum class DType { kInt, kFloat };

struct ExprNode;
using Expr = std::shared_ptr<const ExprNode>;

struct ExprNode {
  ExprKind kind;
  DType dtype;
  int64_t int_value = 0;       // kIntImm
  float float_value = 0.0f;    // kFloatImm
  std::string var_name;        // kVar (loop variables are integer)
  BinaryOp op = BinaryOp::kAdd;  // kBinary
  Expr a, b, c;                // kBinary: a op b; kSelect: a ? b : c
  Buffer buffer;               // kLoad
  std::vector<Expr> indices;   // kLoad
};

Expr int_imm(int64_t v);
Expr float_imm(float v);
Expr var(const std::string& name);
Expr binary(BinaryOp op, Expr a, Expr b);  // folds constants and x+0, x*1, x*0
// The integer value of a op b as index expressions compute it: division and
// modulo floor (toward minus infinity), and give 0 for a zero divisor;
// comparisons and logic give 0 or 1. Every evaluator of index expressions
// (constant folding, features, the simulated device) uses this one.
int64_t apply_int(BinaryOp op, int64_t a, int64_t b);
Expr load(Buffer b, std::vector<Expr> indices);
Expr select(Expr cond, Expr then_value, Expr else_value);

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator+(Expr a, int64_t b);
Expr operator*(Expr a, int64_t b);
Expr floordiv(Expr a, Expr b);
Expr floormod(Expr a, Expr b);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);
Expr lt(Expr a, Expr b);
Expr le(Expr a, Expr b);
Expr logical_and(Expr a, Expr b);

// ---- statements ----

enum class StmtKind { kFor, kSeq, kStore, kIf, kAllocate, kBarrier };
enum class LoopKind {
  kSerial,
  kParallel,    // iterations run on the target's threads (at most one active level)
  kUnrolled,    // fully unrolled by the code generator
  kVectorized,  // explicit vector code; the body must be stores whose value is
                // affine in the loop variable (see codegen_cpp.h)
  kBlockX, kBlockY, kBlockZ, kThreadX, kThreadY, kThreadZ,  // GPU-bound (later)
};

struct StmtNode;
using Stmt = std::shared_ptr<const StmtNode>;

struct StmtNode {
  StmtKind kind;
  // kFor: for (var = 0; var < extent; ++var) body
  std::string loop_var;
  int64_t extent = 0;
  LoopKind loop_kind = LoopKind::kSerial;
  // kSeq
  std::vector<Stmt> seq;
  // kStore: buffer[indices] = value, or += value when accumulate
  Buffer buffer;  // also kAllocate's buffer
  std::vector<Expr> indices;
  Expr value;
  bool accumulate = false;
  // kIf: if (cond) then_body else else_body (else_body may be null)
  Expr cond;
  Stmt then_body, else_body;
  // kFor, kAllocate
  Stmt body;
};

Stmt for_loop(const std::string& var, int64_t extent, LoopKind kind, Stmt body);
Stmt seq(std::vector<Stmt> stmts);  // flattens nested seqs, drops nulls
Stmt store(Buffer b, std::vector<Expr> indices, Expr value);
Stmt accumulate(Buffer b, std::vector<Expr> indices, Expr value);  // b[i] += value
Stmt if_then_else(Expr cond, Stmt then_body, Stmt else_body = nullptr);
Stmt allocate(Buffer b, Stmt body);
Stmt barrier();  // GPU: __syncthreads(); unused on CPU

struct Program {
  std::string name;
  std::vector<Buffer> params;     // inputs in Workload::inputs() order, then the output
  std::vector<Buffer> workspace;  // kernel-owned global buffers
  Stmt prepare;                   // may be null: nothing to prepare
  Stmt body;
  int threads = 1;
  // GPU: unrolled loops are written out as copies of their bodies (up to
  // ir::kMaxExplicitUnrollSteps statements) rather than left to
  // `#pragma unroll` (TVM's unroll_explicit).
  bool explicit_unroll = false;
};

// Indented, human-readable listing for debugging and `ktune space --show`.
std::string to_string(const Program& p);
std::string to_string(const Expr& e);

// Calls f on every statement, parents before children.
void visit(const Stmt& s, const std::function<void(const StmtNode&)>& f);

}  // namespace ktune::ir
