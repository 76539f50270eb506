// Who is calling: the verified claims of an `Authorization: Bearer <JWT>` header, for the
// PDP's API and the MCP endpoint alike.
//
// Verified claims are cached: an agent shows the same token on every request, and an
// RS256 verification costs more than the rest of a decision. An entry lives until the
// token's exp (a fractional exp counts down to the second before it) or a minute,
// whichever is first, and only counts for the state (bundle: issuers and keys) that
// verified it: a reloaded bundle with a rotated or revoked key verifies again, and a key
// dropped from a JWKS URL's set stops being honoured from the cache within the minute.
// Entries are keyed by the token's SHA-256, so the cache keeps no bearer token.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "kz/result.h"
#include "policy/cel.h"
#include "server/pdp_state.h"

namespace kz {

struct VerifiedIdentity {
  nlohmann::json claims;
  std::string claims_json;   // the claims' compact JSON text, dumped once (the decision log's input.identity)
  cel::Value value;     // the claims as CEL's `identity`, converted once
  std::string key;      // "iss sub": who owns what this identity is given (MCP tokens)
  std::string sub;
};

// The claims as an identity (for an identity token checked once, e.g. kz mcp over stdio).
std::shared_ptr<const VerifiedIdentity> make_identity(nlohmann::json claims);

class BearerIdentities {
 public:
  // ErrorKind::Denied with the reason (never the token) when the header is missing or
  // the token does not verify against `st`'s issuers.
  Result<std::shared_ptr<const VerifiedIdentity>> verify(const std::shared_ptr<const PdpState>& st,
                                                         std::string_view authorization, std::int64_t now);

  // Requests answered from the cache, and tokens verified (successfully or not).
  std::uint64_t cache_hits() const { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t verifications() const { return verifications_.load(std::memory_order_relaxed); }

  static constexpr std::int64_t kTtlSeconds = 60;

 private:
  struct Cached {
    std::shared_ptr<const VerifiedIdentity> id;
    std::weak_ptr<const PdpState> state;   // (not a raw pointer: addresses are reused)
    std::int64_t until = 0;
  };
  using Key = std::array<unsigned char, 32>;   // SHA-256 of the token
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      std::size_t h;
      std::memcpy(&h, k.data(), sizeof h);   // a digest's bytes are already uniform
      return h;
    }
  };
  std::mutex mu_;
  std::unordered_map<Key, Cached, KeyHash> cache_;
  std::atomic<std::uint64_t> hits_{0}, verifications_{0};
};

}  // namespace kz
