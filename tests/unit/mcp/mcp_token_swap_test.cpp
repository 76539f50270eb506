// Tokens → values for the MCP fetch tool: where they are swapped (headers, body, inside
// Basic credentials), what stops the swap (unknown, expired, refused by the check), and
// the checks on the agent's headers.
#include "mcp/token_swap.h"

#include <gtest/gtest.h>

#include "masking/encodings.h"

namespace kz::mcp {
namespace {

constexpr std::string_view kValue = "sk-live-VALUE-0123456789";

struct Fixture : ::testing::Test {
  TokenTable tokens;
  std::string token;
  std::shared_ptr<const TokenEntry> issued;
  HopInfo hop;

  void SetUp() override {
    TokenEntry t;
    t.name = "API_KEY";
    t.owner = "iss sub";
    t.value = SecretValue::from(kValue);
    t.binding.hosts = {"api.example.com"};
    t.expires_at = unix_now() + 60;
    auto m = tokens.issue(std::move(t));
    ASSERT_TRUE(m) << m.error().message;
    token = m->token;
    issued = m->entry;
    hop.url.host = "api.example.com";
    hop.url.target = "/v1/x";
    hop.method = "POST";
  }

  Result<PreparedHop> swap(const FetchRequest& r, std::vector<std::shared_ptr<const TokenEntry>>& used,
                           const TokenCheck& check = [](const TokenEntry&, const HopInfo&) { return ok_status(); }) {
    return swap_tokens(r, hop, tokens, unix_now(), check, used);
  }
};

TEST_F(Fixture, SwapsInHeadersAndBody) {
  FetchRequest r;
  r.headers = {{"Authorization", "Bearer " + token}, {"X-Other", "plain"}};
  r.body = "{\"key\":\"" + token + "\",\"again\":\"" + token + "\"}";
  std::vector<std::shared_ptr<const TokenEntry>> used;
  auto p = swap(r, used);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->headers[0].second.str(), "Bearer " + std::string(kValue));
  EXPECT_EQ(p->headers[1].second.str(), "plain");
  EXPECT_EQ(p->body.str(), "{\"key\":\"" + std::string(kValue) + "\",\"again\":\"" + std::string(kValue) + "\"}");
  ASSERT_EQ(used.size(), 1u);   // once, though used three times
  EXPECT_EQ(used[0]->name, "API_KEY");
  EXPECT_EQ(token.size(), 40u);
  EXPECT_EQ(token.rfind("KZ_TOK_", 0), 0u);
}

TEST_F(Fixture, SwapsInsideBasicCredentials) {
  FetchRequest r;
  r.headers = {{"authorization", "Basic " + base64_encode("user:" + token, false, true)}};
  std::vector<std::shared_ptr<const TokenEntry>> used;
  auto p = swap(r, used);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->headers[0].second.str(), "Basic " + base64_encode("user:" + std::string(kValue), false, true));
  EXPECT_EQ(used.size(), 1u);
}

TEST_F(Fixture, UnknownExpiredAndRefusedTokensStopTheFetch) {
  std::vector<std::shared_ptr<const TokenEntry>> used;
  FetchRequest r;
  r.headers = {{"Authorization", "Bearer KZ_TOK_notarealtokenatallxxxxxxxxxxxxxx"}};
  auto p = swap(r, used);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ErrorKind::Denied);
  EXPECT_NE(p.error().message.find("unknown or expired token"), std::string::npos);

  r.headers = {{"Authorization", "Bearer " + token}};
  p = swap(r, used, [](const TokenEntry& t, const HopInfo& h) -> Status {
    return make_error(ErrorKind::Denied, t.name + " may not be sent to " + h.url.host);
  });
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "API_KEY may not be sent to api.example.com");
  EXPECT_EQ(p.error().message.find(kValue), std::string::npos);

  // Expired at its expiry second: the same token no longer swaps.
  p = swap_tokens(r, hop, tokens, issued->expires_at, [](const TokenEntry&, const HopInfo&) { return ok_status(); }, used);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("unknown or expired token"), std::string::npos);
}

TEST(TokenTexts, FindsEveryRun) {
  const auto runs = find_token_texts("a KZ_TOK_abc1, KZ_TOK_ KZ_TOK_Z9\"");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], (std::pair<std::size_t, std::size_t>{2, 11}));
  EXPECT_EQ(runs[1], (std::pair<std::size_t, std::size_t>{23, 9}));
}

TEST(HeaderProblem, RefusesInjectionAndFramingHeaders) {
  EXPECT_EQ(header_problem("X-Api-Key", "abc"), "");
  EXPECT_NE(header_problem("X-A", "1\r\nX-B: 2"), "");
  EXPECT_NE(header_problem("X-A", std::string("a\0b", 3)), "");
  EXPECT_NE(header_problem("Bad Name", "x"), "");
  for (const char* h : {"Host", "content-length", "Transfer-Encoding", "Connection", "Proxy-Authorization", "Expect"})
    EXPECT_NE(header_problem(h, "x"), "") << h;
}

}  // namespace
}  // namespace kz::mcp
