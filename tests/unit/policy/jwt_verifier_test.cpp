// JwtVerifier with keys generated at test time: tokens are signed here with OpenSSL EVP
// (RS256, PS256, ES256, EdDSA, HS256) and checked for iss/aud/exp/nbf/leeway, kid
// selection, crit, alg confusion, and configuration errors.
#include <gtest/gtest.h>

#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <nlohmann/json.hpp>

#include "core/openssl_ptr.h"
#include "policy/base64url.h"
#include "policy/jwk.h"
#include "policy/jws_verify.h"
#include "policy/jwt_verifier.h"
#include "jwt_test_signer.h"
#include "test_support.h"

namespace kz::jwt {
namespace {

using nlohmann::json;

constexpr std::int64_t kNow = 1'800'000'000;
using kz::test::Signer;
using kz::test::hs256;

json claims(json extra = json::object()) {
  json c{{"iss", "https://auth.example"}, {"aud", "keyzero"}, {"sub", "agent-1"},
         {"service", "data-pipeline-agent"}, {"iat", kNow - 10}, {"exp", kNow + 600}};
  for (auto& [k, v] : extra.items()) {
    if (v.is_null()) c.erase(k);
    else c[k] = v;
  }
  return c;
}

std::shared_ptr<const JwkSet> set_of(std::initializer_list<json> jwks) {
  json j{{"keys", json::array()}};
  for (const auto& k : jwks) j["keys"].push_back(k);
  auto s = jwks_from_json(j);
  EXPECT_TRUE(s.ok()) << (s ? "" : s.error().message);
  return std::make_shared<const JwkSet>(std::move(*s));
}

IssuerConfig issuer(std::shared_ptr<const JwkSet> keys, int leeway = 30) {
  IssuerConfig c;
  c.issuer = "https://auth.example";
  c.audience = "keyzero";
  c.jwks = std::move(keys);
  c.leeway = std::chrono::seconds(leeway);
  return c;
}

JwtVerifier verifier(IssuerConfig c) {
  std::vector<IssuerConfig> v;
  v.push_back(std::move(c));
  auto r = JwtVerifier::create(std::move(v));
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
  return std::move(r).value();
}

std::string reason(const JwtResult<VerifiedJwt>& r) { return r ? "ok" : to_string(r.error().reason); }

class JwtAlgs : public ::testing::TestWithParam<const char*> {};

TEST_P(JwtAlgs, SignedHereVerifiesAndReturnsClaims) {
  Signer s = Signer::make(GetParam(), "k1");
  auto v = verifier(issuer(set_of({s.jwk()})));
  auto r = v.verify(s.sign(claims()), kNow);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->claims["service"], "data-pipeline-agent");
  EXPECT_EQ(r->kid, "k1");
  EXPECT_EQ(to_string(r->alg), std::string(GetParam()));
  EXPECT_EQ(r->issuer, "https://auth.example");
  EXPECT_EQ(r->header["typ"], "JWT");

  // One flipped bit anywhere in the signature, payload or header fails.
  std::string tok = s.sign(claims());
  std::string bad = tok;
  bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(v.verify(bad, kNow)), "bad_signature");
  // Re-signed claims of another identity with the same header: signature is over both.
  const auto d2 = tok.rfind('.');
  const auto d1 = tok.find('.');
  std::string swapped = tok.substr(0, d1 + 1) + base64url_encode(claims({{"service", "x"}}).dump()) + tok.substr(d2);
  EXPECT_EQ(reason(v.verify(swapped, kNow)), "bad_signature");
}

INSTANTIATE_TEST_SUITE_P(Algs, JwtAlgs, ::testing::Values("RS256", "PS256", "ES256", "EdDSA"));

TEST(JwtVerifier, Rs256SignatureUnderPs256HeaderFails) {
  Signer rs = Signer::make("RS256", "k1");
  Signer ps{"PS256", "k1", nullptr};
  ps.key.reset(EVP_PKEY_dup(rs.key.get()));
  auto v = verifier(issuer(set_of({rs.jwk()})));
  // An RS256 (PKCS#1 v1.5) signature presented as PS256.
  json h{{"alg", "PS256"}, {"kid", "k1"}};
  const std::string input = base64url_encode(h.dump()) + "." + base64url_encode(claims().dump());
  EXPECT_EQ(reason(v.verify(input + "." + base64url_encode(rs.sign_input(input)), kNow)), "bad_signature");
  EXPECT_EQ(reason(v.verify(input + "." + base64url_encode(ps.sign_input(input)), kNow)), "ok");
}

TEST(JwtVerifier, IssuerSelectsKeysAndMustMatch) {
  Signer a = Signer::make("ES256", "a");
  Signer b = Signer::make("ES256", "b");
  IssuerConfig ca = issuer(set_of({a.jwk()}));
  IssuerConfig cb = issuer(set_of({b.jwk()}));
  cb.issuer = "https://other.example";
  std::vector<IssuerConfig> cs;
  cs.push_back(std::move(ca));
  cs.push_back(std::move(cb));
  auto v = JwtVerifier::create(std::move(cs));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(reason(v->verify(a.sign(claims()), kNow)), "ok");
  EXPECT_EQ(reason(v->verify(b.sign(claims({{"iss", "https://other.example"}})), kNow)), "ok");
  // b's key cannot vouch for the first issuer (kid b unknown there).
  EXPECT_EQ(reason(v->verify(b.sign(claims()), kNow)), "unknown_kid");
  EXPECT_EQ(reason(v->verify(a.sign(claims({{"iss", "https://evil.example"}})), kNow)), "wrong_issuer");
  EXPECT_EQ(reason(v->verify(a.sign(claims({{"iss", nullptr}})), kNow)), "wrong_issuer");
  EXPECT_EQ(reason(v->verify(a.sign(claims({{"iss", 7}})), kNow)), "wrong_issuer");
  // Exact comparison: no trailing slash or case folding.
  EXPECT_EQ(reason(v->verify(a.sign(claims({{"iss", "https://auth.example/"}})), kNow)), "wrong_issuer");
  EXPECT_EQ(reason(v->verify(a.sign(claims({{"iss", "HTTPS://auth.example"}})), kNow)), "wrong_issuer");
}

TEST(JwtVerifier, Audience) {
  Signer s = Signer::make("EdDSA", "k");
  auto v = verifier(issuer(set_of({s.jwk()})));
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", "keyzero"}})), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", json::array({"other", "keyzero"})}})), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", "other"}})), kNow)), "wrong_audience");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", json::array({"other"})}})), kNow)), "wrong_audience");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", json::array()}})), kNow)), "wrong_audience");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", nullptr}})), kNow)), "wrong_audience");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", "KEYZERO"}})), kNow)), "wrong_audience");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", json::array({"keyzero", 1})}})), kNow)), "malformed");
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"aud", 5}})), kNow)), "malformed");
}

TEST(JwtVerifier, ExpNbfAndLeeway) {
  Signer s = Signer::make("ES256", "k");
  auto strict = verifier(issuer(set_of({s.jwk()}), 0));
  auto lenient = verifier(issuer(set_of({s.jwk()}), 30));
  const std::string tok = s.sign(claims({{"exp", kNow}, {"nbf", kNow - 100}}));
  EXPECT_EQ(reason(strict.verify(tok, kNow - 1)), "ok");
  EXPECT_EQ(reason(strict.verify(tok, kNow)), "expired");          // now == exp is expired
  EXPECT_EQ(reason(lenient.verify(tok, kNow + 29)), "ok");
  EXPECT_EQ(reason(lenient.verify(tok, kNow + 30)), "expired");
  EXPECT_EQ(reason(strict.verify(tok, kNow - 100)), "ok");          // now == nbf is valid
  EXPECT_EQ(reason(strict.verify(tok, kNow - 101)), "not_yet_valid");
  EXPECT_EQ(reason(lenient.verify(tok, kNow - 130)), "ok");
  EXPECT_EQ(reason(lenient.verify(tok, kNow - 131)), "not_yet_valid");
  // Fractional NumericDate (RFC 7519 §2).
  EXPECT_EQ(reason(strict.verify(s.sign(claims({{"exp", kNow + 0.5}})), kNow)), "ok");
  EXPECT_EQ(reason(strict.verify(s.sign(claims({{"exp", "never"}})), kNow)), "malformed");
  EXPECT_EQ(reason(strict.verify(s.sign(claims({{"nbf", "soon"}})), kNow)), "malformed");
  EXPECT_EQ(reason(strict.verify(s.sign(claims({{"exp", 1e300}})), kNow)), "ok");
  // exp is required by default.
  EXPECT_EQ(reason(strict.verify(s.sign(claims({{"exp", nullptr}})), kNow)), "missing_claim");
  IssuerConfig no_exp = issuer(set_of({s.jwk()}));
  no_exp.require_exp = false;
  EXPECT_EQ(reason(verifier(std::move(no_exp)).verify(s.sign(claims({{"exp", nullptr}})), kNow)), "ok");
  // Claims are checked only after the signature: an expired token with a bad signature
  // is a bad signature.
  std::string bad = s.sign(claims({{"exp", kNow - 1000}}));
  bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(strict.verify(bad, kNow)), "bad_signature");
}

TEST(JwtVerifier, KidSelection) {
  Signer a = Signer::make("RS256", "a");
  Signer b = Signer::make("RS256", "b");
  Signer e = Signer::make("ES256", "e");
  auto v = verifier(issuer(set_of({a.jwk(), b.jwk(), e.jwk()})));
  EXPECT_EQ(reason(v.verify(a.sign(claims()), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(b.sign(claims()), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(e.sign(claims()), kNow)), "ok");
  // Signed by b but naming a: only a is tried.
  Signer b_as_a{"RS256", "a", PkeyPtr(EVP_PKEY_dup(b.key.get()))};
  EXPECT_EQ(reason(v.verify(b_as_a.sign(claims()), kNow)), "bad_signature");
  Signer c{"RS256", "c", PkeyPtr(EVP_PKEY_dup(b.key.get()))};
  EXPECT_EQ(reason(v.verify(c.sign(claims()), kNow)), "unknown_kid");
  // No kid: every key that fits the alg is tried.
  Signer b_nokid{"RS256", "", PkeyPtr(EVP_PKEY_dup(b.key.get()))};
  EXPECT_EQ(reason(v.verify(b_nokid.sign(claims()), kNow)), "ok");
  // kid e is an EC key: an RS256 token naming it is a key mismatch.
  Signer rs_e{"RS256", "e", PkeyPtr(EVP_PKEY_dup(a.key.get()))};
  EXPECT_EQ(reason(v.verify(rs_e.sign(claims()), kNow)), "key_mismatch");
  // EdDSA without a kid, and the set has no OKP key.
  Signer ed = Signer::make("EdDSA", "");
  EXPECT_EQ(reason(v.verify(ed.sign(claims()), kNow)), "key_mismatch");
  // kid that is not a string.
  json h = a.default_header();
  h["kid"] = 1;
  EXPECT_EQ(reason(v.verify(a.sign(claims(), h), kNow)), "malformed");
}

TEST(JwtVerifier, JwkAlgUseAndKeyOpsRestrictKeys) {
  Signer s = Signer::make("RS256", "k");
  json jwk = s.jwk();
  jwk["alg"] = "RS256";
  auto v = verifier(issuer(set_of({jwk})));
  Signer ps{"PS256", "k", PkeyPtr(EVP_PKEY_dup(s.key.get()))};
  EXPECT_EQ(reason(v.verify(s.sign(claims()), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(ps.sign(claims()), kNow)), "key_mismatch");

  json ops = s.jwk();
  ops["key_ops"] = json::array({"encrypt"});
  EXPECT_EQ(reason(verifier(issuer(set_of({ops}))).verify(s.sign(claims()), kNow)), "key_mismatch");
  // use "enc" keys are not loaded at all (RFC 7517 §4.2).
  json enc = s.jwk();
  enc["use"] = "enc";
  auto set = set_of({enc});
  EXPECT_EQ(set->keys.size(), 0u);
  EXPECT_EQ(set->skipped, 1u);
  EXPECT_EQ(reason(verifier(issuer(set)).verify(s.sign(claims()), kNow)), "unknown_kid");
}

TEST(JwtVerifier, CritAndHeaderChecks) {
  Signer s = Signer::make("ES256", "k");
  auto v = verifier(issuer(set_of({s.jwk()})));
  json h = s.default_header();
  h["crit"] = json::array({"exp"});
  h["exp"] = 1;
  EXPECT_EQ(reason(v.verify(s.sign(claims(), h), kNow)), "crit_unsupported");
  h["crit"] = json::array({"b64"});
  h["b64"] = false;
  EXPECT_EQ(reason(v.verify(s.sign(claims(), h), kNow)), "crit_unsupported");
  h["crit"] = "b64";
  EXPECT_EQ(reason(v.verify(s.sign(claims(), h), kNow)), "malformed");
  h["crit"] = json::array();
  EXPECT_EQ(reason(v.verify(s.sign(claims(), h), kNow)), "malformed");

  // Unknown alg names, and alg none in its spellings, even with a valid signature attached.
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    json hn{{"alg", alg}};
    EXPECT_EQ(reason(v.verify(s.sign(claims(), hn), kNow)), "alg_none") << alg;
  }
  for (const char* alg : {"es256", "HS384", "RS512", "ES384", "Ed25519", ""}) {
    json ha{{"alg", alg}, {"kid", "k"}};
    EXPECT_EQ(reason(v.verify(s.sign(claims(), ha), kNow)), "alg_mismatch") << alg;
  }
  json no_alg{{"kid", "k"}};
  EXPECT_EQ(reason(v.verify(s.sign(claims(), no_alg), kNow)), "malformed");

  // A key embedded in the header is never used: an attacker's own key and signature.
  Signer attacker = Signer::make("ES256", "k");
  json hj = attacker.default_header();
  hj["jwk"] = attacker.jwk();
  hj["jku"] = "https://evil.example/jwks";
  EXPECT_EQ(reason(v.verify(attacker.sign(claims(), hj), kNow)), "bad_signature");

  // Duplicate member names in the header or the claims.
  const std::string dup_h = base64url_encode(R"({"alg":"ES256","kid":"k","alg":"none"})");
  const std::string body = base64url_encode(claims().dump());
  EXPECT_EQ(reason(v.verify(dup_h + "." + body + "." + base64url_encode(s.sign_input(dup_h + "." + body)), kNow)),
            "malformed");
  const std::string hdr = base64url_encode(s.default_header().dump());
  const std::string dup_c = base64url_encode(R"({"iss":"https://auth.example","aud":"keyzero","exp":1900000000,"service":"a","service":"b"})");
  EXPECT_EQ(reason(v.verify(hdr + "." + dup_c + "." + base64url_encode(s.sign_input(hdr + "." + dup_c)), kNow)),
            "malformed");
  // A payload that is not a JSON object, correctly signed.
  const std::string arr = base64url_encode("[1,2]");
  EXPECT_EQ(reason(v.verify(hdr + "." + arr + "." + base64url_encode(s.sign_input(hdr + "." + arr)), kNow)),
            "malformed");
}

TEST(JwtVerifier, MalformedCompactForms) {
  Signer s = Signer::make("ES256", "k");
  auto v = verifier(issuer(set_of({s.jwk()})));
  const std::string tok = s.sign(claims());
  EXPECT_EQ(reason(v.verify(tok, kNow)), "ok");
  for (const std::string& bad : {std::string(""), std::string("."), std::string(".."), std::string("a.b"),
                                 tok + ".", tok + ".x.y", "." + tok, tok + "=", std::string("e30.e30."), tok + " ",
                                 std::string("\xff\xfe.e30.")}) {
    EXPECT_EQ(reason(v.verify(bad, kNow)), "malformed") << bad.size();
  }
  // '+' or '/' instead of '-' or '_'.
  std::string std_chars = tok;
  for (auto& c : std_chars) { if (c == '-') { c = '+'; break; } if (c == '_') { c = '/'; break; } }
  if (std_chars != tok) {
    EXPECT_EQ(reason(v.verify(std_chars, kNow)), "malformed");
  }
  // A header that is not JSON.
  EXPECT_EQ(reason(v.verify(base64url_encode("not json") + ".e30.AAAA", kNow)), "malformed");
  // Too long.
  EXPECT_EQ(reason(v.verify(s.sign(claims({{"pad", std::string(20000, 'a')}})), kNow)), "malformed");
  // Deeply nested claims are refused before they are built.
  std::string deep(1000, '[');
  EXPECT_EQ(reason(v.verify(base64url_encode(s.default_header().dump()) + "." + base64url_encode(deep) + ".AAAA", kNow)),
            "malformed");
}

TEST(JwtVerifier, Es256DerSignatureIsRejected) {
  Signer s = Signer::make("ES256", "k");
  auto v = verifier(issuer(set_of({s.jwk()})));
  const std::string input = base64url_encode(s.default_header().dump()) + "." + base64url_encode(claims().dump());
  MdCtxPtr ctx(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, s.key.get()), 1);
  size_t len = 0;
  EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string sig(len, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()), 1);
  sig.resize(len);
  EXPECT_EQ(reason(v.verify(input + "." + base64url_encode(sig), kNow)), "bad_signature");
}

TEST(JwtVerifier, Hs256OnlyWithAConfiguredSharedKey) {
  const std::string key(32, 'k');
  Signer rs = Signer::make("RS256", "r");
  json h{{"alg", "HS256"}, {"typ", "JWT"}};
  // Issuer with only an RSA key: an HS256 token MACed with the public key's bytes (every
  // encoding an attacker could guess) is alg confusion.
  auto v = verifier(issuer(set_of({rs.jwk()})));
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), rs.key.get());
  char* pem = nullptr;
  const long pem_len = BIO_get_mem_data(bio.get(), &pem);
  EXPECT_EQ(reason(v.verify(hs256(h, claims(), std::string_view(pem, pem_len)), kNow)), "alg_mismatch");
  EXPECT_EQ(reason(v.verify(hs256(h, claims(), key), kNow)), "alg_mismatch");

  // Issuer with a shared key.
  IssuerConfig c = issuer(set_of({rs.jwk()}));
  c.hs256_key = ScrubbedString(key);
  auto vh = verifier(std::move(c));
  EXPECT_EQ(reason(vh.verify(hs256(h, claims(), key), kNow)), "ok");
  EXPECT_EQ(reason(vh.verify(hs256(h, claims(), std::string(32, 'x')), kNow)), "bad_signature");
  EXPECT_EQ(reason(vh.verify(rs.sign(claims()), kNow)), "ok");   // the RSA key still works
}

TEST(JwtVerifier, ConfigurationErrors) {
  Signer s = Signer::make("ES256", "k");
  auto create = [](IssuerConfig c) {
    std::vector<IssuerConfig> v;
    v.push_back(std::move(c));
    return JwtVerifier::create(std::move(v));
  };
  IssuerConfig no_aud = issuer(set_of({s.jwk()}));
  no_aud.audience.clear();
  EXPECT_FALSE(create(std::move(no_aud)).ok());
  IssuerConfig big_leeway = issuer(set_of({s.jwk()}));
  big_leeway.leeway = std::chrono::seconds(3600);
  EXPECT_FALSE(create(std::move(big_leeway)).ok());
  IssuerConfig no_keys = issuer(nullptr);
  EXPECT_FALSE(create(std::move(no_keys)).ok());
  IssuerConfig short_hs = issuer(nullptr);
  short_hs.hs256_key = ScrubbedString("short");
  EXPECT_FALSE(create(std::move(short_hs)).ok());
  IssuerConfig http = issuer(nullptr);
  http.jwks_https.url = "http://auth.example/jwks";
  auto r = create(std::move(http));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("https"), std::string::npos);
  std::vector<IssuerConfig> twice;
  twice.push_back(issuer(set_of({s.jwk()})));
  twice.push_back(issuer(set_of({s.jwk()})));
  EXPECT_FALSE(JwtVerifier::create(std::move(twice)).ok());
  EXPECT_FALSE(JwtVerifier::create({}).ok());

  // JWKS contents: private keys, oct keys, short RSA, points off the curve.
  json priv = s.jwk();
  priv["d"] = base64url_encode(std::string(32, '\x01'));
  auto e1 = jwks_from_json(json{{"keys", json::array({priv})}});
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.error().message.find("private"), std::string::npos);
  EXPECT_EQ(e1.error().message.find(priv["d"].get<std::string>()), std::string::npos);
  EXPECT_FALSE(jwks_from_json(json{{"keys", json::array({json{{"kty", "oct"}, {"k", "AAAA"}}})}}).ok());
  json off = s.jwk();
  std::string y = *base64url_decode(off["y"].get<std::string>());
  y[31] ^= 1;
  off["y"] = base64url_encode(y);
  EXPECT_FALSE(jwks_from_json(json{{"keys", json::array({off})}}).ok());
  PkeyPtr small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  Signer sm{"RS256", "s", std::move(small)};
  EXPECT_FALSE(jwks_from_json(json{{"keys", json::array({sm.jwk()})}}).ok());
  // Unknown kty/crv are skipped, not fatal (RFC 7517 §5).
  auto skipped = jwks_from_json(json{{"keys", json::array({json{{"kty", "XYZ"}}, json{{"kty", "OKP"}, {"crv", "X25519"}, {"x", "AAAA"}}, s.jwk()})}});
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(skipped->keys.size(), 1u);
  EXPECT_EQ(skipped->skipped, 2u);
}

TEST(JwtVerifier, JwksFile) {
  kz::test::TempDir dir;
  Signer s = Signer::make("EdDSA", "file-key");
  const std::string path = dir.write("jwks.json", json{{"keys", json::array({s.jwk()})}}.dump());
  IssuerConfig c = issuer(nullptr);
  c.jwks_file = path;
  auto v = verifier(std::move(c));
  EXPECT_EQ(reason(v.verify(s.sign(claims()), kNow)), "ok");
  IssuerConfig missing = issuer(nullptr);
  missing.jwks_file = dir.file("absent.json");
  std::vector<IssuerConfig> cs;
  cs.push_back(std::move(missing));
  EXPECT_FALSE(JwtVerifier::create(std::move(cs)).ok());
}

TEST(JwtVerifier, MessagesCarryNoTokenOrKey) {
  Signer s = Signer::make("RS256", "k");
  auto v = verifier(issuer(set_of({s.jwk()})));
  const std::string tok = s.sign(claims({{"exp", kNow - 1000}, {"secretish", "do-not-echo-me"}}));
  auto r = v.verify(tok, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(to_string(r.error().reason), std::string("expired"));
  const std::string msg = to_error(r.error()).message;
  EXPECT_EQ(msg.find("do-not-echo-me"), std::string::npos);
  EXPECT_EQ(msg.find(tok.substr(tok.rfind('.') + 1, 16)), std::string::npos);
  EXPECT_NE(msg.find("expired"), std::string::npos);
  // An attacker-chosen iss with control characters is not echoed.
  auto r2 = v.verify(s.sign(claims({{"iss", "evil\n{\"forged\":1}"}})), kNow);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message.find("forged"), std::string::npos);
}

TEST(JwtBase64url, StrictDecoding) {
  EXPECT_EQ(*base64url_decode(""), "");
  EXPECT_EQ(*base64url_decode("Zg"), "f");
  EXPECT_EQ(*base64url_decode("Zm8"), "fo");
  EXPECT_EQ(*base64url_decode("Zm9v"), "foo");
  EXPECT_EQ(*base64url_decode("-_8"), "\xfb\xff");
  EXPECT_FALSE(base64url_decode("Zg==").has_value());   // padding
  EXPECT_FALSE(base64url_decode("+/8").has_value());    // standard alphabet
  EXPECT_FALSE(base64url_decode("Z").has_value());      // impossible length
  EXPECT_FALSE(base64url_decode("Zh").has_value());     // non-zero unused bits
  EXPECT_FALSE(base64url_decode("Zm 9v").has_value());
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n < all.size(); n += 7)
    EXPECT_EQ(*base64url_decode(base64url_encode(all.substr(0, n))), all.substr(0, n));
}

}  // namespace
}  // namespace kz::jwt
