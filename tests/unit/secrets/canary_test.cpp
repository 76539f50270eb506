// Canary shapes (a decoy looks like a real key of its name) and the alarm (one record
// per sight, the kill once, even when the sight comes before the killer is set).
#include <gtest/gtest.h>

#include <string_view>

#include "kz/wire/scanner.h"
#include "secrets/canary.h"

namespace kz {
namespace {

// Whole-string match of a pattern of literals and `[class]{n}` runs, the only regex
// forms the vendors' published key formats below need. (Not std::regex: GCC 12 warns
// inside it under -O1 with the sanitizers, and the ASan build uses -Werror.)
bool in_class(char c, std::string_view cls) {
  for (std::size_t i = 0; i < cls.size(); ++i) {
    if (i + 2 < cls.size() && cls[i + 1] == '-') {
      if (c >= cls[i] && c <= cls[i + 2]) return true;
      i += 2;
    } else if (c == cls[i]) {
      return true;
    }
  }
  return false;
}

bool shaped(std::string_view v, std::string_view pat) {
  std::size_t at = 0;
  for (std::size_t p = 0; p < pat.size();) {
    if (pat[p] != '[') {
      if (at >= v.size() || v[at++] != pat[p++]) return false;
      continue;
    }
    const std::size_t close = pat.find(']', p);
    const std::size_t end = pat.find('}', close);
    const std::string_view cls = pat.substr(p + 1, close - p - 1);
    const std::size_t n = std::stoul(std::string(pat.substr(close + 2, end - close - 2)));
    for (std::size_t k = 0; k < n; ++k)
      if (at >= v.size() || !in_class(v[at++], cls)) return false;
    p = end + 1;
  }
  return at == v.size();
}

TEST(CanaryShape, TheMatcherIsStrict) {
  EXPECT_TRUE(shaped("ab12", "ab[0-9]{2}"));
  EXPECT_FALSE(shaped("ab123", "ab[0-9]{2}"));
  EXPECT_FALSE(shaped("ab1x", "ab[0-9]{2}"));
  EXPECT_FALSE(shaped("ac12", "ab[0-9]{2}"));
  EXPECT_TRUE(shaped("x+/Z", "x[+/A-Z]{3}"));
}

std::string value_for(const char* name, const char* shape = "") {
  auto v = make_canary_value(canary_shape_for(name, shape));
  EXPECT_TRUE(v);
  return std::string(v->view());
}

TEST(CanaryShape, FollowsTheName) {
  EXPECT_TRUE(shaped(value_for("OPENAI_API_KEY"), "sk-proj-[0-9A-Za-z]{48}"));
  EXPECT_TRUE(shaped(value_for("ANTHROPIC_API_KEY"), "sk-ant-api03-[0-9A-Za-z]{93}AA"));
  EXPECT_TRUE(shaped(value_for("GITHUB_TOKEN"), "ghp_[0-9A-Za-z]{36}"));
  EXPECT_TRUE(shaped(value_for("GITHUB_PAT"), "github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59}"));
  EXPECT_TRUE(shaped(value_for("SLACK_BOT_TOKEN"), "xoxb-[0-9]{13}-[0-9]{13}-[0-9A-Za-z]{24}"));
  EXPECT_TRUE(shaped(value_for("STRIPE_SECRET_KEY"), "sk_live_[0-9A-Za-z]{32}"));
  EXPECT_TRUE(shaped(value_for("AWS_ACCESS_KEY_ID"), "AKIA[0-9A-Z]{16}"));
  EXPECT_TRUE(shaped(value_for("AWS_SECRET_ACCESS_KEY"), "[0-9A-Za-z+/]{40}"));
  EXPECT_TRUE(shaped(value_for("DB_PASSWORD"), "[0-9A-Za-z]{40}"));
  EXPECT_TRUE(shaped(value_for("DEPLOY", "github"), "ghp_[0-9A-Za-z]{36}"));
  EXPECT_NE(value_for("OPENAI_API_KEY"), value_for("OPENAI_API_KEY"));
}

TEST(CanaryShape, BlindFormIsPrefixAndToken) {
  const SecretValue v = canary_with_token(canary_shape_for("OPENAI_API_KEY", ""), "KZ_TOK_abc");
  EXPECT_EQ(v.view(), "sk-proj-KZ_TOK_abc");
  EXPECT_EQ(canary_prefix(canary_shape_for("X", "generic")), "");
  EXPECT_EQ(find_canary_shape("nope"), nullptr);
}

// Blind mode's canaries are class-shaped like real keys' tokens: the vendor's strict
// format holds, the marker is found where the token starts, and the broker's token is
// exactly what follows the kept prefix.
TEST(CanaryShape, BlindCanaryKeepsTheStrictFormat) {
  struct Case {
    const char* name;
    std::string_view pattern;
    std::size_t keep;
  };
  const Case cases[] = {
      {"OPENAI_API_KEY", "sk-proj-[0-9A-Za-z]{48}", 8},
      {"ANTHROPIC_API_KEY", "sk-ant-api03-[0-9A-Za-z]{93}AA", 13},
      {"GITHUB_TOKEN", "ghp_[0-9A-Za-z]{36}", 4},
      {"GITHUB_PAT", "github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59}", 11},
      {"SLACK_BOT_TOKEN", "xoxb-[0-9]{13}-[0-9]{13}-[0-9A-Za-z]{24}", 5},
      {"STRIPE_SECRET_KEY", "sk_live_[0-9A-Za-z]{32}", 8},
  };
  for (int round = 0; round < 20; ++round)
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      auto b = make_blind_canary(canary_shape_for(c.name, ""), true, 40);
      ASSERT_TRUE(b);
      const std::string_view shown = b->shown.view();
      EXPECT_TRUE(shaped(shown, c.pattern)) << shown;
      EXPECT_EQ(shown.find("KZ_TOK_"), std::string_view::npos);
      EXPECT_EQ(shown.substr(c.keep), b->token.view());
      EXPECT_EQ(wire::find_token_prefix(shown.data(), shown.size()), c.keep);
      EXPECT_EQ(wire::token_extent(shown.data() + c.keep, shown.size() - c.keep), shown.size() - c.keep);
    }
  // token_shape = "plain", and a shape too short for ≥ 96 bits in its classes: KZ_TOK_.
  auto plain = make_blind_canary(canary_shape_for("OPENAI_API_KEY", ""), false, 40);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->shown.view(), "sk-proj-" + std::string(plain->token.view()));
  EXPECT_EQ(plain->token.view().substr(0, 7), "KZ_TOK_");
  auto akia = make_blind_canary(canary_shape_for("AWS_ACCESS_KEY_ID", ""), true, 40);
  ASSERT_TRUE(akia);
  EXPECT_EQ(akia->token.view().substr(0, 7), "KZ_TOK_");
}

TEST(CanaryAlarm, RecordsEachSightAndKillsOnce) {
  MemoryAuditRecorder audit;
  CanaryAlarm alarm(audit, true);
  CanarySeen s;
  s.secret = "OPENAI_API_KEY";
  s.where = "shim";
  alarm.raise(s);   // before the killer exists: the kill waits for it
  int kills = 0;
  alarm.set_killer([&] { ++kills; });
  EXPECT_EQ(kills, 1);
  alarm.raise(s);
  EXPECT_EQ(kills, 1);
  const auto recs = audit.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["event"], "canary");
  EXPECT_EQ(recs[0]["decision"], "kill");
  EXPECT_EQ(recs[0]["severity"], "high");
  EXPECT_EQ(alarm.tripped(), "OPENAI_API_KEY");
}

TEST(CanaryAlarm, AuditOnlyNeverKills) {
  MemoryAuditRecorder audit;
  CanaryAlarm alarm(audit, false);
  int kills = 0;
  alarm.set_killer([&] { ++kills; });
  CanarySeen s;
  s.secret = "X";
  s.where = "output";
  alarm.raise(s);
  EXPECT_EQ(kills, 0);
  EXPECT_EQ(audit.records()[0]["decision"], "audit");
}

}  // namespace
}  // namespace kz
