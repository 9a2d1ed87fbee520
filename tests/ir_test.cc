#include "schedule_space/ir.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "schedule_space/error.h"

namespace ktune::ir {
namespace {

int64_t int_value(const Expr& e) {
  EXPECT_EQ(e->kind, ExprKind::kIntImm) << to_string(e);
  return e->int_value;
}

TEST(IrTest, IntegerConstantsFold) {
  EXPECT_EQ(int_value(int_imm(2) + int_imm(3)), 5);
  EXPECT_EQ(int_value(int_imm(6) * int_imm(7)), 42);
  EXPECT_EQ(int_value(min(int_imm(4), int_imm(9))), 4);
  EXPECT_EQ(int_value(max(int_imm(4), int_imm(9))), 9);
  EXPECT_EQ(int_value(lt(int_imm(3), int_imm(2))), 0);
  EXPECT_EQ(int_value(le(int_imm(2), int_imm(2))), 1);
}

TEST(IrTest, DivisionAndModuloFloorTowardsMinusInfinity) {
  EXPECT_EQ(int_value(floordiv(int_imm(-7), int_imm(2))), -4);
  EXPECT_EQ(int_value(floormod(int_imm(-7), int_imm(2))), 1);
  EXPECT_EQ(int_value(floordiv(int_imm(7), int_imm(2))), 3);
  EXPECT_EQ(int_value(floormod(int_imm(7), int_imm(-2))), -1);
}

TEST(IrTest, IdentitiesOnVariablesFold) {
  Expr x = var("x");
  EXPECT_EQ(x + 0, x);
  EXPECT_EQ(int_imm(0) + x, x);
  EXPECT_EQ(x * 1, x);
  EXPECT_EQ(int_value(x * 0), 0);
  EXPECT_EQ(floordiv(x, int_imm(1)), x);
  EXPECT_EQ(int_value(floormod(x, int_imm(1))), 0);
  EXPECT_EQ(logical_and(int_imm(1), lt(x, int_imm(3)))->op, BinaryOp::kLT);
  // Non-trivial expressions stay as written.
  EXPECT_EQ(to_string(x * 4 + 1), "((x * 4) + 1)");
}

TEST(IrTest, FloatConstantsFoldButFloatIdentitiesDoNot) {
  Expr f = float_imm(1.5f) + float_imm(2.0f);
  ASSERT_EQ(f->kind, ExprKind::kFloatImm);
  EXPECT_FLOAT_EQ(f->float_value, 3.5f);
  // x + 0.0f is not x for x = -0.0f, so a float load plus zero is kept.
  Buffer a = make_buffer("A", {4});
  Expr sum = load(a, {int_imm(0)}) + float_imm(0.0f);
  EXPECT_EQ(sum->kind, ExprKind::kBinary);
}

TEST(IrTest, SelectAndIfWithConstantConditionsFold) {
  Expr x = var("x");
  EXPECT_EQ(select(int_imm(1), float_imm(1), float_imm(2))->float_value, 1.0f);
  EXPECT_EQ(select(int_imm(0), float_imm(1), float_imm(2))->float_value, 2.0f);
  Buffer c = make_buffer("C", {4});
  Stmt s = store(c, {x}, float_imm(1));
  EXPECT_EQ(if_then_else(int_imm(1), s), s);
  EXPECT_EQ(if_then_else(lt(x, int_imm(2)), s)->kind, StmtKind::kIf);
}

TEST(IrTest, MalformedNodesAreRejectedWithTheBufferName) {
  Buffer a = make_buffer("A", {4, 4});
  try {
    load(a, {int_imm(0)});
    FAIL() << "a load with too few indices was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'A'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(var("i") + float_imm(1), Error);           // int + float
  EXPECT_THROW(store(a, {int_imm(0), int_imm(0)}, int_imm(1)), Error);  // integer value
  EXPECT_THROW(for_loop("i", 0, LoopKind::kSerial, store(a, {int_imm(0), int_imm(0)}, float_imm(0))),
               Error);
  EXPECT_THROW(make_buffer("B", {4, 0}), Error);
  EXPECT_THROW(allocate(a, store(a, {int_imm(0), int_imm(0)}, float_imm(0))), Error);  // global
}

TEST(IrTest, SeqFlattensAndDropsNulls) {
  Buffer c = make_buffer("C", {4});
  Stmt s1 = store(c, {int_imm(0)}, float_imm(1));
  Stmt s2 = store(c, {int_imm(1)}, float_imm(2));
  Stmt s3 = store(c, {int_imm(2)}, float_imm(3));
  Stmt s = seq({seq({s1, nullptr, s2}), nullptr, s3});
  ASSERT_EQ(s->kind, StmtKind::kSeq);
  EXPECT_EQ(s->seq, (std::vector<Stmt>{s1, s2, s3}));
  EXPECT_EQ(seq({nullptr, s1}), s1);
}

Program tiny_program() {
  Buffer a = make_buffer("A", {8, 16});
  Buffer c = make_buffer("C", {8, 16});
  Buffer acc = make_buffer("acc", {16}, Scope::kRegister);
  Expr i = var("i"), j = var("j");
  Stmt body = for_loop(
      "i", 8, LoopKind::kParallel,
      allocate(acc, seq({for_loop("j", 16, LoopKind::kVectorized,
                                  store(acc, {j}, load(a, {i, j}) * float_imm(2))),
                         for_loop("j", 16, LoopKind::kUnrolled,
                                  if_then_else(lt(j, int_imm(10)), store(c, {i, j}, load(acc, {j})))),
                         })));
  Program p;
  p.name = "tiny";
  p.params = {a, c};
  p.body = body;
  p.threads = 2;
  return p;
}

TEST(IrTest, ListingShowsLoopsKindsAndNesting) {
  const std::string text = to_string(tiny_program());
  EXPECT_NE(text.find("program tiny threads=2"), std::string::npos) << text;
  EXPECT_NE(text.find("param A[8, 16]"), std::string::npos) << text;
  EXPECT_NE(text.find("for i in 0..8 parallel:\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    allocate acc[16] register:\n"), std::string::npos) << text;
  EXPECT_NE(text.find("      for j in 0..16 vectorized:\n        acc[j] = (A[i, j] * 2.0f)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("if (j < 10):"), std::string::npos) << text;
}

TEST(IrTest, VisitSeesParentsBeforeChildren) {
  std::vector<StmtKind> kinds;
  visit(tiny_program().body, [&](const StmtNode& s) { kinds.push_back(s.kind); });
  EXPECT_EQ(kinds, (std::vector<StmtKind>{StmtKind::kFor, StmtKind::kAllocate, StmtKind::kSeq,
                                          StmtKind::kFor, StmtKind::kStore, StmtKind::kFor,
                                          StmtKind::kIf, StmtKind::kStore}));
}

}  // namespace
}  // namespace ktune::ir
