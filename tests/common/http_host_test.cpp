// The host names a request gives (Host header, absolute-form target) against the host the
// TLS connection verified: the comparison the shim's grants and the broker both make.
#include <gtest/gtest.h>

#include <string>

#include "kz/wire/http_host.h"

namespace kz::wire {
namespace {

HostCheck check(const std::string& host_header, const std::string& target, const std::string& verified,
                std::string* named = nullptr) {
  const char* n = nullptr;
  std::size_t nl = 0;
  const HostCheck c = check_request_host(host_header.data(), host_header.size(), target.data(), target.size(),
                                         verified.data(), verified.size(), &n, &nl);
  if (named != nullptr) named->assign(n != nullptr ? n : "", nl);
  return c;
}

TEST(HttpHost, AuthorityHost) {
  const char* h = nullptr;
  std::size_t n = 0;
  auto host = [&](const std::string& a) {
    return authority_host(a.data(), a.size(), &h, &n) ? std::string(h, n) : std::string("<bad>");
  };
  EXPECT_EQ(host("api.example.com"), "api.example.com");
  EXPECT_EQ(host("api.example.com:8443"), "api.example.com");
  EXPECT_EQ(host("[::1]:443"), "::1");
  EXPECT_EQ(host("[::1]"), "::1");
  EXPECT_EQ(host("127.0.0.1:1"), "127.0.0.1");
  for (const char* bad : {"", ":443", "a:b", "a:1:2", "u@h", "h /x", "[::1", "[]", "h\\x", "h?x"})
    EXPECT_EQ(host(bad), "<bad>") << bad;
}

TEST(HttpHost, NamesCompareCaseInsensitivelyWithoutTrailingDot) {
  EXPECT_TRUE(host_names_equal("LocalHost.", 10, "localhost", 9));
  EXPECT_FALSE(host_names_equal("localhost.evil", 14, "localhost", 9));
  EXPECT_FALSE(host_names_equal("", 0, "", 0));
}

TEST(HttpHost, AbsoluteTarget) {
  std::size_t ap = 0, al = 0, pp = 0;
  const std::string t = "https://evil.example:8443/v1/x?q";
  ASSERT_TRUE(absolute_target(t.data(), t.size(), &ap, &al, &pp));
  EXPECT_EQ(t.substr(ap, al), "evil.example:8443");
  EXPECT_EQ(t.substr(pp), "/v1/x?q");
  EXPECT_FALSE(absolute_target("/v1/x", 5, &ap, &al, &pp));
  EXPECT_FALSE(absolute_target("*", 1, &ap, &al, &pp));
}

TEST(HttpHost, RequestHostAgainstTheVerifiedHost) {
  std::string named;
  EXPECT_EQ(check("localhost:8443", "/v1/x", "localhost"), HostCheck::Match);
  EXPECT_EQ(check("evil.example", "/v1/x", "localhost", &named), HostCheck::Mismatch);
  EXPECT_EQ(named, "evil.example");
  EXPECT_EQ(check("", "/v1/x", "localhost"), HostCheck::Missing);
  EXPECT_EQ(check("", "https://localhost/v1/x", "localhost"), HostCheck::Match);
  EXPECT_EQ(check("localhost", "https://evil.example/v1/x", "localhost", &named), HostCheck::Mismatch);
  EXPECT_EQ(named, "evil.example");
  EXPECT_EQ(check("localhost", "evil.example:443", "localhost"), HostCheck::Malformed);   // authority form
  EXPECT_EQ(check("u@localhost", "/", "localhost"), HostCheck::Malformed);
  EXPECT_EQ(check("127.0.0.1:443", "/", "127.0.0.1"), HostCheck::Match);
  EXPECT_EQ(check("[::1]:443", "/", "::1"), HostCheck::Match);
}

}  // namespace
}  // namespace kz::wire
