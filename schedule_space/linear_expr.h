// Integer index expressions as linear forms, for the code generators: which
// loop variable an access is contiguous in, whether its start is a multiple
// of a vector width, and the loop copies of unrolling (variables replaced by
// constants).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "schedule_space/ir.h"

namespace ktune::ir {

// True if variable v occurs in e.
bool mentions(const Expr& e, const std::string& v);

// e with the variables of `consts` replaced by their values, constants folded.
Expr substitute(const Expr& e, const std::map<std::string, int64_t>& consts);
// The same through a statement: every expression in it, loops and buffers kept.
Stmt substitute(const Stmt& s, const std::map<std::string, int64_t>& consts);

// An integer expression as sum(coefficient * term) + constant, where a term
// is a variable or an opaque (non-affine) sub-expression.
struct Linear {
  struct Term {
    std::string key;  // to_string(expr): identifies equal terms
    Expr expr;
    int64_t coeff;
  };
  std::vector<Term> terms;
  int64_t constant = 0;

  void add(const Term& t, int64_t scale);
  void add(const Linear& o, int64_t scale);
  void drop_zeros();
  bool is_constant() const { return terms.empty(); }
  // Coefficient of variable v, or nullopt when v occurs inside an opaque term.
  std::optional<int64_t> coeff_of(const std::string& v) const;
  // The form without v's term.
  Linear without(const std::string& v) const;
  // True if every coefficient and the constant are multiples of w: the value
  // is a multiple of w whatever the terms are.
  bool divisible_by(int64_t w) const;
  Linear divided_by(int64_t w) const;
};

Linear linearize(const Expr& e);

// The expression back from a form (terms in order, then the constant).
Expr to_expr(const Linear& l);

// The flattened row-major offset of b[indices], as a linear form.
Linear flat_offset(const Buffer& b, const std::vector<Expr>& indices);

// True if e is provably >= 0 (sums, products, quotients of loop variables and
// non-negative constants), so that floor division can be emitted as C's `/`.
bool non_negative(const Expr& e);

}  // namespace ktune::ir
