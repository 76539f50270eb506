// Public API of kz's CEL (Common Expression Language) interpreter, used by policy rules.
//
//   auto prog = kz::cel::Program::compile("identity.env == 'staging'", {});
//   if (!prog) ...prog.error().message...        // "offset 12: ..." (see Diagnostic)
//   kz::cel::Activation vars;
//   vars.bind("identity", kz::cel::from_json(claims));
//   kz::cel::Value v = prog->evaluate(vars);      // may be an error value
//
// Nothing here throws: compile problems are kz::Error results and evaluation problems
// are error values (Value::is_error()), as the CEL specification describes.
//
// Supported: null, bool, int, uint, double, string, bytes, list, map, type values;
// field selection, indexing, has(); arithmetic without implicit numeric conversion
// (1 + 1u is an error) and with int/uint overflow and division-by-zero errors; equality
// and ordering across int/uint/double; commutative && / || that absorb errors; `in`;
// ?:; size, contains, startsWith, endsWith, matches (RE2); int, uint, double, string,
// bytes, bool, type, dyn; the macros all, exists, exists_one, map (2 and 3 arguments),
// filter. Not supported: timestamps, durations, protobuf messages, namespaces/containers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/result.h"
#include "policy/cel_value.h"

namespace kz::cel {

struct Node;

// Cost limits. Parse-time limits reject an expression at compile time; the step budget
// bounds each evaluation (every node evaluated, every comprehension iteration and every
// 64 bytes/elements produced by concatenation or conversion cost a step).
struct Limits {
  std::size_t max_source_bytes = 16 * 1024;
  std::size_t max_nodes = 2000;
  std::size_t max_depth = 100;      // nesting of the syntax tree
  std::uint64_t max_steps = 100000; // per evaluation
  // Compile-time checks, a light form of cel-spec's type checker: calls to unknown
  // functions, wrong arities, and operators or functions applied to literals of types
  // they do not accept (1 + 'a') are compile errors. false defers them to evaluation as
  // error values, which && and || may absorb (the conformance "disable_check" cases).
  bool check = true;
};

// Where compilation failed: a byte offset into the expression and a message without it.
struct Diagnostic {
  std::size_t offset = 0;
  std::string message;
};

// Variables for one evaluation. Names may be dotted ("a.b"), which CEL resolves before
// field selection on "a".
class Activation {
 public:
  void bind(std::string name, Value v);
  const Value* find(std::string_view name) const;
  bool has_dotted_names() const { return dotted_; }

 private:
  std::vector<std::pair<std::string, Value>> vars_;
  bool dotted_ = false;
};

class Program {
 public:
  // Parses and checks expr. On failure the error message is "offset N: message", and
  // *where (when given) receives the offset and message separately.
  static Result<Program> compile(std::string_view expr, const Limits& limits = {},
                                 Diagnostic* where = nullptr);

  // Evaluates against vars; the result may be an error value. Never throws.
  Value evaluate(const Activation& vars) const;

  // Copies share the immutable compiled tree; evaluate() is safe from many threads.
  Program(const Program&);
  Program& operator=(const Program&);
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

 private:
  Program(std::shared_ptr<const Node> root, Limits limits);
  std::shared_ptr<const Node> root_;
  Limits limits_;
  std::size_t nesting_ = 0;  // deepest comprehension nesting, to size the evaluator once
};

}  // namespace kz::cel
