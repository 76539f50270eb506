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
#include "kz/wire/token.h"

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

// The markers' every proper prefix, in every form, at the end of a buffer (and nothing
// longer, shorter or shifted): what the quick first-byte test must not lose.
TEST(Scanner, TrailingPrefixOfEveryMarker) {
  for (const std::string& m : {std::string(kTokenPrefix), std::string(kMarkerLower), std::string(kMarkerUpper),
                              std::string(kMarkerDigits)}) {
    for (std::size_t k = 1; k < m.size(); ++k) {
      const std::string s = "Bearer " + m.substr(0, k);
      EXPECT_EQ(trailing_prefix_len(s.data(), s.size()), k) << s;
      EXPECT_TRUE(is_marker_fragment(m.data(), k)) << m << " " << k;
      EXPECT_FALSE(is_marker_fragment(m.data() + 1, k)) << m << " +1 " << k;
    }
    EXPECT_FALSE(is_marker_fragment(m.data(), m.size()));   // a whole marker is no fragment
  }
  EXPECT_EQ(trailing_prefix_len("x7306", 5), 4u);
  EXPECT_EQ(trailing_prefix_len("x7308", 5), 0u);
  EXPECT_FALSE(is_marker_fragment("", 0));
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
  EXPECT_FALSE(bad([](Request& x) { x.version = kProtocolVersion + 1; }));
  EXPECT_FALSE(bad([](Request& x) { x.uses = 3; }));   // uses only in a Report
  EXPECT_TRUE(bad([](Request& x) { x.op = Op::Report; x.uses = 3; }));
  EXPECT_FALSE(bad([](Request& x) { x.op = static_cast<Op>(9); }));
  EXPECT_FALSE(bad([](Request& x) { x.channel = static_cast<Channel>(0); }));
  // Every flag bit has a meaning; what a request carries about its HTTP request is
  // meaningless (invalid) on a Redact.
  EXPECT_FALSE(bad([](Request& x) { x.op = Op::Redact; x.flags = kFlagUnidentified; }));
  EXPECT_FALSE(bad([](Request& x) { x.op = Op::Redact; x.flags = kFlagHostInvalid; }));
  EXPECT_FALSE(bad([](Request& x) { x.http_host_len = kMaxHost + 1; }));
  EXPECT_FALSE(bad([](Request& x) { x.http_host_len = 1; x.http_host[0] = ' '; }));
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
  r->data_len = 10;
  r->flags = kReplyReuseOnConnection;   // a grant: only on a Swap Allow
  EXPECT_TRUE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
  r->flags = 0x80;
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
  r->flags = kReplyReuseOnConnection;
  r->decision = Decision::Refuse;
  EXPECT_FALSE(reply_is_valid(*r, sizeof(Reply), Op::Swap));
}

}  // namespace
}  // namespace kz::wire

namespace kz::wire {
namespace {

// The earliest of the four markers (wire/token.h).
std::size_t naive_find(const std::string& s) {
  std::size_t best = s.size();
  for (const char* m : {kTokenPrefix, kMarkerLower, kMarkerUpper, kMarkerDigits}) {
    const auto at = s.find(m);
    if (at != std::string::npos && at < best) best = at;
  }
  return best;
}

TEST(Scanner, FindsEveryMarkerWithEveryVariant) {
  // Each marker planted at every offset of every buffer length up to 200, in bytes dense
  // with the markers' own characters (near misses everywhere), with a decoy that has the
  // filter bytes right and a middle wrong.
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto rnd = [&] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
  const char* alphabet = "kKzZtToOqQxX_7306195284";
  const std::size_t na = std::strlen(alphabet);
  for (const char* m : {kTokenPrefix, kMarkerLower, kMarkerUpper, kMarkerDigits}) {
    const std::size_t ml = std::strlen(m);
    for (std::size_t len = 0; len <= 200; ++len) {
      std::string s(len, '\0');
      for (auto& c : s) c = alphabet[rnd() % na];
      for (bool again = true; again;) {   // no accidental marker
        again = false;
        for (std::size_t i = 0; i < len; ++i)
          if (marker_at(s.data() + i, len - i) != 0) { s[i] = '.'; again = true; }
      }
      ASSERT_EQ(find_token_prefix(s.data(), s.size()), len) << m << " len " << len;
      for (std::size_t at = 0; at + ml <= len; at += (len > 100 ? 5 : 1)) {
        std::string t = s;
        t.replace(at, ml, m);
        const std::size_t want = naive_find(t);
        ASSERT_EQ(find_token_prefix(t.data(), t.size()), want) << m << " len " << len << " at " << at;
        ASSERT_EQ(detail::find_token_prefix_sse2(t.data(), t.size()), want) << m << " sse2 " << len << " at " << at;
        ASSERT_EQ(detail::find_token_prefix_avx2(t.data(), t.size()), want) << m << " avx2 " << len << " at " << at;
        std::string miss = t;
        miss[at + ml / 2] = '.';   // first and last bytes right, the middle wrong
        ASSERT_EQ(find_token_prefix(miss.data(), miss.size()), naive_find(miss)) << m << " miss " << at;
        ASSERT_EQ(detail::find_token_prefix_sse2(miss.data(), miss.size()), naive_find(miss));
      }
    }
  }
}

TEST(Scanner, ShapedExtentAndFragments) {
  const std::string slack = "Bearer xoxb-7306195284123-4567890123456-aBcDeFgHiJkLmNoPqRsTuVwX\r\n";
  const std::size_t at = find_token_prefix(slack.data(), slack.size());
  ASSERT_EQ(at, slack.find("7306195284"));
  EXPECT_EQ(marker_at(slack.data() + at, slack.size() - at), kMarkerDigitLen);
  EXPECT_EQ(token_extent(slack.data() + at, slack.size() - at), slack.size() - 2 - at);   // '-' kept, CRLF ends
  const std::string plain = "KZ_TOK_abc-def";
  EXPECT_EQ(token_extent(plain.data(), plain.size()), 10u);   // a plain token is base62 only
  const std::string gh = "\"ghp_kztokqxA9b_c\"";
  EXPECT_EQ(find_token_prefix(gh.data(), gh.size()), 5u);
  EXPECT_EQ(token_extent(gh.data() + 5, gh.size() - 5), 12u);
  EXPECT_EQ(trailing_prefix_len("abc kzto", 8), 4u);
  EXPECT_EQ(trailing_prefix_len("abc KZTOKQ", 10), 6u);
  EXPECT_EQ(trailing_prefix_len("abc 730619528", 13), 9u);
  EXPECT_EQ(trailing_prefix_len("abc 7306195284", 14), 0u);   // a whole marker is not a proper prefix
  EXPECT_TRUE(is_marker_fragment("KZT", 3));
  EXPECT_FALSE(is_marker_fragment("KZX", 3));
}

TEST(Scanner, VectorSearchAgreesWithANaiveSearchEverywhere) {
  // Every buffer length up to 300, the prefix planted at every offset, with near misses
  // ("K" and "_" six apart but wrong middle, a prefix cut by the end) around it.
  std::uint64_t x = 0x243F6A8885A308D3ull;
  auto rnd = [&] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
  const char* alphabet = "KZ_TOabc";   // dense in the needle's own bytes
  for (std::size_t len = 0; len <= 300; ++len) {
    std::string s(len, '\0');
    for (auto& c : s) c = alphabet[rnd() % 8];
    for (std::size_t i = 0; i < len; ++i)
      if (s.compare(i, kTokenPrefixLen, kTokenPrefix) == 0) s[i] = 'x';   // no accidental prefix
    ASSERT_EQ(find_token_prefix(s.data(), s.size()), naive_find(s)) << "len " << len;
    ASSERT_EQ(detail::find_token_prefix_sse2(s.data(), s.size()), naive_find(s)) << "sse2 len " << len;
    for (std::size_t at = 0; at + kTokenPrefixLen <= len; at += (len > 100 ? 7 : 1)) {
      std::string t = s;
      t.replace(at, kTokenPrefixLen, kTokenPrefix);
      ASSERT_EQ(find_token_prefix(t.data(), t.size()), naive_find(t)) << "len " << len << " at " << at;
      ASSERT_EQ(detail::find_token_prefix_sse2(t.data(), t.size()), naive_find(t)) << "sse2 " << len << " at " << at;
      ASSERT_EQ(detail::find_token_prefix_avx2(t.data(), t.size()), naive_find(t)) << "avx2 " << len << " at " << at;
      std::string miss = s;
      miss.replace(at, kTokenPrefixLen, "K?_TOK_");
      ASSERT_EQ(find_token_prefix(miss.data(), miss.size()), naive_find(miss)) << "miss " << len << " at " << at;
    }
    if (len >= 6) {
      std::string cut = s;
      cut.replace(len - 6, 6, "KZ_TOK");   // a prefix the end cuts: not found
      ASSERT_EQ(find_token_prefix(cut.data(), cut.size()), naive_find(cut));
    }
  }
}

// Decoys (a candidate byte pattern that is no marker: "k.....x") early in a buffer of
// random bytes, then a real marker later at every offset of two 128-byte steps: the
// vector loop must go on past a decoy and still stop at the marker, in every lane.
TEST(Scanner, DecoysBeforeAMarkerInRandomBytes) {
  std::mt19937 rng(11);
  std::string base(8192, '\0');
  for (auto& c : base) c = static_cast<char>(rng() & 0xff);
  for (std::size_t p = 0; p < base.size(); ++p)
    if (marker_at(base.data() + p, base.size() - p) != 0) base[p] = ' ';
  for (std::size_t d : {0u, 5u, 64u, 130u, 1000u}) base.replace(d, 7, "k.....x");
  ASSERT_EQ(naive_find(base), base.size());
  ASSERT_EQ(detail::find_token_prefix_avx2(base.data(), base.size()), base.size());
  for (const char* m : {kTokenPrefix, kMarkerLower, kMarkerUpper, kMarkerDigits}) {
    for (std::size_t at = 2048; at < 2048 + 256; ++at) {
      std::string t = base;
      t.replace(at, std::strlen(m), m);
      const std::size_t want = naive_find(t);
      ASSERT_EQ(want, at);
      ASSERT_EQ(detail::find_token_prefix_avx2(t.data(), t.size()), want) << m << " avx2 at " << at;
      ASSERT_EQ(detail::find_token_prefix_sse2(t.data(), t.size()), want) << m << " sse2 at " << at;
    }
  }
}

TEST(Scanner, UnalignedStartsAndLargeBuffers) {
  std::string big(1 << 20, 'K');   // worst case for the first-byte filter
  for (std::size_t i = 6; i < big.size(); i += 7) big[i] = '_';
  EXPECT_EQ(find_token_prefix(big.data(), big.size()), naive_find(big));
  EXPECT_EQ(detail::find_token_prefix_sse2(big.data(), big.size()), naive_find(big));
  big.replace(big.size() - 100, kTokenPrefixLen, kTokenPrefix);
  for (std::size_t off = 0; off < 40; ++off)
    EXPECT_EQ(find_token_prefix(big.data() + off, big.size() - off), naive_find(big.substr(off)));
  EXPECT_EQ(detail::find_token_prefix_sse2(big.data(), big.size()), naive_find(big));
}

}  // namespace
}  // namespace kz::wire
