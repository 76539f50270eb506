// Tokens and sessions any replica can verify (kz server start --mcp behind a load
// balancer). With mcp.replicas in the bundle, a `resolve` token and an Mcp-Session-Id are
// not handles into one process's memory but sealed claims: AES-256-GCM under a 32-byte
// key every replica reads from the same provider, with a fresh 96-bit nonce each.
//
//   token    KZ_TOK_ + hex(version | nonce | ciphertext | tag), the plaintext
//            {owner, secret name, provider, ref, session id, expiry, canary}
//   session  hex(version | nonce | ciphertext | tag), the plaintext
//            {owner, session id, protocol version, expiry}
//
// Hex keeps a token inside the token alphabet (the scanners find it as any KZ_TOK_).
// The two kinds have different associated data, so neither passes for the other. No
// value is ever sealed: the replica that serves a fetch resolves the secret from its
// providers by ref. Revocation: short expiries and a deny list (deny_list.h) of token
// ids (token_mint.h token_id, as in the audit records) and session ids.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kz/result.h"
#include "kz/secret.h"

namespace kz::mcp {

struct TokenClaims {
  std::string owner;       // the identity's key ("iss sub")
  std::string name, provider, ref;
  std::string session;     // the session id it was issued in ("" over stdio)
  std::int64_t expires_at = 0;
  bool canary = false;
};

struct SessionClaims {
  std::string owner;
  std::string id;                 // short, random: what audit records and the deny list name
  std::string protocol_version;
  std::int64_t expires_at = 0;
};

class ReplicaSeal {
 public:
  // `key_text`: 32 bytes raw, 64 hex digits or base64 of 32 bytes (surrounding
  // whitespace ignored). The error never shows the key.
  static Result<std::shared_ptr<const ReplicaSeal>> from_key(const SecretValue& key_text);
  ~ReplicaSeal();
  ReplicaSeal(const ReplicaSeal&) = delete;
  ReplicaSeal& operator=(const ReplicaSeal&) = delete;

  Result<std::string> seal_token(const TokenClaims& c) const;
  Result<std::string> seal_session(const SessionClaims& c) const;
  // Whether `text` is in the sealed token format at all (else: an unknown token).
  static bool looks_sealed(std::string_view token);
  // The claims, or ErrorKind::Denied: "does not verify" (tampered, another key, not a
  // sealed token) or "expired". Revocation is the caller's (deny list).
  Result<TokenClaims> open_token(std::string_view token, std::int64_t now) const;
  Result<SessionClaims> open_session(std::string_view id, std::int64_t now) const;

 private:
  ReplicaSeal() = default;
  Result<std::string> seal(std::string_view aad, const std::string& plaintext) const;
  Result<std::string> open(std::string_view aad, std::string_view hex) const;

  unsigned char key_[32] = {};
};

}  // namespace kz::mcp
