#include "policy/jws_verify.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <set>
#include <vector>

#include "policy/base64url.h"

namespace kz::jwt {
namespace {

using nlohmann::json;

JwtError malformed(std::string msg) { return jwt_error(Reason::Malformed, std::move(msg)); }

// Is `s` "none" in any letter case? (RFC 7518 §3.6 names only "none", but verifiers that
// compare case-insensitively elsewhere have been fooled by "None"/"NONE".)
bool is_none(std::string_view s) {
  if (s.size() != 4) return false;
  const char* want = "none";
  for (std::size_t i = 0; i < 4; ++i)
    if ((s[i] | 0x20) != want[i]) return false;
  return true;
}

// Nesting depth of JSON text, counted before parsing so a deeply nested document is
// refused without being built.
bool depth_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') { if (++depth > max_depth) return false; }
    else if (c == ']' || c == '}') --depth;
  }
  return true;
}

std::size_t ec_coord_len(Alg a) { return a == Alg::ES512 ? 66 : 32; }

// JWS ECDSA signatures are R||S, each zero-padded to the curve size (RFC 7518 §3.4);
// OpenSSL verifies DER. A DER signature given as the JWS signature is not R||S and is
// rejected by the length check, as the RFC requires.
std::optional<std::string> ecdsa_raw_to_der(std::string_view sig, std::size_t coord) {
  if (sig.size() != 2 * coord) return std::nullopt;
  EcdsaSigPtr es(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), static_cast<int>(coord), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data() + coord), static_cast<int>(coord), nullptr);
  if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(es.get(), &der);
  if (n <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

bool digest_verify(EVP_PKEY* pkey, const EVP_MD* md, Alg alg, std::string_view sig, std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;   // owned by ctx
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) return false;
  if (alg == Alg::PS256) {
    // RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash (32 octets).
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1)
      return false;
  } else if (alg == Alg::RS256) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

JwtError bad_signature() { return jwt_error(Reason::BadSignature, "signature does not verify"); }

}  // namespace

const char* to_string(Alg a) {
  switch (a) {
    case Alg::HS256: return "HS256";
    case Alg::RS256: return "RS256";
    case Alg::PS256: return "PS256";
    case Alg::ES256: return "ES256";
    case Alg::ES512: return "ES512";
    case Alg::EdDSA: return "EdDSA";
  }
  return "?";
}

std::optional<Alg> alg_from_string(std::string_view s) {
  // Exact, case-sensitive names (RFC 7515 §4.1.1: the value is case-sensitive).
  for (Alg a : {Alg::HS256, Alg::RS256, Alg::PS256, Alg::ES256, Alg::ES512, Alg::EdDSA})
    if (s == to_string(a)) return a;
  return std::nullopt;
}

std::optional<json> parse_strict_json(std::string_view text, int max_depth) {
  if (!depth_within(text, max_depth)) return std::nullopt;
  std::vector<std::set<std::string>> keys;   // member names of each open object
  bool duplicate = false;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::key:
        // RFC 7515 §4 / RFC 7519 §4: duplicate names MUST be rejected (or the last one
        // used); rejecting avoids two parsers disagreeing on which "alg" or "aud" counts.
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) duplicate = true;
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      default: break;
    }
    return true;
  };
  json j = json::parse(text, cb, /*allow_exceptions=*/false);
  if (j.is_discarded() || duplicate) return std::nullopt;
  return j;
}

JwtResult<JwsParts> parse_compact(std::string_view token, const ParseLimits& limits) {
  if (token.size() > limits.max_token_bytes) return malformed("token is longer than the configured limit");
  const std::size_t d1 = token.find('.');
  const std::size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return malformed("not a compact JWS: fewer than three segments");
  if (token.find('.', d2 + 1) != std::string_view::npos)
    return malformed("not a compact JWS: more than three segments (JWE is not supported)");

  JwsParts p;
  auto header = base64url_decode(token.substr(0, d1));
  if (!header || header->empty()) return malformed("header segment is not base64url");
  auto payload = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  if (!payload) return malformed("payload segment is not base64url");
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!sig) return malformed("signature segment is not base64url");

  auto hj = parse_strict_json(*header, limits.max_json_depth);
  if (!hj || !hj->is_object()) return malformed("header is not a JSON object (or has duplicate names)");

  // crit first: a header that asks for an extension we do not implement must be
  // rejected whatever else it says (RFC 7515 §4.1.11, Appendix E).
  if (auto crit = hj->find("crit"); crit != hj->end()) {
    if (!crit->is_array() || crit->empty()) return malformed("\"crit\" is not a non-empty array");
    for (const auto& c : *crit)
      if (!c.is_string()) return malformed("\"crit\" holds a non-string");
    return jwt_error(Reason::CritUnsupported, "header lists critical extensions this verifier does not implement");
  }

  auto alg_it = hj->find("alg");
  if (alg_it == hj->end() || !alg_it->is_string()) return malformed("header has no string \"alg\"");
  const auto& alg_name = alg_it->get_ref<const std::string&>();
  if (is_none(alg_name)) return jwt_error(Reason::AlgNone, "unsecured JWS (alg none) is never accepted");
  auto alg = alg_from_string(alg_name);
  if (!alg) return jwt_error(Reason::AlgMismatch, "header alg is not one this verifier implements");
  p.alg = *alg;

  if (auto kid = hj->find("kid"); kid != hj->end()) {
    if (!kid->is_string()) return malformed("header \"kid\" is not a string");
    p.kid = kid->get<std::string>();
  }
  p.header = std::move(*hj);
  p.header_raw = std::move(*header);
  p.payload_raw = std::move(*payload);
  p.signature = std::move(*sig);
  p.signing_input = std::string(token.substr(0, d2));
  return p;
}

JwtStatus key_fits(Alg alg, const Jwk& key) {
  if (alg == Alg::HS256) {
    // The classic confusion: an HS256 token "signed" with the issuer's public key bytes.
    // Public key material is never an HMAC key.
    if (key.kty != KeyType::Oct)
      return jwt_error(Reason::AlgMismatch, std::string("HS256 token, but the key is ") + to_string(key.kty) +
                                                " (asymmetric key material is never an HMAC key)");
    if (key.secret.str().size() < 32)   // RFC 7518 §3.2: at least the hash size
      return jwt_error(Reason::KeyMismatch, "HS256 key is shorter than 256 bits");
  } else {
    bool fits = false;
    switch (alg) {
      case Alg::RS256:
      case Alg::PS256: fits = key.kty == KeyType::Rsa; break;
      case Alg::ES256: fits = key.kty == KeyType::Ec && key.crv == "P-256"; break;
      case Alg::ES512: fits = key.kty == KeyType::Ec && key.crv == "P-521"; break;
      case Alg::EdDSA: fits = key.kty == KeyType::Okp && key.crv == "Ed25519"; break;
      case Alg::HS256: break;
    }
    if (!fits || !key.pkey)
      return jwt_error(Reason::KeyMismatch, std::string(to_string(alg)) + " token, but the key is " + to_string(key.kty) +
                                                (key.crv.empty() ? "" : " " + key.crv));
  }
  if (!key.alg.empty() && key.alg != to_string(alg))
    return jwt_error(Reason::KeyMismatch, std::string(to_string(alg)) + " token, but the key is restricted to another alg");
  if (!key.use.empty() && key.use != "sig")
    return jwt_error(Reason::KeyMismatch, "the key is not for signatures (use)");
  if (!key.verify_allowed) return jwt_error(Reason::KeyMismatch, "the key's key_ops do not include verify");
  return Ok{};
}

JwtStatus verify_hs256(const JwsParts& parts, std::string_view secret) {
  if (parts.alg != Alg::HS256) return jwt_error(Reason::AlgMismatch, "not an HS256 token");
  unsigned char mac[32];
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                reinterpret_cast<const unsigned char*>(parts.signing_input.data()), parts.signing_input.size(),
                mac, sizeof mac, &len) == nullptr || len != sizeof mac) {
    ERR_clear_error();
    return bad_signature();
  }
  const bool ok = parts.signature.size() == sizeof mac && CRYPTO_memcmp(mac, parts.signature.data(), sizeof mac) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  if (!ok) return bad_signature();
  return Ok{};
}

JwtStatus verify_signature(const JwsParts& parts, const Jwk& key) {
  if (auto fit = key_fits(parts.alg, key); !fit) return fit;
  bool ok = false;
  switch (parts.alg) {
    case Alg::HS256: return verify_hs256(parts, key.secret.str());
    case Alg::RS256:
    case Alg::PS256:
      ok = digest_verify(key.pkey.get(), EVP_sha256(), parts.alg, parts.signature, parts.signing_input);
      break;
    case Alg::ES256:
    case Alg::ES512: {
      auto der = ecdsa_raw_to_der(parts.signature, ec_coord_len(parts.alg));
      ok = der && digest_verify(key.pkey.get(), parts.alg == Alg::ES256 ? EVP_sha256() : EVP_sha512(), parts.alg,
                                *der, parts.signing_input);
      break;
    }
    case Alg::EdDSA:
      ok = parts.signature.size() == 64 &&
           digest_verify(key.pkey.get(), nullptr, parts.alg, parts.signature, parts.signing_input);
      break;
  }
  // A failed verification leaves entries on OpenSSL's thread-local error queue; they are
  // not ours to report and would confuse the next TLS error message on this thread.
  ERR_clear_error();
  if (!ok) return bad_signature();
  return Ok{};
}

}  // namespace kz::jwt
