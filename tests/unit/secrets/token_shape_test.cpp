// Tokens that look right (token_mint.h): which vendor prefix a token keeps, and the table
// a blind run builds with it (the agent's copy as long as the value, the token inside it
// found by the ordinary scan, swap and redaction exact in length both ways).
#include <gtest/gtest.h>

#include <string>

#include "kz/wire/scanner.h"
#include "kz/wire/token.h"
#include "secrets/token_mint.h"
#include "secrets/token_table.h"

namespace kz {
namespace {

std::string alnum(std::size_t n) {
  const std::string abc = "aB3dE5gH7jK9mN1pQ2sT4vW6yZ8";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += abc[i % abc.size()];
  return s;
}

std::string_view prefix(const std::string& v) { return token_prefix_for(v, TokenShape::Auto); }

TEST(TokenShape, KnownPrefixesLongestFirst) {
  EXPECT_EQ(prefix("sk-proj-" + alnum(48)), "sk-proj-");
  EXPECT_EQ(prefix("sk-" + alnum(48)), "sk-");
  EXPECT_EQ(prefix("sk-ant-api03-" + alnum(93) + "AA"), "sk-ant-api03-");
  EXPECT_EQ(prefix("ghp_" + alnum(36)), "ghp_");
  EXPECT_EQ(prefix("github_pat_" + alnum(22) + "_" + alnum(59)), "github_pat_");
  EXPECT_EQ(prefix("xoxb-1234567890123-1234567890123-" + alnum(24)), "xoxb-");
  EXPECT_EQ(prefix("sk_live_" + alnum(32)), "sk_live_");
  EXPECT_EQ(prefix("sk_test_" + alnum(32)), "sk_test_");
}

TEST(TokenShape, FallsBackToPlain) {
  EXPECT_EQ(token_prefix_for("sk-proj-" + alnum(48), TokenShape::Plain), "");
  EXPECT_EQ(prefix("no-known-prefix-" + alnum(40)), "");
  EXPECT_EQ(prefix("sk-proj-" + alnum(24)), "sk-proj-");            // just enough
  EXPECT_EQ(prefix("sk-proj-" + alnum(23)), "sk-");                 // too short for "sk-proj-": the next one
  EXPECT_EQ(prefix("sk-proj-" + alnum(15)), "");                    // too short for any: plain
  EXPECT_EQ(prefix("sk-proj-eyJhbGciOi." + alnum(30) + "." + alnum(20)), "");   // dots: a JWT's parts
  EXPECT_EQ(prefix("eyJhbGciOiJIUzI1NiJ9." + alnum(30) + "." + alnum(43)), "");
  EXPECT_EQ(prefix("AKIA" + alnum(40)), "");   // "AKIA" ends in a letter: no boundary before the token
}

TEST(TokenShape, TableKeepsPrefixLengthAndCharset) {
  const std::string openai = "sk-proj-" + alnum(48);
  const std::string slack = "xoxb-1234567890123-1234567890123-" + alnum(24);
  const std::string plain = "plain-value-without-a-known-prefix-0123";
  std::vector<ResolvedSecret> in;
  in.push_back({"OPENAI_API_KEY", "env", SecretValue::from(openai)});
  in.push_back({"SLACK_BOT_TOKEN", "env", SecretValue::from(slack)});
  in.push_back({"OTHER", "env", SecretValue::from(plain)});
  auto t = TokenTable::build(std::move(in), {}, TokenShape::Auto);
  ASSERT_TRUE(t.ok()) << t.error().message;
  const auto& s = t->secrets();
  ASSERT_EQ(s.size(), 3u);
  const std::string values[] = {openai, slack, plain};
  const std::string prefixes[] = {"sk-proj-", "xoxb-", ""};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string shown(token_as_shown(s[i]).view());
    SCOPED_TRACE(s[i].name);
    EXPECT_EQ(s[i].shown_prefix, prefixes[i]);
    EXPECT_EQ(shown.size(), values[i].size());
    EXPECT_EQ(shown.substr(0, prefixes[i].size()), prefixes[i]);
    // After the prefix: a whole token, base62 after KZ_TOK_, found where it starts.
    const std::string_view tok = std::string_view(shown).substr(prefixes[i].size());
    EXPECT_EQ(tok.substr(0, wire::kTokenPrefixLen), "KZ_TOK_");
    EXPECT_EQ(wire::token_extent(tok.data(), tok.size()), tok.size());
    EXPECT_EQ(wire::find_token_prefix(shown.data(), shown.size()), prefixes[i].size());
    EXPECT_EQ(tok, s[i].token.view());
    // The token stands for the rest of the value: a swap in place gives the value back,
    // and redacting the rest in a response gives the agent's copy, both the same length.
    EXPECT_EQ(s[i].value.view(), std::string_view(values[i]).substr(prefixes[i].size()));
    EXPECT_EQ(t->find_token(tok), &s[i]);
    EXPECT_EQ(t->find_value(s[i].value.view()), &s[i]);
    std::string swapped = shown;
    swapped.replace(prefixes[i].size(), tok.size(), s[i].value.view());
    EXPECT_EQ(swapped, values[i]);
  }
  EXPECT_FALSE(t->needs_length_fixup());
}

TEST(TokenShape, TableDefaultsToPlain) {
  std::vector<ResolvedSecret> in;
  in.push_back({"OPENAI_API_KEY", "env", SecretValue::from("sk-proj-" + alnum(48))});
  auto t = TokenTable::build(std::move(in), {});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->secrets()[0].shown_prefix, "");
  EXPECT_EQ(token_as_shown(t->secrets()[0]).view().substr(0, 7), "KZ_TOK_");
}

}  // namespace
}  // namespace kz
