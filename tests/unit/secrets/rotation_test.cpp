// Rotation of a blind run's values (token_table.h replace_value, set_expired): the token
// stays, the next decision gives the new value whole, an expired value is refused, and a
// decision racing a replacement sees one value or the other, never a mix.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "decide_requests.h"
#include "secrets/decide.h"
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

}  // namespace
}  // namespace kz
