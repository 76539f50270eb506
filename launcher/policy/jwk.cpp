#include "policy/jwk.h"

#include <openssl/core_names.h>

#include <fstream>
#include <sstream>

#include "policy/base64url.h"

namespace kz::jwt {
namespace {

using nlohmann::json;

Error cfg(std::string msg) { return make_error(ErrorKind::Config, "JWK: " + std::move(msg)); }

// A required base64url member, decoded. Names only the member in errors.
Result<std::string> b64_member(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return cfg(std::string("missing \"") + name + "\"");
  if (!it->is_string()) return cfg(std::string("\"") + name + "\" is not a string");
  auto dec = base64url_decode(it->get_ref<const std::string&>());
  if (!dec) return cfg(std::string("\"") + name + "\" is not base64url");
  return std::move(*dec);
}

Result<std::string> opt_string(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return std::string();
  if (!it->is_string()) return cfg(std::string("\"") + name + "\" is not a string");
  return it->get<std::string>();
}

Result<PkeyPtr> pkey_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0)
    return make_error(ErrorKind::Internal, "JWK: OpenSSL could not set up a key");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0 || raw == nullptr)
    return cfg(std::string("not a valid ") + type + " public key");
  PkeyPtr pkey(raw);
  // Rejects EC points off the curve (invalid-curve attacks) and malformed RSA values.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) <= 0)
    return cfg(std::string("not a valid ") + type + " public key");
  return pkey;
}

Status parse_rsa(const json& j, Jwk& k) {
  auto n = b64_member(j, "n");
  if (!n) return n.take_error();
  auto e = b64_member(j, "e");
  if (!e) return e.take_error();
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()), static_cast<int>(e->size()), nullptr));
  if (!bn_n || !bn_e) return make_error(ErrorKind::Internal, "JWK: out of memory");
  k.bits = BN_num_bits(bn_n.get());
  // RFC 7518 §3.3: RS*/PS* keys MUST be 2048 bits or larger. The upper bound keeps one
  // verification cheap (a huge modulus is a CPU denial of service).
  if (k.bits < 2048) return cfg("RSA modulus shorter than 2048 bits");
  if (k.bits > 8192) return cfg("RSA modulus longer than 8192 bits");
  if (BN_num_bits(bn_e.get()) > 64 || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()))
    return cfg("RSA exponent \"e\" is not a valid public exponent");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
    return make_error(ErrorKind::Internal, "JWK: OpenSSL could not set up a key");
  auto pkey = pkey_from_params("RSA", bld.get());
  if (!pkey) return pkey.take_error();
  k.pkey = std::move(*pkey);
  return ok_status();
}

Status parse_ec(const json& j, Jwk& k) {
  const char* group = nullptr;
  std::size_t len = 0;
  if (k.crv == "P-256") { group = "prime256v1"; len = 32; }
  else if (k.crv == "P-384") { group = "secp384r1"; len = 48; }
  else if (k.crv == "P-521") { group = "secp521r1"; len = 66; }
  else return cfg("unsupported EC curve");
  auto x = b64_member(j, "x");
  if (!x) return x.take_error();
  auto y = b64_member(j, "y");
  if (!y) return y.take_error();
  // RFC 7518 §6.2.1.2/3: full-length coordinates, no shortened encodings.
  if (x->size() != len || y->size() != len) return cfg("EC coordinate has the wrong length for " + k.crv);
  std::string point = "\x04" + *x + *y;   // SEC1 uncompressed point
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()))
    return make_error(ErrorKind::Internal, "JWK: OpenSSL could not set up a key");
  auto pkey = pkey_from_params("EC", bld.get());
  if (!pkey) return pkey.take_error();
  k.pkey = std::move(*pkey);
  return ok_status();
}

Status parse_okp(const json& j, Jwk& k) {
  if (k.crv != "Ed25519") return cfg("unsupported OKP curve");
  auto x = b64_member(j, "x");
  if (!x) return x.take_error();
  if (x->size() != 32) return cfg("Ed25519 \"x\" is not 32 octets");
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char*>(x->data()), x->size());
  if (raw == nullptr) return cfg("not a valid Ed25519 public key");
  k.pkey.reset(raw);
  return ok_status();
}

bool is_supported(const std::string& kty, const std::string& crv) {
  if (kty == "RSA" || kty == "oct") return true;
  if (kty == "EC") return crv == "P-256" || crv == "P-384" || crv == "P-521";
  if (kty == "OKP") return crv == "Ed25519";
  return false;
}

}  // namespace

const char* to_string(KeyType t) {
  switch (t) {
    case KeyType::Rsa: return "RSA";
    case KeyType::Ec: return "EC";
    case KeyType::Okp: return "OKP";
    case KeyType::Oct: return "oct";
  }
  return "?";
}

Result<Jwk> jwk_from_json(const json& j) {
  if (!j.is_object()) return cfg("not a JSON object");
  auto kty = opt_string(j, "kty");
  if (!kty) return kty.take_error();
  if (kty->empty()) return cfg("missing \"kty\"");
  Jwk k;
  auto kid = opt_string(j, "kid"); if (!kid) return kid.take_error();
  auto alg = opt_string(j, "alg"); if (!alg) return alg.take_error();
  auto use = opt_string(j, "use"); if (!use) return use.take_error();
  auto crv = opt_string(j, "crv"); if (!crv) return crv.take_error();
  k.kid = std::move(*kid);
  k.alg = std::move(*alg);
  k.use = std::move(*use);
  k.crv = std::move(*crv);
  if (auto ops = j.find("key_ops"); ops != j.end()) {
    if (!ops->is_array()) return cfg("\"key_ops\" is not an array");
    k.verify_allowed = false;
    for (const auto& op : *ops) {
      if (!op.is_string()) return cfg("\"key_ops\" holds a non-string");
      if (op.get_ref<const std::string&>() == "verify") k.verify_allowed = true;
    }
  }

  if (*kty == "oct") {
    auto secret = b64_member(j, "k");
    if (!secret) return secret.take_error();
    k.kty = KeyType::Oct;
    k.secret = ScrubbedString(std::move(*secret));
    return k;
  }
  for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "oth"})
    if (j.contains(priv)) return cfg("holds private key material (\"" + std::string(priv) + "\"); configure public keys only");

  Status st = ok_status();
  if (*kty == "RSA") { k.kty = KeyType::Rsa; st = parse_rsa(j, k); }
  else if (*kty == "EC") { k.kty = KeyType::Ec; st = parse_ec(j, k); }
  else if (*kty == "OKP") { k.kty = KeyType::Okp; st = parse_okp(j, k); }
  else return cfg("unsupported \"kty\"");
  if (!st) return st.take_error();
  return k;
}

Result<JwkSet> jwks_from_json(const json& j, bool allow_oct) {
  if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array())
    return make_error(ErrorKind::Config, "JWKS: not an object with a \"keys\" array");
  JwkSet set;
  std::size_t i = 0;
  for (const auto& kj : j["keys"]) {
    const std::string where = "JWKS key #" + std::to_string(i++);
    if (!kj.is_object()) return make_error(ErrorKind::Config, where + ": not a JSON object");
    const std::string kty = kj.value("kty", json()).is_string() ? kj["kty"].get<std::string>() : "";
    const std::string crv = kj.value("crv", json()).is_string() ? kj["crv"].get<std::string>() : "";
    const bool enc = kj.value("use", json()).is_string() && kj["use"].get<std::string>() == "enc";
    if (!is_supported(kty, crv) || enc) { ++set.skipped; continue; }
    if (kty == "oct" && !allow_oct)
      return make_error(ErrorKind::Config, where + ": symmetric (oct) keys are not accepted in a JWKS; "
                                                   "configure an HS256 shared key for the issuer instead");
    auto k = jwk_from_json(kj);
    if (!k) {
      Error e = k.take_error();
      e.message = where + ": " + e.message;
      return e;
    }
    set.keys.push_back(std::move(*k));
  }
  return set;
}

Result<JwkSet> jwks_from_text(std::string_view text, bool allow_oct) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(ErrorKind::Config, "JWKS: not valid JSON");
  return jwks_from_json(j, allow_oct);
}

Result<JwkSet> load_jwks_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorKind::Io, "JWKS file " + path + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto set = jwks_from_text(ss.str());
  if (!set) {
    Error e = set.take_error();
    e.message = path + ": " + e.message;
    return e;
  }
  return set;
}

}  // namespace kz::jwt
