#include "policy/cel_functions.h"

#include <re2/re2.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cmath>

#include "policy/cel_text.h"

namespace kz::cel {

namespace {

constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

struct Builtin {
  std::string_view name;
  Fn fn;
  int global_arity;  // -1: no global overload
  int method_arity;  // -1: no receiver-style overload
};

constexpr Builtin kBuiltins[] = {
    {"size", Fn::Size, 1, 0},           {"contains", Fn::Contains, -1, 1},
    {"startsWith", Fn::StartsWith, -1, 1}, {"endsWith", Fn::EndsWith, -1, 1},
    {"matches", Fn::Matches, 2, 1},     {"int", Fn::Int, 1, -1},
    {"uint", Fn::Uint, 1, -1},          {"double", Fn::Double, 1, -1},
    {"string", Fn::String, 1, -1},      {"bytes", Fn::Bytes, 1, -1},
    {"bool", Fn::Bool, 1, -1},          {"type", Fn::Type, 1, -1},
    {"dyn", Fn::Dyn, 1, -1},
};

const char* op_symbol(Op op) {
  switch (op) {
    case Op::Not: return "!";
    case Op::Neg: return "-";
    case Op::Add: return "+";
    case Op::Sub: return "-";
    case Op::Mul: return "*";
    case Op::Div: return "/";
    case Op::Mod: return "%";
    case Op::Eq: return "==";
    case Op::Ne: return "!=";
    case Op::Lt: return "<";
    case Op::Le: return "<=";
    case Op::Gt: return ">";
    case Op::Ge: return ">=";
    case Op::In: return "in";
  }
  return "?";
}

Value no_overload(Op op, const Value& a, const Value& b) {
  return Value::error(std::string("no such overload: ") + std::string(type_name(a)) + " " + op_symbol(op) +
                      " " + std::string(type_name(b)));
}
Value no_overload(std::string_view fn, const Value& a) {
  return Value::error("no such overload: " + std::string(fn) + "(" + std::string(type_name(a)) + ")");
}
Value overflow() { return Value::error("integer overflow"); }
Value range_error(std::string_view what) { return Value::error("range error converting to " + std::string(what)); }

Value int_arith(Op op, std::int64_t x, std::int64_t y) {
  std::int64_t r;
  switch (op) {
    case Op::Add: if (__builtin_add_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Sub: if (__builtin_sub_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Mul: if (__builtin_mul_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Div:
      if (y == 0) return Value::error("divide by zero");
      if (x == INT64_MIN && y == -1) return overflow();
      return Value(x / y);
    case Op::Mod:
      if (y == 0) return Value::error("modulus by zero");
      if (x == INT64_MIN && y == -1) return overflow();
      return Value(x % y);
    default: return Value::error("internal: bad int operator");
  }
}

Value uint_arith(Op op, std::uint64_t x, std::uint64_t y) {
  std::uint64_t r;
  switch (op) {
    case Op::Add: if (__builtin_add_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Sub: if (__builtin_sub_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Mul: if (__builtin_mul_overflow(x, y, &r)) return overflow(); return Value(r);
    case Op::Div: if (y == 0) return Value::error("divide by zero"); return Value(x / y);
    case Op::Mod: if (y == 0) return Value::error("modulus by zero"); return Value(x % y);
    default: return Value::error("internal: bad uint operator");
  }
}

Value arith(Op op, const Value& a, const Value& b, Budget& budget) {
  const Kind k = a.kind();
  if (k != b.kind()) return no_overload(op, a, b);  // CEL never converts numbers implicitly
  switch (k) {
    case Kind::Int: return int_arith(op, a.as_int(), b.as_int());
    case Kind::Uint: return uint_arith(op, a.as_uint(), b.as_uint());
    case Kind::Double: {
      const double x = a.as_double(), y = b.as_double();
      switch (op) {
        case Op::Add: return Value(x + y);
        case Op::Sub: return Value(x - y);
        case Op::Mul: return Value(x * y);
        case Op::Div: return Value(x / y);  // IEEE 754: division by zero is +-Inf or NaN
        default: return no_overload(op, a, b);
      }
    }
    default: break;
  }
  if (op != Op::Add) return no_overload(op, a, b);
  // Concatenation costs in proportion to what it copies, so nested comprehensions
  // cannot build exponentially large values within the step budget.
  switch (k) {
    case Kind::String: {
      const std::size_t n = a.as_string().size() + b.as_string().size();
      if (!budget.charge(n / 64)) return Value::error("evaluation cost limit exceeded");
      return Value(a.as_string() + b.as_string());
    }
    case Kind::Bytes: {
      const std::size_t n = a.as_bytes().size() + b.as_bytes().size();
      if (!budget.charge(n / 64)) return Value::error("evaluation cost limit exceeded");
      return Value(Bytes{a.as_bytes() + b.as_bytes()});
    }
    case Kind::List: {
      const List &x = a.as_list(), &y = b.as_list();
      if (!budget.charge((x.size() + y.size()) / 8)) return Value::error("evaluation cost limit exceeded");
      if (x.empty()) return b;
      if (y.empty()) return a;
      List out;
      out.reserve(x.size() + y.size());
      out.insert(out.end(), x.begin(), x.end());
      out.insert(out.end(), y.begin(), y.end());
      return Value(std::move(out));
    }
    default: return no_overload(op, a, b);
  }
}

Value relation(Op op, const Value& a, const Value& b) {
  const Order o = compare(a, b);
  if (!o.ok) return no_overload(op, a, b);
  if (o.cmp == 2) return Value(false);  // NaN is unordered
  switch (op) {
    case Op::Lt: return Value(o.cmp < 0);
    case Op::Le: return Value(o.cmp <= 0);
    case Op::Gt: return Value(o.cmp > 0);
    default: return Value(o.cmp >= 0);
  }
}

Value membership(const Value& a, const Value& b, Budget& budget) {
  if (b.kind() == Kind::List) {
    const List& l = b.as_list();
    if (!budget.charge(l.size() / 8)) return Value::error("evaluation cost limit exceeded");
    for (const auto& e : l)
      if (equals(a, e)) return Value(true);
    return Value(false);
  }
  // Map keys compare numerically across int, uint and double (3.0 finds 3u, 3.1 nothing).
  if (b.kind() == Kind::Map) return Value(b.as_map().find(a) != nullptr);
  return no_overload(Op::In, a, b);
}

// ---- conversions ----

bool parse_int(std::string_view s, std::int64_t* out) {
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_uint(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.front() == '-') return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool parse_double(std::string_view s, double* out) {
  bool neg = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (iequals(s, "inf") || iequals(s, "infinity")) {
    *out = neg ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  if (iequals(s, "nan")) {
    *out = std::nan("");
    return true;
  }
  if (s.empty() || s.front() == '+' || s.front() == '-') return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return false;
  const std::string text(s);
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return false;
  if (errno == ERANGE && std::isinf(d)) return false;
  *out = neg ? -d : d;
  return true;
}

Value to_int(const Value& v) {
  switch (v.kind()) {
    case Kind::Int: return v;
    case Kind::Uint:
      if (v.as_uint() > static_cast<std::uint64_t>(INT64_MAX)) return range_error("int");
      return Value(static_cast<std::int64_t>(v.as_uint()));
    case Kind::Double: {
      const double d = v.as_double();
      // The open interval: -2^63 itself is excluded as the reference implementation does.
      if (!(d > -kTwo63 && d < kTwo63)) return range_error("int");
      return Value(static_cast<std::int64_t>(d));
    }
    case Kind::String: {
      std::int64_t i;
      if (!parse_int(v.as_string(), &i)) return Value::error("cannot convert string to int");
      return Value(i);
    }
    default: return no_overload("int", v);
  }
}

Value to_uint(const Value& v) {
  switch (v.kind()) {
    case Kind::Uint: return v;
    case Kind::Int:
      if (v.as_int() < 0) return range_error("uint");
      return Value(static_cast<std::uint64_t>(v.as_int()));
    case Kind::Double: {
      const double d = v.as_double();
      if (!(d >= 0 && d < kTwo64)) return range_error("uint");  // negative fractions too
      return Value(static_cast<std::uint64_t>(d));
    }
    case Kind::String: {
      std::uint64_t u;
      if (!parse_uint(v.as_string(), &u)) return Value::error("cannot convert string to uint");
      return Value(u);
    }
    default: return no_overload("uint", v);
  }
}

Value to_double(const Value& v) {
  switch (v.kind()) {
    case Kind::Double: return v;
    case Kind::Int: return Value(static_cast<double>(v.as_int()));
    case Kind::Uint: return Value(static_cast<double>(v.as_uint()));
    case Kind::String: {
      double d;
      if (!parse_double(v.as_string(), &d)) return Value::error("cannot convert string to double");
      return Value(d);
    }
    default: return no_overload("double", v);
  }
}

Value to_string(const Value& v) {
  switch (v.kind()) {
    case Kind::String: return v;
    case Kind::Int: return Value(std::to_string(v.as_int()));
    case Kind::Uint: return Value(std::to_string(v.as_uint()));
    case Kind::Double: return Value(format_double(v.as_double()));
    case Kind::Bool: return Value(std::string(v.as_bool() ? "true" : "false"));
    case Kind::Bytes:
      if (!valid_utf8(v.as_bytes())) return Value::error("invalid UTF-8 in bytes, cannot convert to string");
      return Value(v.as_bytes());
    default: return no_overload("string", v);
  }
}

Value to_bool(const Value& v) {
  if (v.kind() == Kind::Bool) return v;
  if (v.kind() != Kind::String) return no_overload("bool", v);
  const std::string& s = v.as_string();
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return Value(true);
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") return Value(false);
  return Value::error("cannot convert string to bool");
}

Value size_of(const Value& v) {
  switch (v.kind()) {
    case Kind::String: return Value(static_cast<std::int64_t>(utf8_length(v.as_string())));
    case Kind::Bytes: return Value(static_cast<std::int64_t>(v.as_bytes().size()));
    case Kind::List: return Value(static_cast<std::int64_t>(v.as_list().size()));
    case Kind::Map: return Value(static_cast<std::int64_t>(v.as_map().entries.size()));
    default: return no_overload("size", v);
  }
}

std::shared_ptr<const re2::RE2> compile_regex(const std::string& pattern, std::string* error) {
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(pattern, opts);
  if (!re->ok()) {
    *error = "invalid regular expression: " + re->error();
    return nullptr;
  }
  return re;
}

Value string_fn(const Node& call, const Value& s, const Value& arg, Budget& budget) {
  if (s.kind() != Kind::String || arg.kind() != Kind::String)
    return Value::error("no such overload: " + call.name + "(" + std::string(type_name(s)) + ", " +
                        std::string(type_name(arg)) + ")");
  const std::string& x = s.as_string();
  const std::string& y = arg.as_string();
  if (!budget.charge((x.size() + y.size()) / 64)) return Value::error("evaluation cost limit exceeded");
  switch (call.fn) {
    case Fn::Contains: return Value(x.find(y) != std::string::npos);
    case Fn::StartsWith: return Value(x.size() >= y.size() && x.compare(0, y.size(), y) == 0);
    case Fn::EndsWith: return Value(x.size() >= y.size() && x.compare(x.size() - y.size(), y.size(), y) == 0);
    default: break;
  }
  std::shared_ptr<const re2::RE2> re = call.regex;
  if (!re) {
    std::string err;
    if (!budget.charge(y.size())) return Value::error("evaluation cost limit exceeded");
    re = compile_regex(y, &err);
    if (!re) return Value::error(err);
  }
  return Value(re2::RE2::PartialMatch(x, *re));
}

}  // namespace

bool resolve_function(std::string_view name, bool method, std::size_t nargs, Fn* fn, std::string* error) {
  for (const auto& b : kBuiltins) {
    if (b.name != name) continue;
    const int want = method ? b.method_arity : b.global_arity;
    if (want < 0 || static_cast<std::size_t>(want) != nargs) {
      *error = "no matching overload for " + std::string(method ? "method '" : "function '") + std::string(name) +
               "' with " + std::to_string(nargs) + " argument(s)";
      return false;
    }
    *fn = b.fn;
    return true;
  }
  *error = "undeclared reference to function '" + std::string(name) + "'";
  return false;
}

bool prepare_call(Node& call, std::string* error) {
  if (call.fn != Fn::Matches) return true;
  const Node& pat = *call.kids.back();
  if (pat.kind != NodeKind::Const || pat.value.kind() != Kind::String) return true;
  call.regex = compile_regex(pat.value.as_string(), error);
  return call.regex != nullptr;
}

Value apply_unary(Op op, const Value& a) {
  if (op == Op::Not) {
    if (a.kind() == Kind::Bool) return Value(!a.as_bool());
    return no_overload("!_", a);
  }
  if (a.kind() == Kind::Int) {
    if (a.as_int() == INT64_MIN) return overflow();
    return Value(-a.as_int());
  }
  if (a.kind() == Kind::Double) return Value(-a.as_double());
  return no_overload("-_", a);
}

Value apply_binary(Op op, const Value& a, const Value& b, Budget& budget) {
  switch (op) {
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Mod:
      return arith(op, a, b, budget);
    case Op::Eq:
    case Op::Ne: {
      // Comparing aggregates walks them: charge their size like other linear work.
      std::size_t n = 0;
      if (a.kind() == Kind::List && b.kind() == Kind::List) n = a.as_list().size();
      if (a.kind() == Kind::Map && b.kind() == Kind::Map) n = a.as_map().entries.size();
      if (a.kind() == Kind::String && b.kind() == Kind::String) n = a.as_string().size() / 8;
      if (!budget.charge(n / 8)) return Value::error("evaluation cost limit exceeded");
      return Value(equals(a, b) == (op == Op::Eq));
    }
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge:
      return relation(op, a, b);
    case Op::In: return membership(a, b, budget);
    default: return Value::error("internal: bad binary operator");
  }
}

Value call_function(const Node& call, const Value* const* args, std::size_t nargs, Budget& budget) {
  if (nargs == 0) return Value::error("internal: no arguments");
  const Value& a0 = *args[0];
  switch (call.fn) {
    case Fn::Size: return size_of(a0);
    case Fn::Contains: case Fn::StartsWith: case Fn::EndsWith: case Fn::Matches:
      if (nargs != 2) return Value::error("internal: bad arity");
      return string_fn(call, a0, *args[1], budget);
    case Fn::Int: return to_int(a0);
    case Fn::Uint: return to_uint(a0);
    case Fn::Double: return to_double(a0);
    case Fn::String: return to_string(a0);
    case Fn::Bytes:
      if (a0.kind() == Kind::Bytes) return a0;
      if (a0.kind() == Kind::String) return Value(Bytes{a0.as_string()});
      return no_overload("bytes", a0);
    case Fn::Bool: return to_bool(a0);
    case Fn::Type: {
      const TypeValue* t = type_by_name(type_name(a0));
      return t ? Value(*t) : Value::error("no type for value");
    }
    case Fn::Dyn: return a0;
    case Fn::Unknown: break;
  }
  return Value::error("internal: unknown function");
}

}  // namespace kz::cel
