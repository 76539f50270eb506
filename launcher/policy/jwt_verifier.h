// JWT verification (RFC 7519) for the PDP: a token is accepted only when its "iss" names a
// configured issuer, its signature verifies with one of that issuer's keys, and its
// exp/nbf/aud claims hold. The verified claims become the policy's `identity`.
//
// Order of checks, and why: the compact form and header (crit, alg none, supported alg)
// first, since nothing else can be trusted without them; then iss, which only selects the
// issuer whose keys to try (an unknown iss cannot be verified at all); then the signature;
// only then the claims, so no decision is ever based on unverified claims.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kz/result.h"
#include "kz/wipe.h"
#include "policy/jwks_source.h"
#include "policy/jws_verify.h"
#include "policy/jwt_error.h"

namespace kz::jwt {

struct IssuerConfig {
  std::string issuer;         // compared exactly with "iss"
  std::string audience;       // "aud" (string or array) must contain it
  // Only for callers that genuinely have no audience (the RFC test vectors): a token
  // minted for another service would otherwise be accepted here.
  bool audience_optional = false;

  // Keys: at least one of these.
  std::string jwks_file;                  // a JWKS (RFC 7517) file, read at create()
  HttpsJwksOptions jwks_https;            // jwks_https.url non-empty: fetched and cached
  std::shared_ptr<const JwkSet> jwks;     // keys already in memory (tests, embedders)
  ScrubbedString hs256_key;               // raw octets; HS256 is accepted only when set

  std::chrono::seconds leeway{60};        // clock skew allowed on exp and nbf
  bool require_exp = true;                // tokens without exp never expire: refuse them
};

struct VerifiedJwt {
  nlohmann::json claims;      // the verified claims set: the policy's `identity`
  nlohmann::json header;      // the protected header
  Alg alg = Alg::RS256;
  std::string kid;            // from the header; empty when none
  std::string issuer;         // the configured issuer that matched
};

class JwtVerifier {
 public:
  // Validates the configuration (issuers distinct, keys present, HS256 key ≥ 256 bits,
  // leeway ≤ 5 min) and loads jwks_file. Errors are ErrorKind::Config.
  static Result<JwtVerifier> create(std::vector<IssuerConfig> issuers, ParseLimits limits = {});

  JwtResult<VerifiedJwt> verify(std::string_view token) const;                 // the system clock
  JwtResult<VerifiedJwt> verify(std::string_view token, std::int64_t now) const;  // now: Unix seconds

 private:
  struct Issuer {
    std::string issuer, audience;
    bool audience_optional = false;
    std::shared_ptr<JwksSource> keys;      // nullptr: HS256 only
    std::shared_ptr<const Jwk> hmac;       // nullptr: no HS256
    std::int64_t leeway = 60;
    bool require_exp = true;
  };
  JwtStatus verify_with_issuer(const JwsParts& parts, const Issuer& iss) const;

  std::vector<Issuer> issuers_;
  ParseLimits limits_;
};

// The claim checks alone (exposed for tests): exp/nbf against now ± leeway, and aud.
JwtStatus check_time_claims(const nlohmann::json& claims, std::int64_t now, std::int64_t leeway, bool require_exp);
JwtStatus check_audience(const nlohmann::json& claims, std::string_view audience);

}  // namespace kz::jwt
