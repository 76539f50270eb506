// CEL parser: recursive descent over the grammar of the CEL language definition, with
// macro expansion (cel_macros) and resolution of builtin function names
// (cel_functions), under the parse-time limits of cel::Limits.
#pragma once

#include <string_view>

#include "policy/cel.h"
#include "policy/cel_ast.h"

namespace kz::cel {

struct ParseOutcome {
  NodePtr root;          // set on success
  Diagnostic diagnostic; // set on failure
};

ParseOutcome parse(std::string_view src, const Limits& limits);

}  // namespace kz::cel
