// Canary shapes (a decoy looks like a real key of its name) and the alarm (one record
// per sight, the kill once, even when the sight comes before the killer is set).
#include <gtest/gtest.h>

#include <regex>

#include "secrets/canary.h"

namespace kz {
namespace {

std::string value_for(const char* name, const char* shape = "") {
  auto v = make_canary_value(canary_shape_for(name, shape));
  EXPECT_TRUE(v);
  return std::string(v->view());
}

TEST(CanaryShape, FollowsTheName) {
  EXPECT_TRUE(std::regex_match(value_for("OPENAI_API_KEY"), std::regex("sk-proj-[0-9A-Za-z]{48}")));
  EXPECT_TRUE(std::regex_match(value_for("ANTHROPIC_API_KEY"), std::regex("sk-ant-api03-[0-9A-Za-z]{93}AA")));
  EXPECT_TRUE(std::regex_match(value_for("GITHUB_TOKEN"), std::regex("ghp_[0-9A-Za-z]{36}")));
  EXPECT_TRUE(std::regex_match(value_for("GITHUB_PAT"), std::regex("github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59}")));
  EXPECT_TRUE(std::regex_match(value_for("SLACK_BOT_TOKEN"), std::regex("xoxb-[0-9]{13}-[0-9]{13}-[0-9A-Za-z]{24}")));
  EXPECT_TRUE(std::regex_match(value_for("STRIPE_SECRET_KEY"), std::regex("sk_live_[0-9A-Za-z]{32}")));
  EXPECT_TRUE(std::regex_match(value_for("AWS_ACCESS_KEY_ID"), std::regex("AKIA[0-9A-Z]{16}")));
  EXPECT_TRUE(std::regex_match(value_for("AWS_SECRET_ACCESS_KEY"), std::regex("[0-9A-Za-z+/]{40}")));
  EXPECT_TRUE(std::regex_match(value_for("DB_PASSWORD"), std::regex("[0-9A-Za-z]{40}")));
  EXPECT_TRUE(std::regex_match(value_for("DEPLOY", "github"), std::regex("ghp_[0-9A-Za-z]{36}")));
  EXPECT_NE(value_for("OPENAI_API_KEY"), value_for("OPENAI_API_KEY"));
}

TEST(CanaryShape, BlindFormIsPrefixAndToken) {
  const SecretValue v = canary_with_token(canary_shape_for("OPENAI_API_KEY", ""), "KZ_TOK_abc");
  EXPECT_EQ(v.view(), "sk-proj-KZ_TOK_abc");
  EXPECT_EQ(canary_prefix(canary_shape_for("X", "generic")), "");
  EXPECT_EQ(find_canary_shape("nope"), nullptr);
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
