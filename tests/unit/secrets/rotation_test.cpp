// Rotation of a blind run's values (token_table.h replace_value, set_expired): the token
// stays, the next decision gives the new value whole, an expired value is refused, and a
// decision racing a replacement sees one value or the other, never a mix.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "decide_requests.h"
#include "secrets/decide.h"
#include "secrets/live_value.h"
#include "kz/wire/value_forms.h"
#include "test_support.h"

namespace kz {
namespace {

// Same length, so a torn copy (half of each) would still have the right size.
const std::string kOld = "sk-proj-" + std::string(40, 'a');
const std::string kNew = "sk-proj-" + std::string(40, 'b');

struct Rotation : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  PeerProcess peer{4242, "/usr/bin/curl"};
  std::string chain;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "vault", SecretValue::from(kOld)});
    s.push_back({"STATIC", "env", SecretValue::from("static-value-0123456789abcdef")});
    Binding b;
    b.hosts = {"localhost"};
    auto t = TokenTable::build(std::move(s), {{"API_KEY", b}, {"STATIC", b}}, TokenShape::Auto, {"API_KEY"});
    ASSERT_TRUE(t.ok());
    table = std::move(*t);
    verifier = test::test_peer_verifier();
    chain = test::der_of_pem_file(test::test_ca().server_cert);
  }
  const TokenEntry& entry(std::size_t i) const { return table.secrets()[i]; }
  DecideOutcome swap(std::size_t i) {
    auto r = test::broker_request(wire::Op::Swap, std::string(entry(i).token.view()), "localhost", chain, "GET",
                                  "/v1/models", nullptr);
    return decide({&table, verifier.get()}, *r, peer);
  }
  static std::string data(const DecideOutcome& o) {
    return std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len);
  }
};

TEST_F(Rotation, NewValueBehindTheSameTokenAndNeverGrantedPerConnection) {
  const std::string token(entry(0).token.view());
  auto before = swap(0);
  ASSERT_EQ(before.reply.decision, wire::Decision::Allow);
  EXPECT_EQ("sk-proj-" + data(before), kOld);   // the shown prefix stays in the agent's copy
  EXPECT_EQ(before.reply.flags & wire::kReplyReuseOnConnection, 0u) << "a rotating value was granted";
  EXPECT_NE(swap(1).reply.flags & wire::kReplyReuseOnConnection, 0u) << "a static value lost its grant";

  auto changed = table.replace_value("API_KEY", SecretValue::from(kNew));
  ASSERT_TRUE(changed.ok()) << changed.error().message;
  EXPECT_TRUE(*changed);
  EXPECT_EQ(std::string(entry(0).token.view()), token);
  auto after = swap(0);
  ASSERT_EQ(after.reply.decision, wire::Decision::Allow);
  EXPECT_EQ("sk-proj-" + data(after), kNew);
  EXPECT_NE(after.reply.fp_hash, before.reply.fp_hash) << "the inbound fingerprint is of the old value";
  EXPECT_TRUE(table.needs_length_fixup()) << "a new value may come back another length";

  auto same = table.replace_value("API_KEY", SecretValue::from(kNew));
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(*same);
}

TEST_F(Rotation, RefusesValuesTheTokenCannotStandFor) {
  EXPECT_FALSE(table.replace_value("API_KEY", SecretValue::from("xoxb-" + std::string(40, 'c'))).ok())
      << "a value without the prefix the token shows";
  EXPECT_FALSE(table.replace_value("API_KEY", SecretValue::from("")).ok());
  EXPECT_FALSE(table.replace_value("API_KEY", SecretValue::from(std::string(wire::kMaxSecretLen + 1, 'x'))).ok());
  EXPECT_FALSE(table.replace_value("STATIC", SecretValue::from("other-static-0123456789abcdef")).ok())
      << "a secret without refresh changed";
  EXPECT_EQ("sk-proj-" + data(swap(0)), kOld);
}

TEST_F(Rotation, ExpiredValueIsRefusedUntilTheNextGoodValue) {
  table.set_expired("API_KEY", true);
  auto refused = swap(0);
  EXPECT_EQ(refused.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(refused.reply.data_len, 0u);
  ASSERT_TRUE(refused.audit);
  EXPECT_NE(refused.audit->reason->find("expired"), std::string::npos) << *refused.audit->reason;
  EXPECT_EQ(swap(1).reply.decision, wire::Decision::Allow) << "another secret was refused with it";
  ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from(kOld)).ok());
  EXPECT_EQ(swap(0).reply.decision, wire::Decision::Allow);
}

TEST_F(Rotation, DecisionsRacingReplacementsSeeOneWholeValue) {
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, seen_old{0}, seen_new{0};
  std::thread reader([&] {
    while (!done.load()) {
      const std::string v = "sk-proj-" + data(swap(0));
      if (v == kOld) ++seen_old;
      else if (v == kNew) ++seen_new;
      else ++torn;
    }
  });
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from(i % 2 ? kOld : kNew)).ok());
  // Until the reader has seen both values at least once (bounded by the test's timeout).
  while (seen_old.load() == 0 || seen_new.load() == 0)
    ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from(seen_old.load() == 0 ? kOld : kNew)).ok());
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
}

// A request sent before a rotation may be answered after it: the server echoes the old
// value, which may still work there. Redaction still catches it (before: the broker
// compared with the new value only, answered Unknown, and the old value reached the agent).
TEST_F(Rotation, AnEchoOfTheValueBeforeARotationIsStillRedacted) {
  ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from(kNew)).ok());
  const std::string old_rest = kOld.substr(std::string("sk-proj-").size());
  auto raw = decide({&table, verifier.get()}, *test::broker_request(wire::Op::Redact, old_rest, "localhost", "", "", "", nullptr), peer);
  ASSERT_EQ(raw.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(data(raw), std::string(entry(0).token.view()));
  // Encoded forms are of the whole value.
  std::string b64(wire::kMaxFormLen, '\0');
  b64.resize(wire::encode_form(wire::ValueForm::Base64, reinterpret_cast<const unsigned char*>(kOld.data()), kOld.size(),
                               b64.data(), b64.size()));
  auto r = test::broker_request(wire::Op::Redact, b64, "localhost", "", "", "", nullptr);
  r->form = static_cast<std::uint32_t>(wire::ValueForm::Base64);
  EXPECT_EQ(decide({&table, verifier.get()}, *r, peer).reply.decision, wire::Decision::Allow);
  // A bounded history: the fifth value back is forgotten (wiped).
  for (char c : {'c', 'd', 'e', 'f'})
    ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from("sk-proj-" + std::string(40, c))).ok());
  EXPECT_EQ(entry(0).retired.size(), kRetiredKept);
  auto gone = decide({&table, verifier.get()}, *test::broker_request(wire::Op::Redact, old_rest, "localhost", "", "", "", nullptr), peer);
  EXPECT_EQ(gone.reply.decision, wire::Decision::Unknown);
}

// The same for a renewed value (an OAuth access token): the old one is matched until
// its own expiry.
TEST(LiveValueRetired, AnEarlierValueMatchesUntilItExpires) {
  LiveValue live(nullptr, std::chrono::seconds(60), 1, 2);
  const std::string v1 = std::string(40, 'a'), v2 = std::string(40, 'b');
  live.set(FreshValue{SecretValue::from(v1), 3600}, 1000);
  live.set(FreshValue{SecretValue::from(v2), 3600}, 2000);
  EXPECT_TRUE(live.is_value(v2, 2001));
  EXPECT_TRUE(live.is_value(v1, 2001)) << "an echo of the value before the renewal would reach the agent";
  ASSERT_EQ(live.retired(2001).size(), 1u);
  EXPECT_FALSE(live.is_value(v1, 4600)) << "v1 expired at 4600";
  EXPECT_TRUE(live.retired(4600).empty());
}

}  // namespace
}  // namespace kz
