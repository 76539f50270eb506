// The JWS layer (RFC 7515 compact serialization, algorithms of RFC 7518 §3 and RFC 8037):
// split and decode a compact JWS, check its protected header, and verify its signature
// with one key. Claims (exp, iss, aud...) are the JWT layer's job (jwt_verifier.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "policy/jwk.h"
#include "policy/jwt_error.h"

namespace kz::jwt {

enum class Alg { HS256, RS256, PS256, ES256, ES512, EdDSA };

const char* to_string(Alg a);
std::optional<Alg> alg_from_string(std::string_view s);

// Bounds on what is parsed at all: tokens come from untrusted agents.
struct ParseLimits {
  std::size_t max_token_bytes = 16 * 1024;
  int max_json_depth = 16;
};

struct JwsParts {
  nlohmann::json header;          // the protected header, a JSON object
  std::string header_raw;         // its decoded octets
  std::string payload_raw;        // the decoded payload octets (a JWT's claims set)
  std::string signature;          // decoded signature octets (may be empty)
  std::string signing_input;      // ASCII(BASE64URL(header) || '.' || BASE64URL(payload))
  Alg alg = Alg::HS256;
  std::string kid;                // empty when the header has none
};

// Parses a compact JWS and checks its header: three segments, strict base64url, header a
// JSON object without duplicate names, no "crit" (no extension is implemented, so any
// listed one is unsupported: RFC 7515 §4.1.11), "alg" present and not "none" in any
// spelling, and an alg this verifier implements. Header parameters that carry or point
// at keys (jwk, jku, x5c, x5u) are ignored: keys come only from configuration.
JwtResult<JwsParts> parse_compact(std::string_view token, const ParseLimits& limits = {});

// Parses JSON from an untrusted source: objects with duplicate member names and nesting
// deeper than max_depth are refused (nullopt), as are invalid UTF-8 and trailing bytes.
std::optional<nlohmann::json> parse_strict_json(std::string_view text, int max_depth);

// Whether `key` may verify `alg`: Ok, or AlgMismatch when an HMAC alg meets asymmetric
// key material (the RS256→HS256 confusion), KeyMismatch when kty/crv/alg/use do not fit.
JwtStatus key_fits(Alg alg, const Jwk& key);

// Verifies the signature of `parts` with `key` (key_fits first, then the signature).
JwtStatus verify_signature(const JwsParts& parts, const Jwk& key);

// HMAC-SHA-256 check with a raw shared key, in constant time.
JwtStatus verify_hs256(const JwsParts& parts, std::string_view secret);

}  // namespace kz::jwt
