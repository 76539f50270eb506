// The pieces the shim and the broker share: scanner, fingerprint, message validation.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kz/wire/fingerprint.h"
#include "kz/wire/protocol.h"
#include "kz/wire/scanner.h"

namespace kz::wire {
namespace {

TEST(Scanner, FindsPrefixAndExtent) {
  const std::string s = "Authorization: Bearer KZ_TOK_abcDEF123\r\n";
  const std::size_t at = find_token_prefix(s.data(), s.size());
  ASSERT_EQ(at, s.find("KZ_TOK_"));
  EXPECT_EQ(token_extent(s.data() + at, s.size() - at), std::string("KZ_TOK_abcDEF123").size());
  EXPECT_EQ(find_token_prefix("KZ_TO", 5), 5u);
  EXPECT_EQ(find_token_prefix("", 0), 0u);
}

TEST(Scanner, TrailingPrefix) {
  EXPECT_EQ(trailing_prefix_len("abc KZ_", 7), 3u);
  EXPECT_EQ(trailing_prefix_len("abc KZ_TOK", 10), 6u);
  EXPECT_EQ(trailing_prefix_len("abc K", 5), 1u);
  EXPECT_EQ(trailing_prefix_len("abc KZ_TOK_", 11), 0u);   // a whole prefix is not a proper one
  EXPECT_EQ(trailing_prefix_len("abc", 3), 0u);
}

TEST(Fingerprint, RollingMatchesDirectHashAtEveryOffset) {
  std::mt19937_64 rng(5);
  std::string text(4096, '\0');
  for (auto& c : text) c = static_cast<char>(rng());
  const std::string value = "sk-live-secret-value-0123456789";
  for (std::size_t at : {std::size_t{0}, std::size_t{1000}, text.size() - value.size()})
    text.replace(at, value.size(), value);
  const std::uint64_t base = 0x1234567890abcULL;
  const auto* v = reinterpret_cast<const unsigned char*>(value.data());
  const std::uint64_t h = fp_hash(v, value.size(), base);
  std::vector<std::size_t> hits;
  fp_scan(reinterpret_cast<const unsigned char*>(text.data()), text.size(), value.size(), base, h,
          [&](std::size_t off) { hits.push_back(off); return true; });
  EXPECT_EQ(hits, (std::vector<std::size_t>{0, 1000, text.size() - value.size()}));
  // Rolling equals direct at an arbitrary window.
  const auto* t = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t count = 0;
  fp_scan(t, 200, 31, base, fp_hash(t + 100, 31, base), [&](std::size_t off) { EXPECT_EQ(off, 100u); ++count; return true; });
  EXPECT_EQ(count, 1u);
}

TEST(Fingerprint, PowAndModularArithmetic) {
  EXPECT_EQ(fp_pow(3, 0), 1u);
  EXPECT_EQ(fp_pow(3, 5), 243u);
  EXPECT_EQ(fp_mulmod(kFingerprintModulus - 1, kFingerprintModulus - 1), 1u);   // (-1)^2
  EXPECT_EQ(fp_addmod(kFingerprintModulus - 1, 1), 0u);
}

std::unique_ptr<Request> good_request() {
  auto r = std::make_unique<Request>();
  std::memset(r.get(), 0, sizeof(Request));
  r->version = kProtocolVersion;
  r->op = Op::Swap;
  r->channel = Channel::OpenSSL;
  r->data_len = 24;
  std::memcpy(r->host, "localhost", 9);
  r->host_len = 9;
  return r;
}

TEST(Protocol, RequestValidationIsStrict) {
  auto r = good_request();
  EXPECT_TRUE(request_is_valid(*r, sizeof(Request)));
  EXPECT_FALSE(request_is_valid(*r, sizeof(Request) - 1));
  EXPECT_FALSE(request_is_valid(*r, sizeof(Request) + 1));
  auto bad = [&](auto mutate) { auto x = good_request(); mutate(*x); return request_is_valid(*x, sizeof(Request)); };
  EXPECT_FALSE(bad([](Request& x) { x.version = 2; }));
  EXPECT_FALSE(bad([](Request& x) { x.op = static_cast<Op>(9); }));
  EXPECT_FALSE(bad([](Request& x) { x.channel = static_cast<Channel>(0); }));
  EXPECT_FALSE(bad([](Request& x) { x.flags = 0x80; }));
  EXPECT_FALSE(bad([](Request& x) { x.host_len = kMaxHost + 1; }));
  EXPECT_FALSE(bad([](Request& x) { x.path_len = kMaxPath + 1; }));
  EXPECT_FALSE(bad([](Request& x) { x.data_len = 0; }));
  EXPECT_FALSE(bad([](Request& x) { x.data_len = kMaxData + 1; }));
  EXPECT_FALSE(bad([](Request& x) { x.chain_len = 10; }));   // chain without its flag
  EXPECT_FALSE(bad([](Request& x) { x.host[0] = ' '; }));
  EXPECT_TRUE(bad([](Request& x) { x.flags = kFlagPeerHasChain; x.chain_len = 10; }));
}

TEST(Protocol, ReplyValidationIsStrict) {
  auto r = std::make_unique<Reply>();
  std::memset(r.get(), 0, sizeof(Reply));
  r->version = kProtocolVersion;
  r->op = Op::Swap;
  r->decision = Decision::Refuse;
  EXPECT_TRUE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply), Op::Redact));
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply) - 8, Op::Swap));
  r->decision = Decision::Allow;   // an Allow without data
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
  r->data_len = kMaxData + 1;
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
}

}  // namespace
}  // namespace kz::wire
