#include "policy/cel_eval.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "policy/cel_functions.h"

namespace kz::cel {

namespace {

const char kCostError[] = "evaluation cost limit exceeded";

// Evaluation returns pointers where it can (variables, constants, map entries) so that
// `identity.service == 'x'` copies nothing. Each call gets a `tmp` owned by its caller
// for values it has to compute; a returned pointer is valid while that tmp and the
// evaluation's inputs live.
class Evaluator {
 public:
  Evaluator(const Activation& vars, std::uint64_t steps, std::size_t max_nesting) : vars_(vars) {
    budget_.left = steps;
    if (max_nesting > 0) locals_.reserve(max_nesting);
  }

  Value run(const Node& root) {
    Value tmp;
    const Value* v = ev(root, tmp);
    // An exhausted budget is final even where && / || would absorb an error.
    if (budget_.exhausted) return Value::error(kCostError);
    return v == &tmp ? std::move(tmp) : *v;
  }

 private:
  static const Value* set(Value& tmp, Value v) {
    tmp = std::move(v);
    return &tmp;
  }

  const Value* ev(const Node& n, Value& tmp) {
    if (!budget_.charge(1)) return set(tmp, Value::error(kCostError));
    switch (n.kind) {
      case NodeKind::Const: return &n.value;
      case NodeKind::Ident: return ident(n, tmp);
      case NodeKind::Select: return select(n, tmp);
      case NodeKind::Has: return has(n, tmp);
      case NodeKind::Index: return index(n, tmp);
      case NodeKind::List: return list(n, tmp);
      case NodeKind::Map: return map(n, tmp);
      case NodeKind::Unary: {
        Value t;
        const Value* a = ev(*n.kids[0], t);
        if (a->is_error()) return a == &t ? set(tmp, std::move(t)) : a;
        return set(tmp, apply_unary(n.op, *a));
      }
      case NodeKind::Binary: {
        Value ta, tb;
        const Value* a = ev(*n.kids[0], ta);
        if (a->is_error()) return a == &ta ? set(tmp, std::move(ta)) : a;
        const Value* b = ev(*n.kids[1], tb);
        if (b->is_error()) return b == &tb ? set(tmp, std::move(tb)) : b;
        return set(tmp, apply_binary(n.op, *a, *b, budget_));
      }
      case NodeKind::And:
      case NodeKind::Or: return logic(n, tmp);
      case NodeKind::Cond: {
        Value t;
        const Value* c = ev(*n.kids[0], t);
        if (c->is_error()) return c == &t ? set(tmp, std::move(t)) : c;
        if (!c->is_bool()) return set(tmp, Value::error("no matching overload for _?_:_ with a non-bool condition"));
        return ev(*n.kids[c->as_bool() ? 1 : 2], tmp);
      }
      case NodeKind::Call: return call(n, tmp);
      case NodeKind::Comprehension: return comprehension(n, tmp);
    }
    return set(tmp, Value::error("internal: unknown node"));
  }

  const Value* ident(const Node& n, Value& tmp) {
    for (auto it = locals_.rbegin(); it != locals_.rend(); ++it)
      if (it->first == n.name) return &it->second;
    if (const Value* v = vars_.find(n.name)) return v;
    if (const TypeValue* t = type_by_name(n.name)) return set(tmp, Value(*t));
    return set(tmp, Value::error("undeclared reference to '" + n.name + "'"));
  }

  // a.b.c may name a variable "a.b.c" or "a.b" (longest first) before field selection.
  const Value* qualified_var(const Node& n) {
    if (n.qualified.empty() || !vars_.has_dotted_names()) return nullptr;
    const std::string_view root = std::string_view(n.qualified).substr(0, n.qualified.find('.'));
    for (const auto& l : locals_)
      if (l.first == root) return nullptr;  // a comprehension variable shadows it
    return vars_.find(n.qualified);
  }

  const Value* select(const Node& n, Value& tmp) {
    if (const Value* v = qualified_var(n)) return v;
    Value t;
    const Value* base = ev(*n.kids[0], t);
    if (base->is_error()) return base == &t ? set(tmp, std::move(t)) : base;
    if (base->kind() != Kind::Map)
      return set(tmp, Value::error("type '" + std::string(type_name(*base)) + "' does not support field selection"));
    const Value* e = base->as_map().find_string(n.name);
    if (e == nullptr) return set(tmp, Value::error("no such key: '" + n.name + "'"));
    return base == &t ? set(tmp, *e) : e;
  }

  const Value* has(const Node& n, Value& tmp) {
    if (qualified_var(n) != nullptr) return set(tmp, Value(true));
    Value t;
    const Value* base = ev(*n.kids[0], t);
    if (base->is_error()) return base == &t ? set(tmp, std::move(t)) : base;
    if (base->kind() != Kind::Map)
      return set(tmp, Value::error("has() does not support type '" + std::string(type_name(*base)) + "'"));
    return set(tmp, Value(base->as_map().find_string(n.name) != nullptr));
  }

  const Value* index(const Node& n, Value& tmp) {
    Value ta, tb;
    const Value* a = ev(*n.kids[0], ta);
    if (a->is_error()) return a == &ta ? set(tmp, std::move(ta)) : a;
    const Value* b = ev(*n.kids[1], tb);
    if (b->is_error()) return b == &tb ? set(tmp, std::move(tb)) : b;
    const Value* e = nullptr;
    if (a->kind() == Kind::List) {
      const List& l = a->as_list();
      std::int64_t i;
      if (b->kind() == Kind::Int) {
        i = b->as_int();
      } else if (b->kind() == Kind::Uint) {
        i = b->as_uint() > static_cast<std::uint64_t>(INT64_MAX) ? -1 : static_cast<std::int64_t>(b->as_uint());
      } else if (b->kind() == Kind::Double) {
        const double d = b->as_double();
        if (!(d > -1e18 && d < 1e18) || std::trunc(d) != d)
          return set(tmp, Value::error("invalid_argument: list index must be a whole number"));
        i = static_cast<std::int64_t>(d);
      } else {
        return set(tmp, Value::error("no such overload: list[" + std::string(type_name(*b)) + "]"));
      }
      if (i < 0 || static_cast<std::uint64_t>(i) >= l.size())
        return set(tmp, Value::error("invalid_argument: index " + std::to_string(i) + " out of range"));
      e = &l[static_cast<std::size_t>(i)];
    } else if (a->kind() == Kind::Map) {
      const Kind k = b->kind();
      if (k != Kind::String && k != Kind::Int && k != Kind::Uint && k != Kind::Bool && k != Kind::Double)
        return set(tmp, Value::error("unsupported map key type: " + std::string(type_name(*b))));
      e = a->as_map().find(*b);
      if (e == nullptr) return set(tmp, Value::error("no such key: " + debug_string(*b)));
    } else {
      return set(tmp, Value::error("no such overload: " + std::string(type_name(*a)) + "[" +
                                   std::string(type_name(*b)) + "]"));
    }
    return a == &ta ? set(tmp, *e) : e;
  }

  const Value* list(const Node& n, Value& tmp) {
    List out;
    out.reserve(n.kids.size());
    for (const auto& k : n.kids) {
      Value t;
      const Value* v = ev(*k, t);
      if (v->is_error()) return v == &t ? set(tmp, std::move(t)) : v;
      out.push_back(v == &t ? std::move(t) : *v);
    }
    return set(tmp, Value(std::move(out)));
  }

  const Value* map(const Node& n, Value& tmp) {
    std::vector<std::pair<Value, Value>> entries;
    entries.reserve(n.kids.size() / 2);
    for (std::size_t i = 0; i + 1 < n.kids.size(); i += 2) {
      Value tk, tv;
      const Value* k = ev(*n.kids[i], tk);
      if (k->is_error()) return k == &tk ? set(tmp, std::move(tk)) : k;
      const Value* v = ev(*n.kids[i + 1], tv);
      if (v->is_error()) return v == &tv ? set(tmp, std::move(tv)) : v;
      entries.emplace_back(*k, *v);
    }
    return set(tmp, Value::make_map(std::move(entries)));
  }

  // CEL's commutative && and ||: false (for ||: true) on either side decides the result
  // even when the other side is an error or not a bool; otherwise an error propagates.
  const Value* logic(const Node& n, Value& tmp) {
    const bool decisive = n.kind == NodeKind::Or;  // the value that short-circuits
    Value ta, tb;
    const Value* a = ev(*n.kids[0], ta);
    if (a->is_bool() && a->as_bool() == decisive) return set(tmp, Value(decisive));
    const Value* b = ev(*n.kids[1], tb);
    if (b->is_bool() && b->as_bool() == decisive) return set(tmp, Value(decisive));
    if (a->is_bool() && b->is_bool()) return set(tmp, Value(!decisive));
    if (a->is_error()) return a == &ta ? set(tmp, std::move(ta)) : a;
    if (b->is_error()) return b == &tb ? set(tmp, std::move(tb)) : b;
    return set(tmp, Value::error(std::string("no matching overload for ") + (decisive ? "_||_" : "_&&_")));
  }

  const Value* call(const Node& n, Value& tmp) {
    std::array<Value, 3> owned;
    std::array<const Value*, 3> args{};
    const std::size_t na = n.kids.size();
    if (n.fn == Fn::Unknown || na > args.size()) {
      // Arguments first: their errors take precedence, as for any strict function.
      for (const auto& k : n.kids) {
        Value t;
        const Value* v = ev(*k, t);
        if (v->is_error()) return v == &t ? set(tmp, std::move(t)) : v;
      }
      return set(tmp, Value::error("no matching overload for '" + n.name + "'"));
    }
    for (std::size_t i = 0; i < na; ++i) {
      const Value* v = ev(*n.kids[i], owned[i]);
      if (v->is_error()) return v == &owned[i] ? set(tmp, std::move(owned[i])) : v;
      args[i] = v;
    }
    if (n.fn == Fn::Dyn) return args[0] == &owned[0] ? set(tmp, std::move(owned[0])) : args[0];
    return set(tmp, call_function(n, args.data(), na, budget_));
  }

  const Value* comprehension(const Node& n, Value& tmp) {
    Value tr;
    const Value* range = ev(*n.kids[0], tr);
    if (range->is_error()) return range == &tr ? set(tmp, std::move(tr)) : range;
    if (range->kind() != Kind::List && range->kind() != Kind::Map)
      return set(tmp, Value::error("expression of type '" + std::string(type_name(*range)) +
                                   "' cannot be the range of a comprehension"));
    // The range stays alive while iterating: either tr or an input owns it.
    locals_.emplace_back(n.name, Value());
    Value result = iterate(n, *range);
    locals_.pop_back();
    return set(tmp, std::move(result));
  }

  // Evaluates predicate kid `k` for the current element: 1 true, 0 false, -1 error
  // (then *err holds the error when it is the first one).
  int predicate(const Node& k, Value* err) {
    Value t;
    const Value* p = ev(k, t);
    if (p->is_bool()) return p->as_bool() ? 1 : 0;
    if (err->kind() != Kind::Error)
      *err = p->is_error() ? *p : Value::error("no matching overload: predicate is not a bool");
    return -1;
  }

  Value iterate(const Node& n, const Value& range) {
    Value& var = locals_.back().second;
    Value err;  // Null until the first error
    std::int64_t count = 0;
    List out;
    const bool is_list = range.kind() == Kind::List;
    const std::size_t size = is_list ? range.as_list().size() : range.as_map().entries.size();
    for (std::size_t i = 0; i < size; ++i) {
      // Lists iterate over elements, maps over keys.
      const Value* item = is_list ? &range.as_list()[i] : &range.as_map().entries[i].first;
      if (!budget_.charge(1)) return Value::error(kCostError);
      var = *item;
      switch (n.macro) {
        case Macro::All:
        case Macro::Exists: {
          const bool decisive = n.macro == Macro::Exists;
          const int r = predicate(*n.kids[1], &err);
          if (r == static_cast<int>(decisive)) return Value(decisive);
          break;
        }
        case Macro::ExistsOne: {
          const int r = predicate(*n.kids[1], &err);
          if (r < 0) return err;
          count += r;
          break;
        }
        case Macro::Filter: {
          const int r = predicate(*n.kids[1], &err);
          if (r < 0) return err;
          if (r == 1) out.push_back(*item);
          break;
        }
        case Macro::Map: {
          if (n.kids.size() == 3) {  // map(x, filter, transform)
            const int r = predicate(*n.kids[1], &err);
            if (r < 0) return err;
            if (r == 0) break;
          }
          Value t;
          const Value* v = ev(*n.kids.back(), t);
          if (v->is_error()) return *v;
          out.push_back(v == &t ? std::move(t) : *v);
          break;
        }
      }
    }
    switch (n.macro) {
      case Macro::All:
      case Macro::Exists:
        if (err.is_error()) return err;
        return Value(n.macro == Macro::All);
      case Macro::ExistsOne: return Value(count == 1);
      default: return Value(std::move(out));
    }
  }

  const Activation& vars_;
  Budget budget_;
  // Comprehension variables, innermost last. Reserved up front for the program's
  // deepest comprehension nesting, so pointers to entries stay valid while nested
  // comprehensions push and pop (and no evaluation without macros allocates).
  std::vector<std::pair<std::string_view, Value>> locals_;
};

}  // namespace

std::size_t comprehension_nesting(const Node& n) {
  std::size_t inner = 0;
  for (const auto& k : n.kids) inner = std::max(inner, comprehension_nesting(*k));
  return inner + (n.kind == NodeKind::Comprehension ? 1 : 0);
}

Value evaluate(const Node& root, const Activation& vars, const Limits& limits, std::size_t max_nesting) {
  try {
    return Evaluator(vars, limits.max_steps, max_nesting).run(root);
  } catch (const std::exception& e) {  // allocation failure, or an internal bug
    return Value::error(std::string("internal error during evaluation: ") + e.what());
  }
}

}  // namespace kz::cel
