#include "mcp/replica_seal.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "core/openssl_ptr.h"
#include "kz/digest.h"
#include "kz/preload/basic_auth.h"
#include "kz/wipe.h"
#include "kz/wire/token.h"

namespace kz::mcp {

namespace {

using nlohmann::json;
using CipherCtxPtr = OsslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

constexpr unsigned char kVersion = 1;
constexpr std::size_t kNonceLen = 12, kTagLen = 16;
// Associated data: a sealed session never opens as a token, nor the reverse.
constexpr std::string_view kTokenAad = "kz mcp token v1";
constexpr std::string_view kSessionAad = "kz mcp session v1";

Error not_verified() { return make_error(ErrorKind::Denied, "does not verify (tampered, or sealed under another key)"); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool from_hex(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  out.resize(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return true;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::shared_ptr<const ReplicaSeal>> ReplicaSeal::from_key(const SecretValue& key_text) {
  std::shared_ptr<ReplicaSeal> s(new ReplicaSeal());
  const std::string_view k = trimmed(key_text.view());
  ScrubbedString bytes;
  bool ok = false;
  if (k.size() == 32) {
    bytes.str().assign(k);
    ok = true;
  } else if (k.size() == 64) {
    ok = from_hex(k, bytes.str());
  } else if (k.size() == 44) {
    bytes.str().resize(33);
    const long n = preload::b64_decode(k.data(), k.size(), reinterpret_cast<unsigned char*>(bytes.str().data()),
                                       bytes.str().size());
    ok = n == 32;
    bytes.str().resize(ok ? 32 : 0);
  }
  if (!ok || bytes.str().size() != 32)
    return make_error(ErrorKind::Config, "the MCP sealing key (mcp.replicas key_ref) must be 32 bytes: raw, 64 hex "
                                         "digits or base64 (e.g. `openssl rand -hex 32`)");
  std::memcpy(s->key_, bytes.str().data(), 32);
  return std::shared_ptr<const ReplicaSeal>(std::move(s));
}

ReplicaSeal::~ReplicaSeal() { wipe(key_, sizeof key_); }

Result<std::string> ReplicaSeal::seal(std::string_view aad, const std::string& plaintext) const {
  unsigned char nonce[kNonceLen];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return make_error(ErrorKind::Internal, "the random number generator failed");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  std::string out(1 + kNonceLen + plaintext.size() + kTagLen, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  o[0] = kVersion;
  std::memcpy(o + 1, nonce, kNonceLen);
  int len = 0, fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o + 1 + kNonceLen, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + 1 + kNonceLen + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagLen, o + 1 + kNonceLen + plaintext.size()) != 1)
    return make_error(ErrorKind::Internal, "sealing failed (OpenSSL AES-256-GCM)");
  return hex_lower(out);
}

Result<std::string> ReplicaSeal::open(std::string_view aad, std::string_view hex) const {
  std::string raw;
  if (!from_hex(hex, raw) || raw.size() < 1 + kNonceLen + kTagLen || static_cast<unsigned char>(raw[0]) != kVersion)
    return not_verified();
  const auto* r = reinterpret_cast<const unsigned char*>(raw.data());
  const std::size_t n = raw.size() - 1 - kNonceLen - kTagLen;
  std::string plain(n, '\0');
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  unsigned char tag[kTagLen];
  std::memcpy(tag, r + 1 + kNonceLen + n, kTagLen);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, r + 1) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, r + 1 + kNonceLen,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagLen, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &fin) != 1)
    return not_verified();
  return plain;
}

bool ReplicaSeal::looks_sealed(std::string_view token) {
  using wire::kTokenPrefixLen;
  if (token.size() < kTokenPrefixLen + 2 * (1 + kNonceLen + kTagLen)) return false;
  if (token.substr(0, kTokenPrefixLen) != wire::kTokenPrefix) return false;
  // Hex of version 1 first: "01".
  return token.substr(kTokenPrefixLen, 2) == "01";
}

Result<std::string> ReplicaSeal::seal_token(const TokenClaims& c) const {
  json j = {{"o", c.owner}, {"n", c.name}, {"p", c.provider}, {"r", c.ref}, {"s", c.session}, {"e", c.expires_at}};
  if (c.canary) j["c"] = true;
  auto sealed = seal(kTokenAad, j.dump());
  if (!sealed) return sealed.take_error();
  return std::string(wire::kTokenPrefix) + *sealed;
}

Result<TokenClaims> ReplicaSeal::open_token(std::string_view token, std::int64_t now) const {
  if (!looks_sealed(token)) return not_verified();
  auto plain = open(kTokenAad, token.substr(wire::kTokenPrefixLen));
  if (!plain) return plain.take_error();
  const json j = json::parse(*plain, nullptr, false);
  if (!j.is_object() || !j.contains("o") || !j.contains("e") || !j["e"].is_number_integer()) return not_verified();
  TokenClaims c;
  c.owner = j.value("o", "");
  c.name = j.value("n", "");
  c.provider = j.value("p", "");
  c.ref = j.value("r", "");
  c.session = j.value("s", "");
  c.expires_at = j["e"].get<std::int64_t>();
  c.canary = j.value("c", false);
  if (c.expires_at <= now) return make_error(ErrorKind::Denied, "expired");
  return c;
}

Result<std::string> ReplicaSeal::seal_session(const SessionClaims& c) const {
  const json j = {{"o", c.owner}, {"i", c.id}, {"v", c.protocol_version}, {"e", c.expires_at}};
  return seal(kSessionAad, j.dump());
}

Result<SessionClaims> ReplicaSeal::open_session(std::string_view id, std::int64_t now) const {
  auto plain = open(kSessionAad, id);
  if (!plain) return plain.take_error();
  const json j = json::parse(*plain, nullptr, false);
  if (!j.is_object() || !j.contains("e") || !j["e"].is_number_integer()) return not_verified();
  SessionClaims c;
  c.owner = j.value("o", "");
  c.id = j.value("i", "");
  c.protocol_version = j.value("v", "");
  c.expires_at = j["e"].get<std::int64_t>();
  if (c.expires_at <= now) return make_error(ErrorKind::Denied, "expired");
  return c;
}

}  // namespace kz::mcp
