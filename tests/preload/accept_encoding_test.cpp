// A request that carries a value asks for an identity-coded response, in place.
#include <gtest/gtest.h>

#include <string>

#include "fakes.h"
#include "kz/preload/accept_encoding.h"

namespace kz::preload {
namespace {

std::string forced(std::string s) {
  force_identity_encoding(s.data(), s.size());
  return s;
}

TEST(AcceptEncoding, LongValueBecomesIdentity) {
  EXPECT_EQ(forced("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: identity         \r\n\r\n");
  EXPECT_EQ(forced("GET / HTTP/1.1\r\naccept-encoding:deflate,gzip\r\n\r\n"),
            "GET / HTTP/1.1\r\naccept-encoding:identity    \r\n\r\n");
}

TEST(AcceptEncoding, ShortValueLosesTheHeader) {
  EXPECT_EQ(forced("GET / HTTP/1.1\r\nAccept-Encoding: br\r\nX: y\r\n\r\n"),
            "GET / HTTP/1.1\r\nX-KZ-Dropped-AE: br\r\nX: y\r\n\r\n");
}

TEST(AcceptEncoding, OnlyTheHead) {
  const std::string body = "Accept-Encoding: gzip, deflate";
  const std::string req = "POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\n\r\n" + body;
  EXPECT_EQ(forced(req), req);
  const std::string none = "GET / HTTP/1.1\r\nX-Accept-Encoding: gzip, deflate\r\n\r\n";
  EXPECT_EQ(forced(none), none);
}

TEST(AcceptEncoding, SwappedRequestAsksForIdentity) {
  auto t = std::make_unique<ConnTable>();
  test::FakeBroker b;
  test::FakeWriter w;
  const void* key = reinterpret_cast<const void*>(0x4400);
  const std::string req = "GET /v1 HTTP/1.1\r\nAuthorization: Bearer " + test::kTokSame +
                          "\r\nAccept-Encoding: gzip, deflate\r\n\r\n";
  test::hook_write(*t, key, req, false, b, w);
  EXPECT_EQ(w.sent, "GET /v1 HTTP/1.1\r\nAuthorization: Bearer " + test::kValSame +
                        "\r\nAccept-Encoding: identity     \r\n\r\n");
  // A request without a value keeps what it asked for.
  test::FakeWriter w2;
  const std::string plain = "GET /v1 HTTP/1.1\r\nAccept-Encoding: gzip, deflate\r\n\r\n";
  test::hook_write(*t, reinterpret_cast<const void*>(0x4500), plain, false, b, w2);
  EXPECT_EQ(w2.sent, plain);
  conn_drop(*t, key, b.ops());
}

}  // namespace
}  // namespace kz::preload
