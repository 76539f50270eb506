// Test-only JOSE signing: key pairs made at test time (RSA-2048, P-256, Ed25519), their
// public JWKs, and compact JWS signing with OpenSSL EVP (RS256, PS256, ES256, EdDSA, HS256).
// Shared by the JWT unit tests and bench/jwt_bench.cpp.
#pragma once

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/openssl_ptr.h"
#include "policy/base64url.h"

namespace kz::test {

using nlohmann::json;
using kz::jwt::base64url_encode;

inline std::string bn_bytes(const BIGNUM* bn, int pad = 0) {
  std::string out(pad > 0 ? pad : BN_num_bytes(bn), '\0');
  if (pad > 0) BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  else BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// A key pair made at test time, its public JWK, and compact-JWS signing with EVP.
struct Signer {
  std::string alg;    // RS256 PS256 ES256 EdDSA
  std::string kid;
  PkeyPtr key;

  static Signer make(const std::string& alg, const std::string& kid) {
    Signer s{alg, kid, nullptr};
    if (alg == "RS256" || alg == "PS256") s.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    else if (alg == "ES256") s.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    else if (alg == "EdDSA") s.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!s.key) std::abort();
    return s;
  }

  json jwk() const {
    json j;
    if (!kid.empty()) j["kid"] = kid;
    if (alg == "RS256" || alg == "PS256") {
      BIGNUM *n = nullptr, *e = nullptr;
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n);
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e);
      j["kty"] = "RSA";
      j["n"] = base64url_encode(bn_bytes(n));
      j["e"] = base64url_encode(bn_bytes(e));
      BN_free(n);
      BN_free(e);
    } else if (alg == "ES256") {
      BIGNUM *x = nullptr, *y = nullptr;
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x);
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y);
      j["kty"] = "EC";
      j["crv"] = "P-256";
      j["x"] = base64url_encode(bn_bytes(x, 32));
      j["y"] = base64url_encode(bn_bytes(y, 32));
      BN_free(x);
      BN_free(y);
    } else {
      unsigned char raw[32];
      size_t len = sizeof raw;
      EVP_PKEY_get_raw_public_key(key.get(), raw, &len);
      j["kty"] = "OKP";
      j["crv"] = "Ed25519";
      j["x"] = base64url_encode(std::string(reinterpret_cast<char*>(raw), len));
    }
    return j;
  }

  std::string sign_input(const std::string& input) const {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = alg == "EdDSA" ? nullptr : EVP_sha256();
    if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key.get()) != 1) std::abort();
    if (alg == "PS256") {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    size_t len = 0;
    EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
      std::abort();
    sig.resize(len);
    if (alg == "ES256") {   // DER -> R||S (RFC 7518 §3.4)
      const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
      EcdsaSigPtr es(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
      const BIGNUM *r = nullptr, *s = nullptr;
      ECDSA_SIG_get0(es.get(), &r, &s);
      return bn_bytes(r, 32) + bn_bytes(s, 32);
    }
    return sig;
  }

  json default_header() const {
    json h{{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) h["kid"] = kid;
    return h;
  }

  std::string sign(const json& claims, json header = nullptr) const {
    if (header.is_null()) header = default_header();
    const std::string input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
    return input + "." + base64url_encode(sign_input(input));
  }
};

inline std::string hs256(const json& header, const json& claims, std::string_view key) {
  const std::string input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  unsigned char mac[32];
  size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
            reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof mac, &len);
  return input + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), len));
}

}  // namespace kz::test
