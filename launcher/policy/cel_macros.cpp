#include "policy/cel_macros.h"

namespace kz::cel {

namespace {

bool comprehension_macro(std::string_view name, std::size_t nargs, Macro* m) {
  if (nargs == 2) {
    if (name == "all") { *m = Macro::All; return true; }
    if (name == "exists") { *m = Macro::Exists; return true; }
    if (name == "exists_one") { *m = Macro::ExistsOne; return true; }
    if (name == "filter") { *m = Macro::Filter; return true; }
  }
  if (name == "map" && (nargs == 2 || nargs == 3)) { *m = Macro::Map; return true; }
  return false;
}

}  // namespace

MacroMatch expand_macro(std::string_view name, NodePtr& receiver, std::vector<NodePtr>& args,
                        std::size_t offset, NodePtr* out, std::string* error) {
  if (!receiver) {
    if (name != "has" || args.size() != 1) return MacroMatch::NotAMacro;
    // has(e.f) tests presence of field f; anything else is a compile error.
    if (args[0]->kind != NodeKind::Select) {
      *error = "invalid argument to has() macro: expected a field selection";
      return MacroMatch::Invalid;
    }
    auto n = std::make_unique<Node>();
    n->kind = NodeKind::Has;
    n->offset = static_cast<std::uint32_t>(offset);
    n->name = std::move(args[0]->name);
    n->qualified = std::move(args[0]->qualified);
    n->kids.push_back(std::move(args[0]->kids[0]));
    *out = std::move(n);
    return MacroMatch::Expanded;
  }
  Macro m;
  if (!comprehension_macro(name, args.size(), &m)) return MacroMatch::NotAMacro;
  if (args[0]->kind != NodeKind::Ident) {
    *error = "argument 1 of " + std::string(name) + "() must be a simple identifier";
    return MacroMatch::Invalid;
  }
  auto n = std::make_unique<Node>();
  n->kind = NodeKind::Comprehension;
  n->macro = m;
  n->offset = static_cast<std::uint32_t>(offset);
  n->name = std::move(args[0]->name);
  n->kids.push_back(std::move(receiver));
  for (std::size_t i = 1; i < args.size(); ++i) n->kids.push_back(std::move(args[i]));
  *out = std::move(n);
  return MacroMatch::Expanded;
}

}  // namespace kz::cel
