// Basic credentials: base64 and finding the Authorization / Proxy-Authorization headers.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kz/preload/basic_auth.h"

namespace kz::preload {
namespace {

std::string enc(const std::string& s) {
  std::vector<char> out(s.size() / 3 * 4 + 8, '\0');
  const long n = b64_encode(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data(), out.size());
  EXPECT_GE(n, 0);
  return n < 0 ? std::string() : std::string(out.data(), static_cast<std::size_t>(n));
}

// Decoded text, or "<error>".
std::string dec(const std::string& s, std::size_t cap = 1024) {
  std::vector<unsigned char> out(cap + 1, 0);
  const long n = b64_decode(s.data(), s.size(), out.data(), cap);
  if (n < 0) return "<error>";
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, b64] : v) {
    EXPECT_EQ(enc(plain), b64) << plain;
    EXPECT_EQ(dec(b64), plain) << b64;
  }
}

TEST(Base64, RoundTripsAllByteValuesAndLengths) {
  std::mt19937 rng(7);
  for (std::size_t len = 0; len < 200; ++len) {
    std::string s(len, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    const std::string e = enc(s);
    EXPECT_EQ(e.size(), (len + 2) / 3 * 4);
    EXPECT_EQ(dec(e), s) << len;
  }
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(dec(enc(all)), all);
  // The two non-alphanumeric characters of the alphabet.
  EXPECT_EQ(enc("\xfb\xff"), "+/8=");
  EXPECT_EQ(dec("+/8="), "\xfb\xff");
}

TEST(Base64, DecodeAcceptsMissingPadding) {
  EXPECT_EQ(dec("Zg"), "f");
  EXPECT_EQ(dec("Zm8"), "fo");
  EXPECT_EQ(dec("dXNlcjpwYXNz"), "user:pass");
}

TEST(Base64, BadInput) {
  EXPECT_EQ(dec("Z"), "<error>");          // one leftover character is never valid
  EXPECT_EQ(dec("Zm9vY"), "<error>");
  EXPECT_EQ(dec("Zm9v!mFy"), "<error>");   // not in the alphabet
  EXPECT_EQ(dec("Zm 9v"), "<error>");
  EXPECT_EQ(dec("Zm=v"), "<error>");       // padding in the middle
  EXPECT_EQ(dec("Zm9v_-Fy"), "<error>");   // base64url is not accepted
  EXPECT_EQ(dec("KZ_TOK_abcdef"), "<error>");
}

TEST(Base64, OutputTooSmall) {
  unsigned char out[8];
  EXPECT_EQ(b64_decode("Zm9vYmFy", 8, out, 5), -1);
  EXPECT_EQ(b64_decode("Zm9vYmFy", 8, out, 6), 6);
  EXPECT_EQ(b64_decode("Zg==", 4, out, 0), -1);
  EXPECT_EQ(b64_decode("", 0, out, 0), 0);
  char e[8];
  const auto* in = reinterpret_cast<const unsigned char*>("foobar");
  EXPECT_EQ(b64_encode(in, 6, e, 7), -1);
  EXPECT_EQ(b64_encode(in, 6, e, 8), 8);
  EXPECT_EQ(b64_encode(in, 4, e, 7), -1);   // "Zm9vYg==" needs 8
  EXPECT_EQ(b64_encode(in, 0, e, 0), 0);
}

std::vector<std::string> creds(const std::string& head) {
  B64Span spans[4];
  const std::size_t n = find_basic_credentials(head.data(), head.size(), spans, 4);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(head.substr(spans[i].pos, spans[i].len));
  return out;
}

using V = std::vector<std::string>;

TEST(FindBasic, AuthorizationAndProxyAuthorization) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
      "Proxy-Authorization: Basic cHJveHk6cHc=\r\n\r\n";
  EXPECT_EQ(creds(head), (V{"dXNlcjpwYXNz", "cHJveHk6cHc="}));
}

TEST(FindBasic, CaseInsensitiveNamesAndScheme) {
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nauthorization: basic YTpi\r\n\r\n"), V{"YTpi"});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAUTHORIZATION:BASIC YTpi\r\n\r\n"), V{"YTpi"});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nPROXY-authorization: Basic YTpi\r\n\r\n"), V{"YTpi"});
  // Whitespace around the scheme; the value ends at CR, space or tab.
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAuthorization: \tBasic\t  YTpi \r\n\r\n"), V{"YTpi"});
  // Bare LF line endings.
  EXPECT_EQ(creds("GET / HTTP/1.1\nAuthorization: Basic YTpi\n\n"), V{"YTpi"});
}

TEST(FindBasic, OtherSchemesAndHeadersDoNotMatch) {
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAuthorization: Bearer YTpi\r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAuthorization: Basically YTpi\r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAuthorization: Basic\r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nAuthorization: Basic \r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nX-Authorization: Basic YTpi\r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nX-Note: Authorization: Basic YTpi\r\n\r\n"), V{});
  EXPECT_EQ(creds("GET / HTTP/1.1\r\nWWW-Authenticate: Basic YTpi\r\n\r\n"), V{});
}

TEST(FindBasic, RespectsMaxAndHeadEnd) {
  const std::string head =
      "GET / HTTP/1.1\r\nAuthorization: Basic QQ==\r\nAuthorization: Basic Qg==\r\nAuthorization: Basic Qw==\r\n\r\n";
  B64Span spans[2];
  EXPECT_EQ(find_basic_credentials(head.data(), head.size(), spans, 2), 2u);
  EXPECT_EQ(head.substr(spans[1].pos, spans[1].len), "Qg==");
  // Only [0, head_end) is looked at: a header after it is not found, and a value cut by
  // head_end ends there.
  const std::size_t cut = head.find("Qg==");
  EXPECT_EQ(find_basic_credentials(head.data(), cut, spans, 2), 1u);
  EXPECT_EQ(find_basic_credentials(head.data(), cut + 2, spans, 2), 2u);
  EXPECT_EQ(spans[1].len, 2u);
}

TEST(MayHoldBasic, CheapPreCheck) {
  const std::string a = "Authorization: Basic abc";
  EXPECT_TRUE(may_hold_basic(a.data(), a.size()));
  const std::string b = "authorization: basic abc";
  EXPECT_TRUE(may_hold_basic(b.data(), b.size()));
  const std::string c = "Authorization: Bearer abc";
  EXPECT_FALSE(may_hold_basic(c.data(), c.size()));
  EXPECT_FALSE(may_hold_basic("", 0));
}

// The scheme is case-insensitive and may be followed by a tab (find_basic_credentials'
// rule): the pre-check must not be stricter than the parser it guards, or a token in
// such a credential goes out without being looked at.
TEST(MayHoldBasic, AnyCaseAndATab) {
  for (const std::string s : {"Authorization: bAsIc abc", "Authorization: BASIC abc", "Authorization: Basic\tabc",
                              "Proxy-Authorization:basic abc"})
    EXPECT_TRUE(may_hold_basic(s.data(), s.size())) << s;
  for (const std::string s : {"X: basically", "X: Basic", "asic abc", "X: Basi c"})
    EXPECT_FALSE(may_hold_basic(s.data(), s.size())) << s;
  const std::string cut = "Authorization: Basic abc";
  EXPECT_FALSE(may_hold_basic(cut.data(), cut.find(' ', 15)));   // the blank is past n
}

}  // namespace
}  // namespace kz::preload
