// Sealed MCP tokens and sessions: what one replica seals another opens; a changed byte,
// another key, the other kind or a past expiry does not open.
#include <gtest/gtest.h>

#include "mcp/replica_seal.h"

namespace kz::mcp {
namespace {

std::shared_ptr<const ReplicaSeal> seal_with(const char* key) {
  auto s = ReplicaSeal::from_key(SecretValue::from(key));
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? *s : nullptr;
}

constexpr const char* kKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TEST(ReplicaSeal, TokenRoundTripsAcrossInstances) {
  auto a = seal_with(kKey), b = seal_with(kKey);
  TokenClaims c{"iss sub", "DEMO_KEY", "env", "X", "sess1", 2000, false};
  auto tok = a->seal_token(c);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->rfind("KZ_TOK_01", 0), 0u);
  EXPECT_EQ(tok->find_first_not_of("0123456789abcdef", 7), std::string::npos);
  auto back = b->open_token(*tok, 1000);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->owner, "iss sub");
  EXPECT_EQ(back->name, "DEMO_KEY");
  EXPECT_EQ(back->session, "sess1");
  EXPECT_EQ(back->expires_at, 2000);
}

TEST(ReplicaSeal, RefusesTamperedExpiredOtherKeyOtherKind) {
  auto a = seal_with(kKey);
  auto other = seal_with("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
  auto tok = a->seal_token({"o", "N", "env", "R", "", 2000, false});
  ASSERT_TRUE(tok);
  std::string bad = *tok;
  bad[bad.size() / 2] = bad[bad.size() / 2] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(a->open_token(bad, 1000));
  EXPECT_FALSE(other->open_token(*tok, 1000));
  auto expired = a->open_token(*tok, 2000);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().message, "expired");
  auto sess = a->seal_session({"o", "id1", "2025-06-18", 2000});
  ASSERT_TRUE(sess);
  EXPECT_FALSE(a->open_token("KZ_TOK_" + *sess, 1000));   // a session is no token
  EXPECT_TRUE(a->open_session(*sess, 1000));
  EXPECT_FALSE(a->open_session(tok->substr(7), 1000));   // nor the reverse
}

TEST(ReplicaSeal, KeyFormats) {
  EXPECT_TRUE(ReplicaSeal::from_key(SecretValue::from(std::string(32, 'k'))));
  EXPECT_TRUE(ReplicaSeal::from_key(SecretValue::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")));
  auto short_key = ReplicaSeal::from_key(SecretValue::from("abc"));
  ASSERT_FALSE(short_key);
  EXPECT_NE(short_key.error().message.find("32 bytes"), std::string::npos);
}

}  // namespace
}  // namespace kz::mcp
