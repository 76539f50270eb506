// Tokens: format, randomness, length rule, lookups.
#include <gtest/gtest.h>

#include <set>

#include "secrets/token_mint.h"
#include "secrets/token_table.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/scanner.h"
#include "kz/wire/token.h"

namespace kz {
namespace {

std::vector<ResolvedSecret> secrets(std::initializer_list<std::pair<const char*, const char*>> kv) {
  std::vector<ResolvedSecret> out;
  for (auto [k, v] : kv) out.push_back({k, "env", SecretValue::from(v)});
  return out;
}

TEST(TokenMint, FormatAndCharset) {
  auto t = mint_token(24);
  ASSERT_TRUE(t.ok());
  const std::string_view v = t->view();
  ASSERT_EQ(v.size(), 24u);
  EXPECT_EQ(v.substr(0, 7), "KZ_TOK_");
  for (char c : v.substr(7)) EXPECT_TRUE(wire::is_base62(static_cast<unsigned char>(c))) << c;
  EXPECT_EQ(wire::token_extent(v.data(), v.size()), v.size());
  EXPECT_FALSE(mint_token(23).ok());   // fewer than 96 bits
}

TEST(TokenMint, FreshEveryTimeAndUniformish) {
  std::set<std::string> seen;
  std::array<int, 62> counts{};
  for (int i = 0; i < 2000; ++i) {
    auto t = mint_token(24);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(seen.insert(std::string(t->view())).second);
    for (char c : t->view().substr(7)) ++counts[std::string_view(wire::kBase62).find(c)];
  }
  // 34000 characters over 62 symbols: ~548 each. A broken sampler (e.g. b % 62 without
  // rejection, or a fixed character) falls far outside this band.
  for (int n : counts) { EXPECT_GT(n, 400); EXPECT_LT(n, 700); }
}

TEST(TokenTable, SameLengthForLongSecretsAnd24ForShortOnes) {
  const std::string long_value(40, 'x');
  auto t = TokenTable::build(secrets({{"LONG", long_value.c_str()}, {"SHORT", "abc123"}}), {});
  ASSERT_TRUE(t.ok());
  const auto& s = t->secrets();
  EXPECT_EQ(s[0].token.size(), 40u);
  EXPECT_EQ(s[1].token.size(), 24u);
  EXPECT_TRUE(t->needs_length_fixup());
  EXPECT_NE(s[0].token.view(), s[1].token.view());
  EXPECT_EQ(s[0].token_id.size(), 12u);
  EXPECT_EQ(s[0].token_id, token_id(s[0].token.view()));
}

TEST(TokenTable, Lookups) {
  auto t = TokenTable::build(secrets({{"A", "value-of-a-0123456789abcdefgh"}, {"B", "value-of-b-0123456789abcdefgh"}}), {});
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->needs_length_fixup());
  const auto& a = t->secrets()[0];
  EXPECT_EQ(t->find_token(a.token.view()), &a);
  EXPECT_EQ(t->find_token(a.token.view().substr(0, 20)), nullptr);
  EXPECT_EQ(t->find_token_start(a.token.view().substr(0, 20)), &a);
  EXPECT_EQ(t->find_token_start(a.token.view()), nullptr);   // complete, not a start
  EXPECT_EQ(t->find_value("value-of-b-0123456789abcdefgh"), &t->secrets()[1]);
  EXPECT_EQ(t->find_value("value-of-b"), nullptr);
  const auto* v = reinterpret_cast<const unsigned char*>("value-of-a-0123456789abcdefgh");
  EXPECT_EQ(a.fp_hash, wire::fp_hash(v, 29, t->fp_base()));
}

TEST(TokenTable, RefusesValuesBlindModeCannotCarry) {
  const std::string huge(wire::kMaxSecretLen + 1, 'x');
  auto t = TokenTable::build(secrets({{"HUGE", huge.c_str()}}), {});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("HUGE"), std::string::npos);
  EXPECT_FALSE(TokenTable::build(secrets({{"EMPTY", ""}}), {}).ok());
}

}  // namespace
}  // namespace kz
