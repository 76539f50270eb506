// ALPN offer filtering: h2 is removed so the server falls back to HTTP/1.1.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kz/preload/alpn.h"

namespace kz::preload {
namespace {

std::string filter(const std::string& in, std::size_t cap = 0) {
  if (cap == 0) cap = in.size() < 9 ? 9 : in.size();
  std::vector<unsigned char> out(cap + 1, 0xEE);
  const std::size_t n =
      alpn_filter_wire(reinterpret_cast<const unsigned char*>(in.data()), in.size(), out.data(), cap);
  EXPECT_LE(n, cap);
  EXPECT_EQ(out[cap], 0xEE) << "wrote past cap";
  return std::string(reinterpret_cast<const char*>(out.data()), n);
}

const std::string kH2("\x02h2", 3);
const std::string kHttp11("\x08http/1.1", 9);
const std::string kHttp10("\x08http/1.0", 9);

TEST(Alpn, RemovesH2) {
  EXPECT_EQ(filter(kH2 + kHttp11), kHttp11);
  EXPECT_EQ(filter(kHttp11 + kH2), kHttp11);
  EXPECT_EQ(filter(kH2 + kHttp11 + kHttp10), kHttp11 + kHttp10);
  EXPECT_EQ(filter(kHttp11 + kH2 + kHttp10), kHttp11 + kHttp10);
}

TEST(Alpn, RemovesH2VariantsKeepsOthers) {
  const std::string h2c("\x03h2c", 4);
  const std::string h2_14("\x05h2-14", 6);
  const std::string h3("\x02h3", 3);
  const std::string h2x("\x03h2x", 4);
  EXPECT_EQ(filter(h2c + h2_14 + kHttp11), kHttp11);
  EXPECT_EQ(filter(h3 + kH2 + kHttp11), h3 + kHttp11);
  EXPECT_EQ(filter(h2x + kH2), h2x);
}

TEST(Alpn, OnlyH2BecomesHttp11) {
  EXPECT_EQ(filter(kH2), kHttp11);
  EXPECT_EQ(filter(kH2 + std::string("\x03h2c", 4)), kHttp11);
}

TEST(Alpn, NoH2IsUnchanged) {
  EXPECT_EQ(filter(kHttp11), kHttp11);
  EXPECT_EQ(filter(kHttp10 + kHttp11), kHttp10 + kHttp11);
  EXPECT_EQ(filter(""), "");
}

TEST(Alpn, MalformedPassesThroughUnchanged) {
  const std::string bad[] = {
      std::string("\x05h2", 3),                 // length past the end
      std::string("\x02h2\x00", 4),             // zero-length entry
      kH2 + std::string("\x09http/1.1", 9),     // last entry one byte short
      std::string("\x02", 1),
  };
  for (const std::string& b : bad) EXPECT_EQ(filter(b), b);
}

TEST(Alpn, IsH2) {
  auto is = [](const std::string& s) { return alpn_is_h2(reinterpret_cast<const unsigned char*>(s.data()), s.size()); };
  EXPECT_TRUE(is("h2"));
  EXPECT_TRUE(is("h2c"));
  EXPECT_TRUE(is("h2-16"));
  EXPECT_TRUE(is("h2-"));
  EXPECT_FALSE(is("h2cx"));
  EXPECT_FALSE(is("h2x"));
  EXPECT_FALSE(is("h3"));
  EXPECT_FALSE(is("http/1.1"));
  EXPECT_FALSE(is("h"));
  EXPECT_FALSE(is(""));
  EXPECT_FALSE(is("H2"));
}

TEST(Alpn, SwapsOnlyWithoutAlpnOrUnderHttp11) {
  auto ok = [](const std::string& p) {
    return alpn_allows_swap(reinterpret_cast<const unsigned char*>(p.data()), p.size(), false);
  };
  EXPECT_TRUE(ok(""));
  EXPECT_TRUE(alpn_allows_swap(nullptr, 0, false));
  EXPECT_TRUE(ok("http/1.1"));
  EXPECT_FALSE(ok("h2"));
  EXPECT_FALSE(ok("h3"));
  EXPECT_FALSE(ok("http/1.0"));
  EXPECT_FALSE(ok("http/1.1x"));
  EXPECT_FALSE(ok("HTTP/1.1"));
  EXPECT_FALSE(ok("spdy/3.1"));
}


}  // namespace
}  // namespace kz::preload
