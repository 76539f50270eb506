// CEL operators and builtin functions over runtime values: arithmetic with overflow
// errors and no implicit numeric conversion, comparisons, `in`, size(), the string
// functions (matches uses RE2, the syntax CEL mandates) and the type conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/cel_ast.h"
#include "policy/cel_value.h"

namespace kz::cel {

// Step budget of one evaluation. Once exhausted it stays exhausted, and the evaluator
// returns the budget error whatever the expression would otherwise absorb.
struct Budget {
  std::uint64_t left = 0;
  bool exhausted = false;
  bool charge(std::uint64_t n) {
    if (exhausted) return false;
    if (n > left) {
      exhausted = true;
      left = 0;
      return false;
    }
    left -= n;
    return true;
  }
};

// Compile time: the builtin for `name` called with nargs arguments (receiver style when
// method). False with *error when there is no such function or overload arity.
bool resolve_function(std::string_view name, bool method, std::size_t nargs, Fn* fn, std::string* error);
// Compile time work for a resolved call, e.g. compiling a literal matches() pattern.
bool prepare_call(Node& call, std::string* error);

Value apply_unary(Op op, const Value& a);
Value apply_binary(Op op, const Value& a, const Value& b, Budget& budget);
// args[0] is the receiver for method calls. No argument is an error value.
Value call_function(const Node& call, const Value* const* args, std::size_t nargs, Budget& budget);

}  // namespace kz::cel
