// Every JOSE vector of ../shared/vectors/jose (RFC 7515 App. A/E, RFC 8037, and the
// derived negatives): positives must verify, each negative must be rejected for the
// reason the vector names (expect_error), both at the JWS layer (signature with the
// vector's key) and through the full JwtVerifier where the payload is a JWT.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "policy/base64url.h"
#include "policy/jwk.h"
#include "policy/jws_verify.h"
#include "policy/jwt_verifier.h"
#include "test_support.h"

namespace kz::jwt {
namespace {

using nlohmann::json;

std::string vectors_dir() { return kz::test::source_dir() + "/../shared/vectors/jose"; }

json load(const std::string& name) {
  std::ifstream in(vectors_dir() + "/" + name);
  EXPECT_TRUE(in) << "missing test vectors: " << vectors_dir() << "/" << name;
  if (!in) return json::array();
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// Reasons the signature layer itself can give; the others are claim checks.
bool is_jws_reason(const std::string& r) {
  return r == "bad_signature" || r == "alg_none" || r == "alg_mismatch" || r == "key_mismatch" ||
         r == "crit_unsupported" || r == "malformed";
}

// A JWT vector has a payload that is a JSON object (A.4 and RFC 8037's are plain text);
// malformed vectors have none and are checked through both layers.
bool is_jwt(const json& v) {
  if (!v.contains("expected_payload_raw") || !v["expected_payload_raw"].is_string()) return true;
  auto p = json::parse(v["expected_payload_raw"].get<std::string>(), nullptr, false);
  return !p.is_discarded() && p.is_object();
}

struct Tally {
  int positive = 0, negative = 0, right_reason = 0;
};

std::string jws_outcome(const json& v, const Jwk* key) {
  auto parts = parse_compact(v["token"].get<std::string>());
  if (!parts) return to_string(parts.error().reason);
  if (!key) return "ok(no key)";
  auto st = verify_signature(*parts, *key);
  return st ? "ok" : to_string(st.error().reason);
}

std::string jwt_outcome(const json& v, const Jwk* key) {
  IssuerConfig c;
  // The vector's jwk is "the key the verifier is configured with" for this token's
  // issuer (README), so the issuer is the payload's iss; RFC 7515's is "joe".
  c.issuer = "joe";
  if (v.contains("expected_payload") && v["expected_payload"].is_object() &&
      v["expected_payload"].value("iss", json()).is_string())
    c.issuer = v["expected_payload"]["iss"].get<std::string>();
  c.audience_optional = true;   // the RFC tokens carry no aud
  if (v.contains("leeway_s") && v["leeway_s"].is_number()) c.leeway = std::chrono::seconds(v["leeway_s"].get<int>());
  if (key && key->kty == KeyType::Oct) {
    c.hs256_key = ScrubbedString(key->secret.str());
  } else if (key) {
    auto set = jwks_from_json(json{{"keys", json::array({v["jwk"]})}});
    EXPECT_TRUE(set.ok()) << v["id"];
    if (!set) return "config";
    c.jwks = std::make_shared<const JwkSet>(std::move(*set));
  } else {
    c.hs256_key = ScrubbedString(std::string(32, 'x'));   // no key in the vector: an unrelated one
  }
  std::vector<IssuerConfig> cs;
  cs.push_back(std::move(c));
  auto verifier = JwtVerifier::create(std::move(cs));
  EXPECT_TRUE(verifier.ok()) << v["id"] << ": " << (verifier ? "" : verifier.error().message);
  if (!verifier) return "config";
  const std::string token = v["token"].get<std::string>();
  auto r = v.contains("validate_at") && v["validate_at"].is_number()
               ? verifier->verify(token, v["validate_at"].get<std::int64_t>())
               : verifier->verify(token);
  if (!r) {
    // Never the token (or any segment of it) in a message.
    for (std::size_t pos = 0, next; pos < token.size(); pos = next + 1) {
      next = token.find('.', pos);
      if (next == std::string::npos) next = token.size();
      const std::string seg = token.substr(pos, next - pos);
      if (seg.size() >= 8) {
        EXPECT_EQ(r.error().message.find(seg), std::string::npos) << v["id"];
      }
    }
    return to_string(r.error().reason);
  }
  return "ok";
}

void run_file(const std::string& name, Tally& t) {
  json vs = load(name);
  ASSERT_TRUE(vs.is_array());
  ASSERT_FALSE(vs.empty()) << name;
  for (const auto& v : vs) {
    const std::string id = v["id"].get<std::string>();
    SCOPED_TRACE(name + ": " + id);
    std::optional<Jwk> key;
    if (v.contains("jwk") && v["jwk"].is_object()) {
      auto k = jwk_from_json(v["jwk"]);
      ASSERT_TRUE(k.ok()) << k.error().message;
      key = std::move(*k);
    }
    const Jwk* kp = key ? &*key : nullptr;
    const bool valid = v["valid"].get<bool>();
    const std::string expect = valid ? "ok" : v.value("expect_error", std::string("?"));

    // The JWS layer: exact decoded octets, and the signature verdict.
    const std::string jws = jws_outcome(v, kp);
    if (v["signature_valid"].is_boolean() && v["signature_valid"].get<bool>()) {
      EXPECT_EQ(jws, "ok");
      auto parts = parse_compact(v["token"].get<std::string>());
      ASSERT_TRUE(parts.ok());
      if (v.contains("expected_header_raw")) {
        EXPECT_EQ(parts->header_raw, v["expected_header_raw"].get<std::string>());
      }
      if (v.contains("expected_payload_raw") && v["expected_payload_raw"].is_string()) {
        EXPECT_EQ(parts->payload_raw, v["expected_payload_raw"].get<std::string>());
      }
    } else if (!valid && is_jws_reason(expect)) {
      EXPECT_EQ(jws, expect);
    }

    // Alg confusion: the MAC really is HMAC(public key bytes), so a verifier that took
    // the key material as an HMAC secret would accept it. Ours must not.
    if (v.contains("hmac_secret_b64") && v["hmac_secret_b64"].is_string()) {
      auto secret = base64url_decode(v["hmac_secret_b64"].get<std::string>());
      if (!secret) {   // the field may be standard base64
        std::string s = v["hmac_secret_b64"].get<std::string>();
        for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
        while (!s.empty() && s.back() == '=') s.pop_back();
        secret = base64url_decode(s);
      }
      ASSERT_TRUE(secret.has_value());
      auto parts = parse_compact(v["token"].get<std::string>());
      ASSERT_TRUE(parts.ok());
      EXPECT_TRUE(verify_hs256(*parts, *secret).ok()) << "vector's MAC is not HMAC(key bytes)";
    }

    const std::string got = is_jwt(v) ? jwt_outcome(v, kp) : jws;
    const std::string got_cmp = (!is_jwt(v) && got == "ok(no key)") ? "ok" : got;
    EXPECT_EQ(got_cmp, expect);
    if (valid) ++t.positive; else ++t.negative;
    if (got_cmp == expect) ++t.right_reason;
    std::printf("  %-48s expect %-16s got %s\n", id.c_str(), expect.c_str(), got_cmp.c_str());
  }
}

TEST(JoseVectors, RfcVectors) {
  Tally t;
  run_file("rfc_vectors.json", t);
  std::printf("rfc_vectors.json: %d positive, %d negative, %d as expected\n", t.positive, t.negative, t.right_reason);
  EXPECT_EQ(t.positive + t.negative, t.right_reason);
}

TEST(JoseVectors, DerivedVectors) {
  Tally t;
  run_file("derived_vectors.json", t);
  std::printf("derived_vectors.json: %d positive, %d negative, %d as expected\n", t.positive, t.negative, t.right_reason);
  EXPECT_EQ(t.positive + t.negative, t.right_reason);
}

}  // namespace
}  // namespace kz::jwt
