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

// Result<T> with a JwtError: kz::Error carries only an ErrorKind, and callers here need
// the reason (r.error().reason).
template <class T>
using JwtResult = Result<T, JwtError>;

using JwtStatus = JwtResult<Ok>;

}  // namespace kz::jwt
