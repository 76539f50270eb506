// What of a fetched response reaches the agent: safe headers only, and no secret value
// in any common encoding, including a value cut by the size cap.
#include "mcp/response_filter.h"

#include <gtest/gtest.h>

#include "masking/encodings.h"

namespace kz::mcp {
namespace {

std::shared_ptr<const TokenEntry> token_for(std::string_view value, std::string_view token) {
  auto t = std::make_shared<TokenEntry>();
  t->value = SecretValue::from(value);
  t->token = SecretValue::from(token);
  return t;
}

TEST(ResponseFilter, SafeHeadersOnly) {
  const auto h = safe_headers({{"content-type", "application/json"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"},
                               {"www-authenticate", "Bearer"}, {"authorization", "x"}, {"x-ratelimit-remaining", "9"},
                               {"link", "<a>"}, {"link", "<b>"}, {"x-internal-secret-header", "?"}});
  EXPECT_EQ(h.size(), 3u) << h.dump();
  EXPECT_EQ(h["content-type"], "application/json");
  EXPECT_EQ(h["x-ratelimit-remaining"], "9");
  EXPECT_EQ(h["link"], "<a>, <b>");
}

TEST(ResponseFilter, RedactsEveryEncoding) {
  const std::string value = "s3cr3t/VALUE+with space";
  const auto t = token_for(value, "KZ_TOK_replacement");
  std::string body = "raw " + value + " b64 " + base64_encode(value, false, true) + " pct " +
                     percent_encode(value, true, false) + " json " + json_escape(value, true) + " hex " +
                     hex_encode(value, false);
  const std::size_t n = redact_values(body, {t}, false);
  EXPECT_GE(n, 5u);
  EXPECT_EQ(body.find(value), std::string::npos);
  EXPECT_EQ(body.find(base64_encode(value, false, true)), std::string::npos);
  EXPECT_EQ(body.find(hex_encode(value, false)), std::string::npos);
  EXPECT_NE(body.find("raw KZ_TOK_replacement b64 KZ_TOK_replacement"), std::string::npos) << body;
}

TEST(ResponseFilter, ATruncatedTailThatStartsAValueIsCut) {
  const std::string value = "abcdefgh-VALUE";
  const auto t = token_for(value, "KZ_TOK_x");
  std::string body = "prefix " + value.substr(0, 6);
  EXPECT_EQ(redact_values(body, {t}, true), 1u);
  EXPECT_EQ(body, "prefix ");
  std::string whole = "prefix abc";
  EXPECT_EQ(redact_values(whole, {t}, false), 0u);   // not truncated: left alone
  EXPECT_EQ(whole, "prefix abc");
}

TEST(ResponseFilter, TextOrBinary) {
  EXPECT_TRUE(is_text("plain ascii\n"));
  EXPECT_TRUE(is_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"));
  EXPECT_FALSE(is_text(std::string("nul\0", 4)));
  EXPECT_FALSE(is_text("\xff\xfe"));
  EXPECT_FALSE(is_text("\xc0\xaf"));   // overlong
  EXPECT_FALSE(is_text("\xe2\x82"));   // cut short
}

}  // namespace
}  // namespace kz::mcp
