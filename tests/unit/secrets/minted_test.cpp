// Minted credentials at the broker (issue 19, part 2): a live value behind a stable
// token (secrets/live_value.h): the swap gives the current value, never a connection
// grant, nothing once it expired; the refresher renews it and records it. Sealing
// (secrets/decide_seal.h): a token endpoint's answer on a connection armed by a client
// secret with mint_hosts becomes a same-length token bound to those hosts.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>

#include "decide_requests.h"
#include "secrets/decide.h"
#include "secrets/live_value.h"
#include "test_support.h"

namespace kz {
namespace {

const std::string kFirst = "at1_first-access-token-0123456789abcdef";
const std::string kSecond = "at2_second-access-token-0123456789abcd";

struct CountingSource : ValueSource {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  bool fail = false;
  Result<FreshValue> fetch() override {
    std::lock_guard lock(mu);
    ++calls;
    cv.notify_all();
    if (fail) return make_error(ErrorKind::Denied, "token endpoint https://auth.test/token answered HTTP 401: invalid_client");
    return FreshValue{SecretValue::from(kSecond), 3600};
  }
};

// Keeps the records and wakes a waiter on each.
struct WaitingRecorder : AuditRecorder {
  std::mutex mu;
  std::condition_variable cv;
  std::string text;
  void record(AuditEvent e) override {
    const std::string line = to_record(e).dump() + "\n";
    std::lock_guard lock(mu);
    text += line;
    cv.notify_all();
  }
  bool wait_for(const std::string& needle) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return text.find(needle) != std::string::npos; });
  }
};

struct Minted : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  std::shared_ptr<CountingSource> source = std::make_shared<CountingSource>();
  PeerProcess peer{4242, "/usr/bin/python3"};
  std::vector<std::string> sealed_seen;   // the values handed to the masks (ctx.on_sealed)

  void build(std::int64_t expires_in, std::vector<std::string> mint_hosts = {}) {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_TOKEN", "env", SecretValue::from(kFirst)});
    s.back().source = source;
    s.back().expires_in = expires_in;
    s.push_back({"CLIENT_SECRET", "env", SecretValue::from("cs_client-secret-value-0123456789abcdef")});
    Binding b;
    b.hosts = {"localhost"};
    Binding c;
    c.hosts = {"localhost"};
    c.mint_hosts = std::move(mint_hosts);
    auto t = TokenTable::build(std::move(s), {{"API_TOKEN", b}, {"CLIENT_SECRET", c}});
    ASSERT_TRUE(t.ok());
    table = std::move(*t);
    verifier = test::test_peer_verifier();
  }
  DecideOutcome run(wire::Op op, const std::string& data, std::int64_t now = 0, std::uint32_t form = 0,
                    const std::string& host = "localhost") {
    auto r = test::broker_request(op == wire::Op::Seal ? wire::Op::Swap : op, data, host,
                                  test::der_of_pem_file(test::test_ca().server_cert), "POST", "/oauth/token");
    r->op = op;
    r->form = form;
    DecideContext ctx{&table, verifier.get()};
    ctx.now = now;
    ctx.sealed = &table;
    ctx.on_sealed = [this](std::string_view v) { sealed_seen.emplace_back(v); };
    return decide(ctx, *r, peer);
  }
  static std::string data(const DecideOutcome& o) {
    return std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len);
  }
  std::string token(std::size_t i) const { return std::string(table.secrets()[i].token.view()); }
};

TEST_F(Minted, SwapGivesTheCurrentValueBehindTheSameTokenAndNoGrant) {
  build(3600);
  const TokenEntry& e = table.secrets()[0];
  ASSERT_TRUE(e.live);
  EXPECT_GT(e.token.size(), kFirst.size()) << "room for a renewed token that grows";
  auto o = run(wire::Op::Swap, token(0));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(data(o), kFirst);
  EXPECT_EQ(o.reply.flags & wire::kReplyReuseOnConnection, 0) << "a live value is never granted per connection";
  e.live->set(FreshValue{SecretValue::from(kSecond), 3600}, unix_now());
  o = run(wire::Op::Swap, token(0));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(data(o), kSecond);
  EXPECT_EQ(o.reply.fp_len, kSecond.size());
  EXPECT_TRUE(table.needs_length_fixup());
  // An echo of the current value is recognised for redaction, and of the one before it
  // while that one has not expired (a request sent before the renewal, answered after).
  EXPECT_EQ(table.find_value(kSecond), &e);
  EXPECT_EQ(table.find_value(kFirst), &e);
}

TEST_F(Minted, ExpiredValueIsSwappedNowhere) {
  build(10);
  auto o = run(wire::Op::Swap, token(0), unix_now() + 11);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(std::string(o.reply.reason, o.reply.reason_len).find("expired"), std::string::npos);
}

TEST_F(Minted, RenewsBeforeExpiryAndRecordsIt) {
  build(2);   // due after half its life: a second
  const TokenEntry& e = table.secrets()[0];
  EXPECT_LE(e.live->refresh_due(), unix_now() + 1);
  WaitingRecorder audit;
  std::vector<std::string> masked;   // written before the audit record that is waited on
  {
    LiveRefresher r({{"API_TOKEN", e.token_id, e.live}}, audit, [&](std::string_view v) { masked.emplace_back(v); });
    ASSERT_TRUE(audit.wait_for(R"("source":"refresh")")) << audit.text;
  }
  EXPECT_EQ(masked, std::vector<std::string>{kSecond}) << "the renewed value was not handed to the masks";
  auto o = run(wire::Op::Swap, token(0));
  EXPECT_EQ(data(o), kSecond);
  const std::string dump = audit.text;
  EXPECT_NE(dump.find(R"("event":"mint")"), std::string::npos) << dump;
  EXPECT_NE(dump.find(R"("source":"refresh")"), std::string::npos) << dump;
  EXPECT_EQ(dump.find(kSecond), std::string::npos);
}

TEST_F(Minted, FailedRenewalKeepsTheLastValueAndSaysWhy) {
  build(2);
  source->fail = true;
  WaitingRecorder audit;
  {
    LiveRefresher r({{"API_TOKEN", table.secrets()[0].token_id, table.secrets()[0].live}}, audit);
    ASSERT_TRUE(audit.wait_for(R"("source":"refresh")")) << audit.text;
  }
  EXPECT_EQ(data(run(wire::Op::Swap, token(0))), kFirst);
  const std::string dump = audit.text;
  EXPECT_NE(dump.find(R"("decision":"error")"), std::string::npos) << dump;
  EXPECT_NE(dump.find("invalid_client"), std::string::npos) << dump;
}

TEST_F(Minted, SealBindsTheValueToMintHosts) {
  build(3600, {"api.test"});
  // The client secret's swap arms sealing.
  auto armed = run(wire::Op::Swap, token(1));
  ASSERT_EQ(armed.reply.decision, wire::Decision::Allow);
  EXPECT_NE(armed.reply.flags & wire::kReplySealResponses, 0);
  const std::string at = "eyJraWQiOiJ0ZXN0In0.real-access-token-value.sig";
  auto o = run(wire::Op::Seal, at, 0, table.secrets()[1].id);
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << std::string(o.reply.reason, o.reply.reason_len);
  const std::string sealed = data(o);
  EXPECT_EQ(sealed.size(), at.size());
  EXPECT_EQ(sealed.rfind("KZ_TOK_", 0), 0u);
  ASSERT_TRUE(o.mint);
  const std::string rec = to_record(*o.mint).dump();
  EXPECT_EQ(rec.find(at), std::string::npos);
  EXPECT_NE(rec.find(R"("source":"response")"), std::string::npos);
  // The sealed token is swapped for the value only toward its mint_hosts.
  auto refused = run(wire::Op::Swap, sealed, 0, 0, "localhost");
  EXPECT_EQ(refused.reply.decision, wire::Decision::Refuse);
  auto e = table.find(sealed, unix_now());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->binding.hosts, std::vector<std::string>{"api.test"});
  EXPECT_EQ(e->value.view(), at);
  EXPECT_EQ(sealed_seen, std::vector<std::string>{at}) << "the sealed value was not handed to the masks";
  // Kept a day at most, under a quota of the client secret's own.
  EXPECT_LE(e->expires_at, unix_now() + 24 * 3600);
  EXPECT_EQ(e->owner, "sealed CLIENT_SECRET");
  // A server that echoes the sealed value back: the agent reads the sealed token.
  auto echo = run(wire::Op::Redact, at, 0, static_cast<std::uint32_t>(wire::ValueForm::Raw), "api.test");
  ASSERT_EQ(echo.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(data(echo), sealed);
}

TEST_F(Minted, SealRefusedWithoutMintHostsOrForAShortValue) {
  build(3600);
  auto o = run(wire::Op::Seal, "at_0123456789abcdefghijklmnop", 0, table.secrets()[1].id);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  build(3600, {"api.test"});
  o = run(wire::Op::Seal, "short-token", 0, table.secrets()[1].id);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  // From a host the client secret is not bound to: not the token endpoint's answer.
  o = run(wire::Op::Seal, "at_0123456789abcdefghijklmnop", 0, table.secrets()[1].id, "127.0.0.1");
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
}

}  // namespace
}  // namespace kz
