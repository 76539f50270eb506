// Errors as values at module boundaries: Result<T> holds either a T or an Error.
// Error messages must never contain secret values; callers build them from names,
// refs, providers and positions only.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kz {

enum class ErrorKind {
  Config,      // bad configuration: file, line, column in the message
  Usage,       // bad command line
  NotFound,    // secret / field / file does not exist
  Denied,      // 401/403 or equivalent
  Timeout,     // provider deadline exceeded
  Tls,         // TLS verification or handshake failure
  Network,     // connection refused, DNS, reset
  Protocol,    // malformed response (bad JSON, missing field)
  Io,          // local I/O error
  Internal,
};

const char* to_string(ErrorKind k);

struct Error {
  ErrorKind kind = ErrorKind::Internal;
  std::string message;
};

inline Error make_error(ErrorKind k, std::string msg) { return Error{k, std::move(msg)}; }

// E: the error type; kz::Error at module boundaries, a richer one inside a module that
// needs more than a kind and a message (jwt::JwtError carries the rejection reason).
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
  Result(E err) : v_(std::move(err)) {}                // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { assert(!ok()); return std::get<1>(v_); }
  E&& take_error() { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

// Result<void>
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace kz
