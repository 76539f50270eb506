// The tokens the MCP `resolve` tool hands out. Each stands for one secret value, for one
// identity (the one that resolved it), until it expires. `fetch` looks tokens up here to
// swap them for their values. Thread-safe: the HTTP server calls it from its I/O threads.
//
// Tokens are looked up by their SHA-256, so the map's hashing and comparisons never run
// over token text an agent could probe byte by byte.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "secrets/binding.h"
#include "kz/result.h"
#include "kz/secret.h"

namespace kz::mcp {

struct IssuedToken {
  std::string secret;      // the secret's name
  std::string provider, ref;
  std::string owner;       // the identity that resolved it ("iss sub", or "local")
  SecretValue value;
  std::string token;       // the token text (a handle, not a value: what redaction writes)
  std::string token_id;    // short name for audit records (token_mint.h)
  Binding binding;
  std::int64_t expires_at = 0;   // Unix seconds
};

struct Minted {
  std::string token;       // the token text, for the agent (not a secret value)
  std::shared_ptr<const IssuedToken> issued;
};

class TokenStore {
 public:
  explicit TokenStore(std::size_t max_live = 100000, std::size_t max_per_owner = 1000)
      : max_live_(max_live), max_per_owner_(max_per_owner) {}

  // Mints a token for `value`. Fails when the store holds max_live unexpired tokens, or
  // the owner max_per_owner (one agent calling resolve in a loop must not crowd out the
  // others).
  Result<Minted> issue(IssuedToken t);
  // The token's entry, or null when unknown or expired.
  std::shared_ptr<const IssuedToken> find(std::string_view token, std::int64_t now) const;
  // The unexpired tokens of one identity (for redacting their values from responses).
  std::vector<std::shared_ptr<const IssuedToken>> owned_by(const std::string& owner, std::int64_t now) const;
  // Drops expired entries; called on every issue().
  void expire(std::int64_t now);

 private:
  std::size_t max_live_, max_per_owner_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const IssuedToken>> by_hash_;
};

// Each "KZ_TOK_…" run in `text`: [offset, length) pairs, in order.
std::vector<std::pair<std::size_t, std::size_t>> find_token_texts(std::string_view text);

// The current time, Unix seconds (one place, so tests reason about expiry the same way).
std::int64_t unix_now();

}  // namespace kz::mcp
