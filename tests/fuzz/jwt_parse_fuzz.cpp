// libFuzzer target for the JWT/JWS parser and verifier (launcher/policy/jws_verify,
// jwt_verifier, jwk, base64url). Each input is used as a compact token against a verifier
// holding the RFC 7515/8037 example keys (HS256, RS256, ES256, EdDSA), as a JWKS
// document, and as base64url text. Properties checked besides memory safety:
//   * base64url decoding is canonical: decode(x) succeeding implies encode(decode(x)) == x;
//   * a rejected token's message never contains the token's signature segment (when that
//     segment looks like a signature: 16+ base64url characters).
// Built by scripts/fuzz-jwt (clang, -fsanitize=fuzzer,address,undefined); the checked-in
// corpus tests/fuzz/corpus/jwt/ is replayed by tests/unit/policy/jwt_fuzz_corpus_test.cpp.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "policy/base64url.h"
#include "policy/jwk.h"
#include "policy/jws_verify.h"
#include "policy/jwt_verifier.h"

namespace {

using kz::jwt::JwtVerifier;

const JwtVerifier& fuzz_verifier() {
  static const JwtVerifier v = [] {
    // Public example keys from RFC 7515 A.2/A.3 and RFC 8037 A.1, and the A.1 HMAC key.
    const char* jwks = R"({"keys":[
      {"kty":"RSA","kid":"rsa","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"},
      {"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
      {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})";
    auto set = kz::jwt::jwks_from_text(jwks);
    if (!set) std::abort();
    auto hmac = kz::jwt::base64url_decode(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
    std::vector<kz::jwt::IssuerConfig> cs(2);
    cs[0].issuer = "joe";
    cs[0].audience_optional = true;
    cs[0].jwks = std::make_shared<const kz::jwt::JwkSet>(std::move(*set));
    cs[0].hs256_key = kz::ScrubbedString(*hmac);
    cs[1].issuer = "https://auth.example";
    cs[1].audience = "keyzero";
    cs[1].hs256_key = kz::ScrubbedString(*hmac);
    auto r = JwtVerifier::create(std::move(cs));
    if (!r) std::abort();
    return std::move(r).value();
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // The whole verifier, at a time when the RFC tokens are valid.
  auto r = fuzz_verifier().verify(in, 1300819370);
  if (!r) {
    // Only a segment that could be a real signature counts: base64url text of 16+
    // characters. (Shorter or spaced input can coincide with the fixed message text.)
    const auto dot = in.rfind('.');
    const std::string_view sig = dot == std::string_view::npos ? std::string_view() : in.substr(dot + 1);
    const bool b64 = sig.size() >= 16 && sig.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                               "0123456789-_") == std::string_view::npos;
    if (b64 && r.error().message.find(sig) != std::string::npos) std::abort();   // a message echoed it
  }

  // Canonical base64url: whatever decodes must re-encode to the same text.
  if (auto dec = kz::jwt::base64url_decode(in)) {
    if (kz::jwt::base64url_encode(*dec) != in) std::abort();
  }

  // The same bytes as a JWKS document.
  (void)kz::jwt::jwks_from_text(in);
  return 0;
}
