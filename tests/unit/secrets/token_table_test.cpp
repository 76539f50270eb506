// Tokens: format, randomness, length rule; the table as a blind run builds it (lookups
// by token, token start and value) and as MCP fills it (issued tokens: owner, expiry,
// limits, lookup by hash, concurrent use).
#include <gtest/gtest.h>

#include <set>
#include <thread>

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

TEST(TokenTable, BuiltEntriesCarryTheirBindings) {
  Binding b;
  b.hosts = {"api.example.com"};
  b.methods = {"GET"};
  auto t = TokenTable::build(secrets({{"A", "value-of-a-0123456789abcdefgh"}, {"B", "value-of-b-0123456789abcdefgh"}}),
                             {{"B", b}});
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->secrets()[0].binding.hosts.empty());
  EXPECT_EQ(t->secrets()[1].binding.hosts, b.hosts);
  EXPECT_EQ(t->secrets()[1].binding.methods, b.methods);
  EXPECT_EQ(t->secrets()[1].id, 2u);
  // A blind run's entries are not issued ones: the hash lookup does not see them.
  EXPECT_EQ(t->find(t->secrets()[0].token.view(), unix_now()), nullptr);
}

TokenEntry issued(const char* owner, std::int64_t expires_at, const char* value = "sk-issued-0123456789") {
  TokenEntry e;
  e.name = "API_KEY";
  e.provider = "env";
  e.ref = "API_KEY";
  e.owner = owner;
  e.value = SecretValue::from(value);
  e.binding.hosts = {"api.example.com"};
  e.expires_at = expires_at;
  return e;
}

TEST(TokenTableIssued, FindByTokenUntilExpiry) {
  TokenTable t;
  const std::int64_t now = unix_now();
  auto m = t.issue(issued("iss sub", now + 60));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->token.size(), 40u);
  EXPECT_EQ(m->token.rfind("KZ_TOK_", 0), 0u);
  EXPECT_EQ(m->entry->token.view(), m->token);
  EXPECT_EQ(m->entry->token_id, token_id(m->token));
  EXPECT_EQ(m->entry->binding.hosts, std::vector<std::string>{"api.example.com"});

  auto found = t.find(m->token, now);
  ASSERT_TRUE(found);
  EXPECT_EQ(found.get(), m->entry.get());
  EXPECT_EQ(found->value.view(), "sk-issued-0123456789");
  EXPECT_EQ(t.find(m->token.substr(0, 39), now), nullptr);
  EXPECT_EQ(t.find(m->token + "x", now), nullptr);
  EXPECT_EQ(t.find(m->token, now + 60), nullptr);   // expired at its expiry second

  EXPECT_EQ(t.owned_by("iss sub", now).size(), 1u);
  EXPECT_TRUE(t.owned_by("someone else", now).empty());
  EXPECT_TRUE(t.owned_by("iss sub", now + 60).empty());

  // Expiry drops the entry; a fetch that still holds it keeps a valid value.
  t.expire(now + 60);
  EXPECT_EQ(t.find(m->token, now), nullptr);
  EXPECT_EQ(found->value.view(), "sk-issued-0123456789");
}

TEST(TokenTableIssued, LimitsPerOwnerAndInAll) {
  TokenTable t(IssueLimits{3, 2});
  const std::int64_t later = unix_now() + 60;
  EXPECT_TRUE(t.issue(issued("a", later)));
  EXPECT_TRUE(t.issue(issued("a", later)));
  auto third = t.issue(issued("a", later));
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().kind, ErrorKind::Denied);
  EXPECT_NE(third.error().message.find("live tokens already"), std::string::npos);
  EXPECT_TRUE(t.issue(issued("b", later)));   // another identity is not crowded out
  auto full = t.issue(issued("c", later));
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message.find("too many live tokens"), std::string::npos);
  // Expired entries do not count: issue drops them first.
  TokenTable u(IssueLimits{1, 1});
  EXPECT_TRUE(u.issue(issued("a", unix_now() - 1)));
  EXPECT_TRUE(u.issue(issued("a", later)));
}

TEST(TokenTableIssued, ConcurrentIssueAndFind) {
  TokenTable t(IssueLimits{100000, 100000});
  const std::int64_t later = unix_now() + 600;
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::vector<std::string>> minted(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      const std::string owner = "owner" + std::to_string(i);
      for (int k = 0; k < kEach; ++k) {
        auto m = t.issue(issued(owner.c_str(), later));
        if (m) minted[i].push_back(m->token);
        // Lookups of this thread's tokens interleave with the others' issues.
        if (!minted[i].empty()) (void)t.find(minted[i].front(), unix_now());
      }
    });
  for (auto& th : threads) th.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_EQ(minted[i].size(), static_cast<std::size_t>(kEach));
    EXPECT_EQ(t.owned_by("owner" + std::to_string(i), unix_now()).size(), static_cast<std::size_t>(kEach));
    for (const auto& tok : minted[i]) {
      auto e = t.find(tok, unix_now());
      ASSERT_TRUE(e);
      EXPECT_EQ(e->owner, "owner" + std::to_string(i));
    }
  }
}

TEST(TokenTable, MovesKeepIssuedEntries) {
  TokenTable t;
  auto m = t.issue(issued("a", unix_now() + 60));
  ASSERT_TRUE(m);
  TokenTable moved = std::move(t);
  EXPECT_TRUE(moved.find(m->token, unix_now()));
}

}  // namespace
}  // namespace kz
