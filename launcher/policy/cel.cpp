#include "policy/cel.h"

#include "policy/cel_ast.h"
#include "policy/cel_eval.h"
#include "policy/cel_parser.h"

namespace kz::cel {

void Activation::bind(std::string name, Value v) {
  if (name.find('.') != std::string::npos) dotted_ = true;
  for (auto& [n, val] : vars_) {
    if (n == name) {
      val = std::move(v);
      return;
    }
  }
  vars_.emplace_back(std::move(name), std::move(v));
}

const Value* Activation::find(std::string_view name) const {
  for (const auto& [n, v] : vars_)
    if (n == name) return &v;
  return nullptr;
}

Program::Program(std::shared_ptr<const Node> root, Limits limits)
    : root_(std::move(root)), limits_(limits), nesting_(comprehension_nesting(*root_)) {}
Program::Program(const Program&) = default;
Program& Program::operator=(const Program&) = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

Result<Program> Program::compile(std::string_view expr, const Limits& limits, Diagnostic* where) {
  ParseOutcome out = parse(expr, limits);
  if (!out.root) {
    if (where != nullptr) *where = out.diagnostic;
    return make_error(ErrorKind::Config, "offset " + std::to_string(out.diagnostic.offset) + ": " +
                                             out.diagnostic.message);
  }
  return Program(std::shared_ptr<const Node>(std::move(out.root)), limits);
}

Value Program::evaluate(const Activation& vars) const { return cel::evaluate(*root_, vars, limits_, nesting_); }

}  // namespace kz::cel
