#include "policy/cel_value.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "policy/cel_text.h"

namespace kz::cel {

namespace {

constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

int sign(bool less, bool greater) { return less ? -1 : (greater ? 1 : 0); }

// Exact comparisons across numeric types: no rounding through double, so that
// 2^63-1 and 9223372036854775807.0 (which is 2^63) compare as different numbers.
int cmp_int_uint(std::int64_t i, std::uint64_t u) {
  if (i < 0) return -1;
  return sign(static_cast<std::uint64_t>(i) < u, static_cast<std::uint64_t>(i) > u);
}

int cmp_int_double(std::int64_t i, double d) {  // d is not NaN
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  const auto t = static_cast<std::int64_t>(d);  // truncation toward zero, exact
  if (i != t) return sign(i < t, i > t);
  const double frac = d - static_cast<double>(t);
  return sign(frac > 0, frac < 0);
}

int cmp_uint_double(std::uint64_t u, double d) {  // d is not NaN
  if (d < 0) return 1;
  if (d >= kTwo64) return -1;
  const auto t = static_cast<std::uint64_t>(d);
  if (u != t) return sign(u < t, u > t);
  const double frac = d - static_cast<double>(t);
  return sign(frac > 0, frac < 0);
}

bool is_numeric(Kind k) { return k == Kind::Int || k == Kind::Uint || k == Kind::Double; }

// Numeric comparison; 2 when a NaN is involved.
int cmp_numeric(const Value& a, const Value& b) {
  const Kind ka = a.kind(), kb = b.kind();
  if (ka == Kind::Double && std::isnan(a.as_double())) return 2;
  if (kb == Kind::Double && std::isnan(b.as_double())) return 2;
  if (ka == Kind::Int) {
    if (kb == Kind::Int) return sign(a.as_int() < b.as_int(), a.as_int() > b.as_int());
    if (kb == Kind::Uint) return cmp_int_uint(a.as_int(), b.as_uint());
    return cmp_int_double(a.as_int(), b.as_double());
  }
  if (ka == Kind::Uint) {
    if (kb == Kind::Uint) return sign(a.as_uint() < b.as_uint(), a.as_uint() > b.as_uint());
    if (kb == Kind::Int) return -cmp_int_uint(b.as_int(), a.as_uint());
    return cmp_uint_double(a.as_uint(), b.as_double());
  }
  const double d = a.as_double();
  if (kb == Kind::Double) return sign(d < b.as_double(), d > b.as_double());
  if (kb == Kind::Int) return -cmp_int_double(b.as_int(), d);
  return -cmp_uint_double(b.as_uint(), d);
}

const TypeValue kTypes[] = {{"null_type"}, {"bool"}, {"int"}, {"uint"},  {"double"}, {"string"},
                            {"bytes"},     {"list"}, {"map"}, {"type"}, {"error"}};

}  // namespace

const Value* Map::find(const Value& key) const {
  if (key.kind() == Kind::String) return find_string(key.as_string());
  for (const auto& [k, v] : entries)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* Map::find_string(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.kind() == Kind::String && k.as_string() == key) return &v;
  return nullptr;
}

Value Value::make_map(std::vector<std::pair<Value, Value>> entries) {
  auto m = std::make_shared<Map>();
  m->entries.reserve(entries.size());
  for (auto& [k, v] : entries) {
    const Kind kk = k.kind();
    if (kk == Kind::Error) return k;
    if (v.is_error()) return v;
    if (kk != Kind::Bool && kk != Kind::Int && kk != Kind::Uint && kk != Kind::String)
      return error("unsupported map key type: " + std::string(type_name(k)));
    if (m->find(k) != nullptr) return error("Failed with repeated key: " + debug_string(k));
    m->entries.emplace_back(std::move(k), std::move(v));
  }
  return Value(std::shared_ptr<const Map>(std::move(m)));
}

std::string_view type_name(const Value& v) {
  if (v.kind() == Kind::Type) return "type";
  return kTypes[static_cast<int>(v.kind())].name;
}

const TypeValue* type_by_name(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name && name != "error") return &t;
  return nullptr;
}

bool equals(const Value& a, const Value& b) {
  const Kind ka = a.kind(), kb = b.kind();
  if (is_numeric(ka) && is_numeric(kb)) return cmp_numeric(a, b) == 0;
  if (ka != kb) return false;
  switch (ka) {
    case Kind::Null: return true;
    case Kind::Bool: return a.as_bool() == b.as_bool();
    case Kind::String: return a.as_string() == b.as_string();
    case Kind::Bytes: return a.as_bytes() == b.as_bytes();
    case Kind::Type: return a.as_type() == b.as_type();
    case Kind::List: {
      const List &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::Map: {
      const Map &x = a.as_map(), &y = b.as_map();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (other == nullptr || !equals(v, *other)) return false;
      }
      return true;
    }
    default: return false;
  }
}

Order compare(const Value& a, const Value& b) {
  const Kind ka = a.kind(), kb = b.kind();
  if (is_numeric(ka) && is_numeric(kb)) return Order{cmp_numeric(a, b), true};
  if (ka != kb) return Order{0, false};
  switch (ka) {
    case Kind::Bool: return Order{sign(a.as_bool() < b.as_bool(), a.as_bool() > b.as_bool()), true};
    case Kind::String: {
      // Byte order of UTF-8 is code point order, which is what CEL specifies.
      const int c = a.as_string().compare(b.as_string());
      return Order{sign(c < 0, c > 0), true};
    }
    case Kind::Bytes: {
      const int c = a.as_bytes().compare(b.as_bytes());
      return Order{sign(c < 0, c > 0), true};
    }
    default: return Order{0, false};
  }
}

std::string debug_string(const Value& v) {
  switch (v.kind()) {
    case Kind::Null: return "null";
    case Kind::Bool: return v.as_bool() ? "true" : "false";
    case Kind::Int: return std::to_string(v.as_int());
    case Kind::Uint: return std::to_string(v.as_uint()) + "u";
    case Kind::Double: return format_double(v.as_double());
    case Kind::String: return nlohmann::json(v.as_string()).dump(-1, ' ', false,
                                                                  nlohmann::json::error_handler_t::replace);
    case Kind::Bytes: {
      std::string out = "b\"";
      static const char* hex = "0123456789abcdef";
      for (unsigned char c : v.as_bytes()) {
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
          out += static_cast<char>(c);
        } else {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        }
      }
      return out + "\"";
    }
    case Kind::List: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v.as_list()) {
        if (!first) out += ", ";
        first = false;
        out += debug_string(e);
      }
      return out + "]";
    }
    case Kind::Map: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.as_map().entries) {
        if (!first) out += ", ";
        first = false;
        out += debug_string(k) + ": " + debug_string(e);
      }
      return out + "}";
    }
    case Kind::Type: return std::string(v.as_type());
    case Kind::Error: return "error(" + v.error_message() + ")";
  }
  return "?";
}

Value from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value(Null{});
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return Value(static_cast<std::int64_t>(u));
      return Value(u);
    }
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& e : j) l.push_back(from_json(e));
      return Value(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      auto m = std::make_shared<Map>();
      m->entries.reserve(j.size());
      for (const auto& [k, e] : j.items()) m->entries.emplace_back(Value(k), from_json(e));
      return Value(std::shared_ptr<const Map>(std::move(m)));
    }
    case nlohmann::json::value_t::binary: {
      const auto& b = j.get_binary();
      return Value(Bytes{std::string(b.begin(), b.end())});
    }
    default: return Value::error("unsupported JSON value");
  }
}

}  // namespace kz::cel
