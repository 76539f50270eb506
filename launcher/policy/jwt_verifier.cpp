#include "policy/jwt_verifier.h"

#include <ctime>
#include <set>

namespace kz::jwt {
namespace {

using nlohmann::json;

// At most this many keys are tried for one token without a kid: bounds the work an
// attacker can cause with one token against a large JWKS.
constexpr std::size_t kMaxKeysTried = 8;

// Strings from the token (iss, kid) are shown in messages only when short and printable,
// so a message cannot carry a log injection or a large blob.
std::string shown(std::string_view s) {
  if (s.size() > 64) return "(not shown)";
  for (char c : s)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return "(not shown)";
  return "\"" + std::string(s) + "\"";
}

Error cfg(const std::string& issuer, std::string msg) {
  return make_error(ErrorKind::Config, "identity issuer " + (issuer.empty() ? std::string("(unnamed)") : issuer) + ": " +
                                           std::move(msg));
}

// Tries the fitting keys among `cands`. KeyMismatch when none fits, BadSignature when
// some fit and none verifies.
JwtStatus try_keys(const JwsParts& parts, const std::vector<const Jwk*>& cands) {
  std::optional<JwtError> first_misfit;
  std::size_t tried = 0;
  for (const Jwk* k : cands) {
    auto fit = key_fits(parts.alg, *k);
    if (!fit) {
      if (!first_misfit) first_misfit = fit.error();
      continue;
    }
    if (tried++ == kMaxKeysTried) break;
    if (auto st = verify_signature(parts, *k); st) return st;
  }
  if (tried == 0 && first_misfit) return *first_misfit;
  return jwt_error(Reason::BadSignature, "signature does not verify with the issuer's keys");
}

JwtStatus select_and_verify(const JwsParts& parts, const JwkSet& set) {
  std::vector<const Jwk*> cands;
  for (const auto& k : set.keys)
    if (parts.kid.empty() || k.kid == parts.kid) cands.push_back(&k);
  if (cands.empty())
    return jwt_error(Reason::UnknownKid, parts.kid.empty() ? std::string("the issuer has no usable keys")
                                                           : "no key with kid " + shown(parts.kid));
  return try_keys(parts, cands);
}

std::optional<double> numeric(const json& j) {
  if (j.is_number()) return j.get<double>();
  return std::nullopt;
}

}  // namespace

JwtStatus check_time_claims(const json& claims, std::int64_t now, std::int64_t leeway, bool require_exp) {
  // NumericDate may be non-integer (RFC 7519 §2); doubles hold Unix seconds exactly.
  const double t = static_cast<double>(now);
  const double lw = static_cast<double>(leeway);
  if (auto it = claims.find("exp"); it != claims.end()) {
    auto exp = numeric(*it);
    if (!exp) return jwt_error(Reason::Malformed, "\"exp\" is not a number");
    // RFC 7519 §4.1.4: the current time MUST be before exp, so now == exp is expired.
    if (t - lw >= *exp) return jwt_error(Reason::Expired, "token expired");
  } else if (require_exp) {
    return jwt_error(Reason::MissingClaim, "token has no \"exp\" claim, which this issuer requires");
  }
  if (auto it = claims.find("nbf"); it != claims.end()) {
    auto nbf = numeric(*it);
    if (!nbf) return jwt_error(Reason::Malformed, "\"nbf\" is not a number");
    // §4.1.5: the current time MUST be after or equal to nbf.
    if (t + lw < *nbf) return jwt_error(Reason::NotYetValid, "token is not valid yet (nbf)");
  }
  return Ok{};
}

JwtStatus check_audience(const json& claims, std::string_view audience) {
  auto it = claims.find("aud");
  if (it == claims.end()) return jwt_error(Reason::WrongAudience, "token has no \"aud\" claim");
  if (it->is_string()) {
    if (it->get_ref<const std::string&>() == audience) return Ok{};
    return jwt_error(Reason::WrongAudience, "token is for another audience");
  }
  if (!it->is_array()) return jwt_error(Reason::Malformed, "\"aud\" is neither a string nor an array");
  bool found = false;
  for (const auto& a : *it) {
    if (!a.is_string()) return jwt_error(Reason::Malformed, "\"aud\" array holds a non-string");
    if (a.get_ref<const std::string&>() == audience) found = true;
  }
  if (!found) return jwt_error(Reason::WrongAudience, "token is for other audiences");
  return Ok{};
}

Result<JwtVerifier> JwtVerifier::create(std::vector<IssuerConfig> issuers, ParseLimits limits) {
  JwtVerifier v;
  v.limits_ = limits;
  std::set<std::string> seen;
  for (auto& c : issuers) {
    if (c.issuer.empty()) return cfg(c.issuer, "\"issuer\" is empty");
    if (!seen.insert(c.issuer).second) return cfg(c.issuer, "configured twice");
    if (c.audience.empty() && !c.audience_optional) return cfg(c.issuer, "\"audience\" is required");
    if (c.leeway.count() < 0 || c.leeway.count() > 300) return cfg(c.issuer, "leeway must be between 0 and 300 seconds");
    const int sources = !c.jwks_file.empty() + !c.jwks_https.url.empty() + (c.jwks != nullptr);
    if (sources > 1) return cfg(c.issuer, "give one of jwks_file, jwks_url");
    if (sources == 0 && c.hs256_key.str().empty()) return cfg(c.issuer, "no keys (jwks_file, jwks_url or an HS256 key)");

    Issuer is;
    is.issuer = c.issuer;
    is.audience = c.audience;
    is.audience_optional = c.audience_optional;
    is.leeway = c.leeway.count();
    is.require_exp = c.require_exp;
    if (!c.jwks_file.empty()) {
      auto set = load_jwks_file(c.jwks_file);
      if (!set) return cfg(c.issuer, set.error().message);
      is.keys = std::make_shared<StaticJwksSource>(std::make_shared<const JwkSet>(std::move(*set)));
    } else if (!c.jwks_https.url.empty()) {
      auto src = HttpsJwksSource::create(c.jwks_https);
      if (!src) return cfg(c.issuer, src.error().message);
      is.keys = std::move(*src);
    } else if (c.jwks) {
      for (const auto& k : c.jwks->keys)
        if (k.kty == KeyType::Oct) return cfg(c.issuer, "symmetric keys belong in the HS256 key, not the JWKS");
      is.keys = std::make_shared<StaticJwksSource>(c.jwks);
    }
    if (!c.hs256_key.str().empty()) {
      // RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash (256 bits).
      if (c.hs256_key.str().size() < 32) return cfg(c.issuer, "the HS256 key is shorter than 256 bits");
      auto k = std::make_shared<Jwk>();
      k->kty = KeyType::Oct;
      k->alg = "HS256";
      k->secret = std::move(c.hs256_key);
      is.hmac = std::move(k);
    }
    v.issuers_.push_back(std::move(is));
  }
  if (v.issuers_.empty()) return make_error(ErrorKind::Config, "identity: no issuers configured");
  return v;
}

JwtStatus JwtVerifier::verify_with_issuer(const JwsParts& parts, const Issuer& iss) const {
  if (parts.alg == Alg::HS256) {
    // HS256 is only ever checked against the issuer's configured shared key. Without one,
    // an HS256 token is the alg-confusion attack (the public key used as an HMAC key).
    if (!iss.hmac) return jwt_error(Reason::AlgMismatch, "HS256 token, but the issuer has no shared HS256 key");
    return verify_signature(parts, *iss.hmac);
  }
  if (!iss.keys) return jwt_error(Reason::AlgMismatch, std::string(to_string(parts.alg)) +
                                                           " token, but the issuer has only an HS256 key");
  std::string why;
  auto set = iss.keys->keys(why);
  if (!set) return jwt_error(Reason::UnknownKid, "the issuer's keys are unavailable: " + why);
  auto st = select_and_verify(parts, *set);
  if (!st && st.error().reason == Reason::UnknownKid) {
    // Key rotation: the identity provider may have published a new key since the fetch.
    if (auto fresh = iss.keys->refresh_for_unknown_kid()) return select_and_verify(parts, *fresh);
  }
  return st;
}

JwtResult<VerifiedJwt> JwtVerifier::verify(std::string_view token) const {
  return verify(token, static_cast<std::int64_t>(std::time(nullptr)));
}

JwtResult<VerifiedJwt> JwtVerifier::verify(std::string_view token, std::int64_t now) const {
  auto parts = parse_compact(token, limits_);
  if (!parts) return parts.error();
  auto claims = parse_strict_json(parts->payload_raw, limits_.max_json_depth);
  if (!claims || !claims->is_object())
    return jwt_error(Reason::Malformed, "payload is not a JSON object (or has duplicate names)");

  auto iss_it = claims->find("iss");
  if (iss_it == claims->end() || !iss_it->is_string())
    return jwt_error(Reason::WrongIssuer, "token has no string \"iss\" claim");
  const auto& iss_name = iss_it->get_ref<const std::string&>();
  const Issuer* iss = nullptr;
  for (const auto& i : issuers_)
    if (i.issuer == iss_name) iss = &i;
  if (!iss) return jwt_error(Reason::WrongIssuer, "no configured issuer " + shown(iss_name));

  if (auto st = verify_with_issuer(*parts, *iss); !st) return st.error();

  if (auto st = check_time_claims(*claims, now, iss->leeway, iss->require_exp); !st) return st.error();
  if (!iss->audience.empty() || !iss->audience_optional) {
    if (auto st = check_audience(*claims, iss->audience); !st) return st.error();
  }
  VerifiedJwt out;
  out.claims = std::move(*claims);
  out.header = std::move(parts->header);
  out.alg = parts->alg;
  out.kid = std::move(parts->kid);
  out.issuer = iss->issuer;
  return out;
}

}  // namespace kz::jwt
