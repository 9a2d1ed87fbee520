#include "schedule_space/unroll.h"

#include <gtest/gtest.h>

#include <string>

namespace ktune::ir {
namespace {

// out[i][j] = in[i][j] over a 4 x 8 nest.
Stmt nest(LoopKind inner_kind = LoopKind::kSerial) {
  Buffer in = make_buffer("in", {4, 8}), out = make_buffer("out", {4, 8});
  const Expr i = var("i"), j = var("j");
  return for_loop("i", 4, LoopKind::kSerial, for_loop("j", 8, inner_kind, store(out, {i, j}, load(in, {i, j}))));
}

TEST(UnrollTest, StepsCountEveryStatementALoopRuns) {
  EXPECT_EQ(step_count(nest()), 32);
  EXPECT_EQ(step_count(seq({nest(), barrier()})), 33);
  EXPECT_EQ(step_count(if_then_else(lt(var("t"), int_imm(1)), nest(), barrier())), 33);
}

TEST(UnrollTest, LoopsWhoseNestRunsAtMostMaxStepStatementsAreUnrolled) {
  // 16 steps: the inner loop (8) is unrolled, the outer one (32) is not.
  Stmt s = unroll_loops(nest(), 16);
  EXPECT_EQ(s->loop_kind, LoopKind::kSerial);
  EXPECT_EQ(s->body->loop_kind, LoopKind::kUnrolled);
  // 0: nothing, unless the template asked for it.
  EXPECT_EQ(unroll_loops(nest(), 0)->body->loop_kind, LoopKind::kSerial);
  EXPECT_EQ(unroll_loops(nest(LoopKind::kUnrolled), 0)->body->loop_kind, LoopKind::kUnrolled);
  // GPU-bound loops stay, their bodies are unrolled.
  Stmt gpu = unroll_loops(for_loop("t", 32, LoopKind::kThreadX, nest()), 1500);
  EXPECT_EQ(gpu->loop_kind, LoopKind::kThreadX);
  EXPECT_EQ(gpu->body->loop_kind, LoopKind::kUnrolled);
}

TEST(UnrollTest, ExplicitUnrollingCopiesTheBodyWithTheVariableAConstant) {
  Stmt s = unroll_loops(nest(), 16);
  Stmt copies = unrolled_copies(s->body);
  ASSERT_TRUE(copies);
  ASSERT_EQ(copies->kind, StmtKind::kSeq);
  ASSERT_EQ(copies->seq.size(), 8u);
  EXPECT_EQ(to_string(copies->seq[3]->indices[1]), "3");
  EXPECT_EQ(to_string(copies->seq[3]->indices[0]), "i");
  EXPECT_FALSE(unrolled_copies(s)) << "a serial loop is not copied";
  // Past the limit the compiler unrolls it.
  Buffer big = make_buffer("big", {kMaxExplicitUnrollSteps + 1});
  EXPECT_FALSE(unrolled_copies(for_loop("x", kMaxExplicitUnrollSteps + 1, LoopKind::kUnrolled,
                                        store(big, {var("x")}, float_imm(0.0f)))));
  // A loop that declares a buffer keeps its loop (the copies would clash).
  Buffer tmp = make_buffer("tmp", {1}, Scope::kRegister);
  EXPECT_FALSE(unrolled_copies(
      for_loop("k", 2, LoopKind::kUnrolled, allocate(tmp, store(tmp, {int_imm(0)}, float_imm(1.0f))))));
}

}  // namespace
}  // namespace ktune::ir
