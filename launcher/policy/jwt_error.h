// Why a JWT/JWS was rejected, as a value: a machine-readable reason for the decision log
// and for tests, and a human message. Messages are built from header names, alg names,
// kids and claim names only: never from the token, its signature or key material.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include "kz/result.h"

namespace kz::jwt {

enum class Reason {
  Malformed,        // not a compact JWS, bad base64url, non-JSON header/payload, bad claim type
  AlgNone,          // alg "none" in any spelling: unsecured JWS are never accepted
  AlgMismatch,      // alg unsupported, or an HMAC alg against asymmetric key material
  KeyMismatch,      // the selected key's kty/crv/alg/use does not fit the token's alg
  UnknownKid,       // no key with the token's kid (or no key at all)
  BadSignature,     // the signature does not verify
  CritUnsupported,  // a "crit" header names an extension this verifier does not implement
  Expired,          // now >= exp + leeway
  NotYetValid,      // now < nbf - leeway
  WrongIssuer,      // no configured issuer for iss
  WrongAudience,    // aud does not contain the configured audience
  MissingClaim,     // a claim the issuer requires (exp) is absent
};

const char* to_string(Reason r);

struct JwtError {
  Reason reason = Reason::Malformed;
  std::string message;
};

inline JwtError jwt_error(Reason r, std::string msg) { return JwtError{r, std::move(msg)}; }

// As a kz::Error (kind Denied) for callers that speak Result<T>: "jwt rejected (reason): message".
Error to_error(const JwtError& e);

// Result<T> with a JwtError: kz::Result carries only an ErrorKind, and callers here need
// the reason.
template <class T>
class [[nodiscard]] JwtResult {
 public:
  JwtResult(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  JwtResult(JwtError err) : v_(std::move(err)) {}   // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const JwtError& error() const { assert(!ok()); return std::get<1>(v_); }
  Reason reason() const { return error().reason; }

 private:
  std::variant<T, JwtError> v_;
};

using JwtStatus = JwtResult<Ok>;

}  // namespace kz::jwt
