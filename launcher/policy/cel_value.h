// CEL runtime values. Errors are ordinary values (Kind::Error) so that `&&`, `||` and
// the macros can absorb them as the CEL specification requires; only the top level of
// an evaluation decides that an error is final.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kz::cel {

class Value;

struct Null {
  bool operator==(const Null&) const = default;
};
struct Bytes {
  std::string data;
};
// A type value, such as the result of type(1) or the bare identifier `int`.
struct TypeValue {
  std::string_view name;  // always one of the static names in cel_value.cpp
};
struct ErrorValue {
  std::string message;
};

using List = std::vector<Value>;
// Insertion-ordered map; keys are bool, int, uint or string (checked on construction).
// Lookups are linear: policy maps are small, and this keeps iteration order stable.
struct Map {
  std::vector<std::pair<Value, Value>> entries;
  // Finds key with CEL's heterogeneous numeric key equality (1 finds 1u and 1.0).
  const Value* find(const Value& key) const;
  const Value* find_string(std::string_view key) const;
};

enum class Kind { Null, Bool, Int, Uint, Double, String, Bytes, List, Map, Type, Error };

class Value {
 public:
  using Storage = std::variant<Null, bool, std::int64_t, std::uint64_t, double, std::string, Bytes,
                               std::shared_ptr<const List>, std::shared_ptr<const Map>, TypeValue,
                               ErrorValue>;

  Value() : v_(Null{}) {}
  Value(Null n) : v_(n) {}                                   // NOLINT
  Value(bool b) : v_(b) {}                                   // NOLINT
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}         // NOLINT
  Value(std::int64_t i) : v_(i) {}                           // NOLINT
  Value(std::uint64_t u) : v_(u) {}                          // NOLINT
  Value(double d) : v_(d) {}                                 // NOLINT
  Value(std::string s) : v_(std::move(s)) {}                 // NOLINT
  Value(const char* s) : v_(std::string(s)) {}               // NOLINT
  Value(Bytes b) : v_(std::move(b)) {}                       // NOLINT
  Value(List l) : v_(std::make_shared<const List>(std::move(l))) {}  // NOLINT
  Value(std::shared_ptr<const List> l) : v_(std::move(l)) {}         // NOLINT
  Value(std::shared_ptr<const Map> m) : v_(std::move(m)) {}          // NOLINT
  Value(TypeValue t) : v_(t) {}                              // NOLINT
  Value(ErrorValue e) : v_(std::move(e)) {}                  // NOLINT

  static Value error(std::string message) { return Value(ErrorValue{std::move(message)}); }
  // A map from entries; an error value when a key has an unsupported type or repeats.
  static Value make_map(std::vector<std::pair<Value, Value>> entries);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_error() const { return kind() == Kind::Error; }
  bool is_bool() const { return kind() == Kind::Bool; }

  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(v_); }
  std::uint64_t as_uint() const { return std::get<std::uint64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const std::string& as_bytes() const { return std::get<Bytes>(v_).data; }
  const List& as_list() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const Map& as_map() const { return *std::get<std::shared_ptr<const Map>>(v_); }
  std::string_view as_type() const { return std::get<TypeValue>(v_).name; }
  const std::string& error_message() const { return std::get<ErrorValue>(v_).message; }

  const Storage& storage() const { return v_; }

 private:
  Storage v_;
};

// CEL's type name of a value ("int", "map", "null_type", "type", ...).
std::string_view type_name(const Value& v);
// The static type value for a type name, or nullptr when name is not a CEL type name.
const TypeValue* type_by_name(std::string_view name);

// CEL equality (heterogeneous numeric equality; values of different types are unequal).
// Never an error for non-error operands.
bool equals(const Value& a, const Value& b);
// Ordering for <, <=, >, >=: -1, 0, 1, 2 for "unordered" (NaN), or an error value
// for types without an ordering. Returned as a Value only in the error case.
struct Order {
  int cmp = 0;          // -1, 0, 1; 2 means unordered (a NaN operand)
  bool ok = true;       // false: no such overload for these operand types
};
Order compare(const Value& a, const Value& b);

// A readable rendering for tests and diagnostics (never used for secret values).
std::string debug_string(const Value& v);

// JSON to CEL: null, bool, numbers (integers as int, or uint when above INT64_MAX;
// fractional numbers as double), strings, arrays as lists, objects as string-keyed maps.
Value from_json(const nlohmann::json& j);

}  // namespace kz::cel
