// The TLS tap's detector: tokens and values (in the forms programs send them) are seen,
// hosts decide bound or not, and short values and common prefixes do not cause findings.
#include "sensors/leak_detector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "masking/encodings.h"

namespace kz {
namespace {

const std::string kValue = "sk-live-9f8e7d6c5b4a39281706ZZqq";
const std::string kToken = "KZ_TOK_abcdefghijklmnopqrstuvwx12";

Binding bound_to(std::vector<std::string> hosts) {
  Binding b;
  b.hosts = std::move(hosts);
  return b;
}

LeakDetector one(std::string_view value = kValue, std::string token = kToken) {
  return LeakDetector::build({{"API_KEY", value, std::move(token), bound_to({"api.example.com", "*.svc.example"})}});
}

TEST(LeakDetector, ValueToABoundHostIsAUse) {
  auto d = one();
  auto s = d.scan("GET / HTTP/1.1\r\nAuthorization: Bearer " + kValue + "\r\n\r\n", "api.example.com");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, SightingKind::Value);
  EXPECT_EQ(s[0].secret, 0u);
  EXPECT_TRUE(s[0].bound);
  EXPECT_TRUE(d.scan("x-key: " + kValue, "a.svc.example")[0].bound);
}

TEST(LeakDetector, ValueToAnotherHostIsNotBound) {
  auto d = one();
  for (const char* host : {"evil.example", "127.0.0.1", "example.com", "svc.example", ""}) {
    auto s = d.scan("POST /collect HTTP/1.1\r\n\r\nkey=" + kValue, host);
    ASSERT_EQ(s.size(), 1u) << host;
    EXPECT_FALSE(s[0].bound) << host;
  }
}

TEST(LeakDetector, FindsTheValueAtEveryOffsetAndAtTheEdges) {
  auto d = one();
  for (std::size_t pad = 0; pad < 40; ++pad) {
    const std::string data = std::string(pad, 'x') + kValue;
    EXPECT_EQ(d.scan(data, "evil.example").size(), 1u) << pad;
    EXPECT_EQ(d.scan(kValue + std::string(pad, 'y'), "evil.example").size(), 1u) << pad;
  }
  EXPECT_EQ(d.scan(kValue, "evil.example").size(), 1u);
}

TEST(LeakDetector, EncodedFormsAreSeen) {
  auto d = one();
  const std::string basic = "Authorization: Basic " + base64_encode("user:" + kValue, false, true);
  EXPECT_EQ(d.scan(basic, "evil.example").size(), 1u) << "base64 inside Basic credentials";
  EXPECT_EQ(d.scan("{\"k\":\"" + json_escape(kValue, true) + "\"}", "evil.example").size(), 1u);
  const std::string with_plus = "ab/cd+ef=gh" + kValue;
  auto d2 = one(with_plus);
  EXPECT_EQ(d2.scan("q=" + percent_encode(with_plus, true, false), "evil.example").size(), 1u);
}

TEST(LeakDetector, PartOfAValueOrAnotherValueIsNothing) {
  auto d = one();
  EXPECT_TRUE(d.scan(kValue.substr(0, 12), "evil.example").empty());
  std::string other = kValue;
  other[other.size() / 2] ^= 1;   // the window sits in the middle
  EXPECT_TRUE(d.scan(other, "evil.example").empty());
  EXPECT_TRUE(d.scan("", "evil.example").empty());
}

TEST(LeakDetector, TokensAreRecognisedWholeAndBound) {
  auto d = one();
  auto s = d.scan("Authorization: Bearer " + kToken + "\r\n", "evil.example");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, SightingKind::Token);
  EXPECT_FALSE(s[0].bound);
  EXPECT_TRUE(d.scan("t=" + kToken, "api.example.com")[0].bound);
  // Another run's token, or a cut one, is not this secret's.
  EXPECT_TRUE(d.scan("KZ_TOK_zzzzzzzzzzzzzzzzzzzzzzzzz", "evil.example").empty());
  EXPECT_TRUE(d.scan(kToken.substr(0, 20) + " ", "evil.example").empty());
}

TEST(LeakDetector, EachSecretOnceInOrderOfAppearance) {
  const std::string v2 = "ghp_0123456789abcdefghijABCDEFGHIJ";
  auto d = LeakDetector::build({{"A", kValue, "", bound_to({"a.example"})}, {"B", v2, "", bound_to({"b.example"})}});
  auto s = d.scan(v2 + " " + kValue + " " + v2 + " " + kValue, "a.example");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(d.name(s[0].secret), "B");
  EXPECT_FALSE(s[0].bound);
  EXPECT_EQ(d.name(s[1].secret), "A");
  EXPECT_TRUE(s[1].bound);
}

TEST(LeakDetector, ShortValuesAreNotWatchedButTheirTokensAre) {
  auto d = LeakDetector::build({{"PIN", "1234567", kToken, bound_to({"a.example"})}});
  ASSERT_EQ(d.unwatched().size(), 1u);
  EXPECT_TRUE(d.scan("pin=1234567", "evil.example").empty());
  EXPECT_EQ(d.scan("pin=" + kToken, "evil.example").size(), 1u);
}

TEST(LeakDetector, AnyHostBindingNeverLeaks) {
  Binding any;
  any.allow_any = true;
  auto d = LeakDetector::build({{"K", kValue, "", any}});
  auto s = d.scan(kValue, "anywhere.example");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].bound);
}

TEST(LeakDetector, PemArmourIsNotAFinding) {
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
  auto d = LeakDetector::build({{"KEY", pem, "", bound_to({"a.example"})}});
  EXPECT_TRUE(d.scan("-----BEGIN PRIVATE KEY-----\nsomething else\n-----END PRIVATE KEY-----\n", "x").empty());
  EXPECT_FALSE(d.scan(pem, "x").empty());
}

}  // namespace
}  // namespace kz
