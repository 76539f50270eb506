// CEL macros: has(), and the comprehensions all, exists, exists_one, map and filter.
// They are recognised by name and arity at parse time and become dedicated nodes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "policy/cel_ast.h"

namespace kz::cel {

enum class MacroMatch { NotAMacro, Expanded, Invalid };

// Tries to expand the call `name(args)` (receiver == nullptr) or `receiver.name(args)`.
// On Expanded, *out is the new node; on Invalid, *error says why (e.g. has() of a
// non-selection, or a comprehension variable that is not a simple identifier).
MacroMatch expand_macro(std::string_view name, NodePtr& receiver, std::vector<NodePtr>& args,
                        std::size_t offset, NodePtr* out, std::string* error);

}  // namespace kz::cel
