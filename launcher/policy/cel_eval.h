// Tree-walking evaluation of a compiled CEL expression.
#pragma once

#include "policy/cel.h"
#include "policy/cel_ast.h"

namespace kz::cel {

// Evaluates root against vars within limits.max_steps; errors are returned as values.
// max_nesting: the deepest nesting of comprehensions in root (comprehension_nesting()).
Value evaluate(const Node& root, const Activation& vars, const Limits& limits, std::size_t max_nesting);

// How deeply comprehensions nest in the tree (0 without macros).
std::size_t comprehension_nesting(const Node& n);

}  // namespace kz::cel
