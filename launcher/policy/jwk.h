// JSON Web Keys (RFC 7517) as OpenSSL EVP_PKEYs, for verifying JWS signatures.
// Public keys only: a JWK carrying private members ("d", "p", ...) is refused, since a
// verifier's configuration has no use for them and a JWKS file holding them is a leak.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/openssl_ptr.h"
#include "kz/result.h"
#include "kz/wipe.h"

namespace kz::jwt {

enum class KeyType { Rsa, Ec, Okp, Oct };

const char* to_string(KeyType t);

struct Jwk {
  KeyType kty = KeyType::Rsa;
  std::string kid;      // empty when the JWK has none
  std::string alg;      // the key's intended alg (RFC 7517 §4.4); empty when unrestricted
  std::string use;      // "sig", "enc" or empty
  bool verify_allowed = true;  // false when key_ops is present without "verify"
  std::string crv;      // EC: P-256/P-384/P-521; OKP: Ed25519
  int bits = 0;         // RSA modulus size
  PkeyPtr pkey;         // RSA, EC, OKP
  ScrubbedString secret;  // oct only: the HMAC key octets, wiped on destruction
};

// One JWK object. Errors are ErrorKind::Config and name the member, never its value.
Result<Jwk> jwk_from_json(const nlohmann::json& j);

// A JWK Set. Keys of a kty or crv this verifier does not implement are skipped (RFC 7517
// §5); so are keys marked use "enc". A key that is present but broken fails the whole set,
// so a bad configuration is seen at load time rather than as unexplained rejections.
struct JwkSet {
  std::vector<Jwk> keys;
  std::size_t skipped = 0;
};

// allow_oct: whether symmetric keys are accepted (issuer JWKS: no; HS256 keys are
// configured explicitly per issuer).
Result<JwkSet> jwks_from_json(const nlohmann::json& j, bool allow_oct = false);
Result<JwkSet> jwks_from_text(std::string_view text, bool allow_oct = false);
Result<JwkSet> load_jwks_file(const std::string& path);

}  // namespace kz::jwt
