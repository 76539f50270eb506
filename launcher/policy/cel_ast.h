// The CEL syntax tree the parser builds and the evaluator walks. Operators, builtin
// functions and macros are resolved to enums at compile time, so evaluation does no
// name lookups besides variables.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy/cel_value.h"

namespace re2 {
class RE2;
}

namespace kz::cel {

enum class NodeKind : std::uint8_t {
  Const,          // value
  Ident,          // name
  Select,         // kids[0].name; qualified = dotted name when kids[0] is an identifier chain
  Has,            // has(kids[0].name)
  Index,          // kids[0][kids[1]]
  List,           // [kids...]
  Map,            // {kids[0]: kids[1], ...}
  Unary,          // op kids[0]
  Binary,         // kids[0] op kids[1]
  And, Or,        // kids[0] && kids[1], with CEL's error absorption
  Cond,           // kids[0] ? kids[1] : kids[2]
  Call,           // fn(kids...) (for methods, kids[0] is the receiver)
  Comprehension,  // macro over kids[0]; iteration variable name; kids[1] predicate/transform, kids[2] transform (map/3)
};

enum class Op : std::uint8_t { Not, Neg, Add, Sub, Mul, Div, Mod, Eq, Ne, Lt, Le, Gt, Ge, In };

enum class Macro : std::uint8_t { All, Exists, ExistsOne, Map, Filter };

enum class Fn : std::uint8_t {
  Size, Contains, StartsWith, EndsWith, Matches,
  Int, Uint, Double, String, Bytes, Bool, Type, Dyn,
  Unknown,  // unresolved call, compiled only when Limits::check is off
};

struct Node {
  NodeKind kind = NodeKind::Const;
  Op op = Op::Not;
  Macro macro = Macro::All;
  Fn fn = Fn::Size;
  bool method = false;      // Call: receiver style (x.f(...))
  std::uint32_t offset = 0; // byte offset in the source, for diagnostics
  std::uint32_t height = 1; // nesting depth of the subtree (bounded by Limits::max_depth)
  Value value;              // Const
  std::string name;         // Ident, Select/Has field, Comprehension variable
  std::string qualified;    // Select: "a.b.c" when the operand is an identifier chain
  std::vector<std::unique_ptr<Node>> kids;
  std::shared_ptr<const re2::RE2> regex;  // matches() with a literal pattern, compiled once
};

using NodePtr = std::unique_ptr<Node>;

}  // namespace kz::cel
