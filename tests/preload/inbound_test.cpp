// Inbound redaction: a value echoed back by a server is found by its fingerprint and
// replaced in place by what the broker answers.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fakes.h"
#include "kz/preload/inbound.h"
#include "kz/wire/fingerprint.h"

namespace kz::preload {
namespace {

using test::FakeBroker;
using test::kTokSame;
using test::kTokShort;
using test::kValSame;
using test::kValShort;
using test::replace_all;

constexpr std::uint64_t kBase = 0x1d3f5a7c9b2e4ULL;   // as the broker's fp_base: 2 <= base < 2^61-1

Fingerprint fp_of(const std::string& value, std::uint64_t base = kBase) {
  Fingerprint f;
  f.base = base;
  f.hash = wire::fp_hash(reinterpret_cast<const unsigned char*>(value.data()), value.size(), base);
  f.len = static_cast<std::uint32_t>(value.size());
  f.secret_id = 1;
  return f;
}

// The token cut to the value's length: what the broker writes over an echoed value.
std::string replacement(const std::string& tok, const std::string& value) { return tok.substr(0, value.size()); }

struct Redacted {
  std::string out;
  std::size_t n;
};

Redacted redact(std::string buf, const std::vector<Fingerprint>& fps, FakeBroker& b) {
  Redacted r;
  r.n = redact_buffer(reinterpret_cast<unsigned char*>(buf.data()), buf.size(), fps.data(), fps.size(), b.ops(), nullptr);
  r.out = std::move(buf);
  return r;
}

TEST(RedactBuffer, NoValueNoCalls) {
  FakeBroker b;
  const std::string body = "{\"error\":\"invalid api key\",\"code\":401}";
  const Redacted r = redact(body, {fp_of(kValSame), fp_of(kValShort)}, b);
  EXPECT_EQ(r.n, 0u);
  EXPECT_EQ(r.out, body);
  EXPECT_TRUE(b.redacts.empty());
}

TEST(RedactBuffer, ValueAtStartMiddleEnd) {
  const std::string rep = replacement(kTokSame, kValSame);
  for (const std::string& body : {kValSame + " was rejected", "{\"key\":\"" + kValSame + "\"}", "got: " + kValSame,
                                  kValSame}) {
    FakeBroker b;
    const Redacted r = redact(body, {fp_of(kValSame)}, b);
    EXPECT_EQ(r.n, 1u) << body;
    EXPECT_EQ(r.out, replace_all(body, kValSame, rep));
    EXPECT_EQ(r.out.find(kValSame), std::string::npos);
    EXPECT_EQ(b.redacts, std::vector<std::string>{kValSame});   // the broker saw exactly the candidate
  }
}

TEST(RedactBuffer, ValueTwiceAndTwoValues) {
  FakeBroker b;
  const std::string body = "a=" + kValSame + "&b=" + kValShort + "&c=" + kValSame;
  const Redacted r = redact(body, {fp_of(kValSame), fp_of(kValShort)}, b);
  EXPECT_EQ(r.n, 3u);
  EXPECT_EQ(r.out, "a=" + replacement(kTokSame, kValSame) + "&b=" + replacement(kTokShort, kValShort) + "&c=" +
                       replacement(kTokSame, kValSame));
  EXPECT_EQ(r.out.size(), body.size());   // same length: the response framing is untouched
}

TEST(RedactBuffer, AdjacentOccurrences) {
  FakeBroker b;
  const std::string body = kValShort + kValShort;
  const Redacted r = redact(body, {fp_of(kValShort)}, b);
  EXPECT_EQ(r.n, 2u);
  const std::string rep = replacement(kTokShort, kValShort);
  EXPECT_EQ(r.out, rep + rep);
}

TEST(RedactBuffer, OverlappingOccurrencesCountOnce) {
  // "abcabcabc" holds "abcabc" at 0 and 3: the second overlaps the first, which is
  // replaced; the candidate at 3 is not sent (it would read replaced bytes).
  FakeBroker b;
  b.values = {{"KZ_TOK_overlap", "abcabc"}};
  const Redacted r = redact("xabcabcabcx", {fp_of("abcabc")}, b);
  EXPECT_EQ(r.n, 1u);
  EXPECT_EQ(b.redacts, std::vector<std::string>{"abcabc"});
  EXPECT_EQ(r.out, "xKZ_TOKabcx");
}

TEST(RedactBuffer, CandidateRefusedByBrokerIsLeft) {
  // A fingerprint hit that the broker does not confirm (a collision) stays as it is.
  FakeBroker b;
  b.values.clear();
  const std::string body = "echo " + kValSame;
  const Redacted r = redact(body, {fp_of(kValSame)}, b);
  EXPECT_EQ(r.n, 0u);
  EXPECT_EQ(r.out, body);
  EXPECT_EQ(b.redacts.size(), 1u);
}

TEST(RedactBuffer, OtherBaseDoesNotMatch) {
  FakeBroker b;
  const std::string body = "echo " + kValSame;
  Fingerprint f = fp_of(kValSame);
  f.base = kBase + 1;   // hash made with kBase, scanned with another base
  const Redacted r = redact(body, {f}, b);
  EXPECT_EQ(r.n, 0u);
  EXPECT_TRUE(b.redacts.empty());
}

TEST(RedactBuffer, DegenerateFingerprintsAndBuffers) {
  FakeBroker b;
  Fingerprint empty = fp_of("");
  Fingerprint too_long = fp_of(kValSame);
  too_long.len = static_cast<std::uint32_t>(wire::kMaxData + 1);
  EXPECT_EQ(redact("abc", {empty, too_long}, b).n, 0u);
  EXPECT_EQ(redact("", {fp_of(kValSame)}, b).n, 0u);
  EXPECT_EQ(redact(kValSame.substr(0, 29), {fp_of(kValSame)}, b).n, 0u);   // shorter than the value
  EXPECT_TRUE(b.redacts.empty());
  BrokerOps no_redact = b.ops();
  no_redact.redact = nullptr;
  std::string buf = kValSame;
  const Fingerprint f = fp_of(kValSame);
  EXPECT_EQ(redact_buffer(reinterpret_cast<unsigned char*>(buf.data()), buf.size(), &f, 1, no_redact, nullptr), 0u);
  EXPECT_EQ(buf, kValSame);
}

TEST(RedactBuffer, ManyOccurrences) {
  // More than the per-scan batch: the first 64 are replaced (the rest of a huge echo is
  // left for the launcher's output masking).
  FakeBroker b;
  std::string body;
  for (int i = 0; i < 70; ++i) body += kValShort + ",";
  const Redacted r = redact(body, {fp_of(kValShort)}, b);
  EXPECT_GE(r.n, 64u);
  EXPECT_EQ(b.redacts.size(), r.n);
  const std::string rep = replacement(kTokShort, kValShort);
  for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(r.out.substr(i * 11, 10), rep) << i;
}

TEST(InboundAfterRead, UsesTheConnectionsFingerprints) {
  auto t = std::make_unique<ConnTable>();
  FakeBroker b;
  const void* key = reinterpret_cast<const void*>(0x9000);
  std::string buf = "HTTP/1.1 401 Unauthorized\r\n\r\nbad key " + kValSame;
  const std::string orig = buf;
  // No table entry: nothing is looked at.
  inbound_after_read(*t, key, buf.data(), buf.size(), b.ops());
  EXPECT_EQ(buf, orig);
  ConnState* st = t->find_or_create(key);
  ASSERT_NE(st, nullptr);
  // An entry without fingerprints: nothing either.
  inbound_after_read(*t, key, buf.data(), buf.size(), b.ops());
  EXPECT_EQ(buf, orig);
  EXPECT_TRUE(b.redacts.empty());
  st->add_fingerprint(fp_of(kValSame));
  inbound_after_read(*t, key, buf.data(), 0, b.ops());   // an empty read
  EXPECT_EQ(buf, orig);
  inbound_after_read(*t, key, buf.data(), buf.size(), b.ops());
  EXPECT_EQ(buf, replace_all(orig, kValSame, replacement(kTokSame, kValSame)));
  EXPECT_EQ(b.redacts.size(), 1u);
  // Another connection's reads are not touched.
  std::string other = orig;
  inbound_after_read(*t, reinterpret_cast<const void*>(0xA000), other.data(), other.size(), b.ops());
  EXPECT_EQ(other, orig);
  t->remove(key);
}

TEST(InboundAfterRead, ValueSplitAcrossReadsIsNotCaught) {
  // Documented limit: only within one read buffer.
  auto t = std::make_unique<ConnTable>();
  FakeBroker b;
  const void* key = reinterpret_cast<const void*>(0x9000);
  t->find_or_create(key)->add_fingerprint(fp_of(kValSame));
  std::string a = "x " + kValSame.substr(0, 12), c = kValSame.substr(12) + " y";
  inbound_after_read(*t, key, a.data(), a.size(), b.ops());
  inbound_after_read(*t, key, c.data(), c.size(), b.ops());
  EXPECT_EQ(a + c, "x " + kValSame + " y");
  EXPECT_TRUE(b.redacts.empty());
  t->remove(key);
}

}  // namespace
}  // namespace kz::preload
