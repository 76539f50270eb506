// The PDP's cache of verified identity tokens (server/bearer_identity.h): it must save the
// signature check on a repeated token and never answer for a token the verifier would
// now refuse: not after exp (integer or fractional), not past its minute, not for a
// state (bundle) whose keys were rotated or revoked.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "jwt_test_signer.h"
#include "policy/jwt_verifier.h"
#include "server/bearer_identity.h"
#include "server/pdp_state.h"

namespace kz {
namespace {

using nlohmann::json;
using kz::test::hs256;

constexpr std::int64_t kNow = 1'800'000'000;
const std::string kKeyA(32, 'a');
const std::string kKeyB(32, 'b');

// A PDP state whose one issuer accepts HS256 tokens MACed with `key`, with no leeway so
// that the verifier's own answer at exp is "expired".
std::shared_ptr<const PdpState> state_with_key(const std::string& key) {
  jwt::IssuerConfig c;
  c.issuer = "https://auth.example";
  c.audience = "keyzero";
  c.hs256_key = ScrubbedString(std::string(key));
  c.leeway = std::chrono::seconds(0);
  std::vector<jwt::IssuerConfig> v;
  v.push_back(std::move(c));
  auto verifier = jwt::JwtVerifier::create(std::move(v));
  EXPECT_TRUE(verifier.ok()) << (verifier ? "" : verifier.error().message);
  auto st = std::make_shared<PdpState>();
  st->verifier.emplace(std::move(*verifier));
  return st;
}

std::string bearer(const std::string& key, const json& exp) {
  const json claims{{"iss", "https://auth.example"}, {"aud", "keyzero"}, {"sub", "agent-1"},
                    {"iat", kNow - 10}, {"exp", exp}};
  return "Bearer " + hs256(json{{"alg", "HS256"}, {"typ", "JWT"}}, claims, key);
}

TEST(BearerIdentityCache, RepeatedTokenIsVerifiedOnce) {
  BearerIdentities ids;
  const auto st = state_with_key(kKeyA);
  const std::string auth = bearer(kKeyA, kNow + 3600);
  for (int i = 0; i < 5; ++i) {
    auto who = ids.verify(st, auth, kNow + i);
    ASSERT_TRUE(who.ok()) << who.error().message;
    EXPECT_EQ((*who)->sub, "agent-1");
  }
  EXPECT_EQ(ids.verifications(), 1u);
  EXPECT_EQ(ids.cache_hits(), 4u);
}

TEST(BearerIdentityCache, CachedTokenIsRefusedAtExp) {
  BearerIdentities ids;
  const auto st = state_with_key(kKeyA);
  const std::string auth = bearer(kKeyA, kNow + 10);
  ASSERT_TRUE(ids.verify(st, auth, kNow).ok());
  EXPECT_TRUE(ids.verify(st, auth, kNow + 9).ok());
  auto late = ids.verify(st, auth, kNow + 10);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message.find("expired"), std::string::npos) << late.error().message;
}

// exp need not be an integer: the verifier honours 1800000010.5, and so must the cache's
// lifetime (an entry that ignored it would live a minute past the token's end).
TEST(BearerIdentityCache, FractionalExpEndsTheEntryToo) {
  BearerIdentities ids;
  const auto st = state_with_key(kKeyA);
  const std::string auth = bearer(kKeyA, static_cast<double>(kNow) + 10.5);
  ASSERT_TRUE(ids.verify(st, auth, kNow).ok());
  EXPECT_TRUE(ids.verify(st, auth, kNow + 9).ok());
  auto late = ids.verify(st, auth, kNow + 11);
  ASSERT_FALSE(late.ok()) << "a token past its fractional exp was answered from the cache";
  EXPECT_NE(late.error().message.find("expired"), std::string::npos) << late.error().message;
}

TEST(BearerIdentityCache, AnEntryLivesAMinuteAtMost) {
  BearerIdentities ids;
  const auto st = state_with_key(kKeyA);
  const std::string auth = bearer(kKeyA, kNow + 3600);
  ASSERT_TRUE(ids.verify(st, auth, kNow).ok());
  ASSERT_TRUE(ids.verify(st, auth, kNow + BearerIdentities::kTtlSeconds - 1).ok());
  EXPECT_EQ(ids.verifications(), 1u);
  ASSERT_TRUE(ids.verify(st, auth, kNow + BearerIdentities::kTtlSeconds).ok());
  EXPECT_EQ(ids.verifications(), 2u) << "the signature was not checked again after the entry's minute";
}

// A key rotation (or revocation) reaches the PDP as a reloaded bundle: a new state. A
// token verified under the old key is checked again under the new state's keys, at once.
TEST(BearerIdentityCache, RotatedKeyIsNotServedFromTheCache) {
  BearerIdentities ids;
  const auto old_state = state_with_key(kKeyA);
  const std::string auth = bearer(kKeyA, kNow + 3600);
  ASSERT_TRUE(ids.verify(old_state, auth, kNow).ok());
  const auto rotated = state_with_key(kKeyB);
  auto refused = ids.verify(rotated, auth, kNow + 1);
  ASSERT_FALSE(refused.ok()) << "a token of the rotated-out key was answered from the cache";
  EXPECT_NE(refused.error().message.find("signature"), std::string::npos) << refused.error().message;
  // A token of the new key works under the new state.
  EXPECT_TRUE(ids.verify(rotated, bearer(kKeyB, kNow + 3600), kNow + 1).ok());
}

// A cached token answers only for itself: the same claims under another signature (a
// forgery) are verified, and refused, every time.
TEST(BearerIdentityCache, RefusalsAreNotCachedAndAnEntryAnswersOnlyForItsToken) {
  BearerIdentities ids;
  const auto st = state_with_key(kKeyA);
  ASSERT_TRUE(ids.verify(st, bearer(kKeyA, kNow + 3600), kNow).ok());
  const std::string forged = bearer(kKeyB, kNow + 3600);
  EXPECT_FALSE(ids.verify(st, forged, kNow).ok());
  EXPECT_FALSE(ids.verify(st, forged, kNow).ok());
  EXPECT_EQ(ids.verifications(), 3u);
  EXPECT_EQ(ids.cache_hits(), 0u);
}

}  // namespace
}  // namespace kz
