// Approvals (secrets/approval.h): which uses wait, the hash an approval is bound to, the
// gate's asks, answers, timeouts and approvals in force, and decide's held outcome.
#include <thread>

#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <memory>

#include "decide_requests.h"
#include "secrets/approval.h"
#include "secrets/decide.h"
#include "test_support.h"

namespace kz {
namespace {

ApprovalRule rule(ApprovalMode m, std::vector<std::string> methods = {}, std::vector<std::string> paths = {}) {
  ApprovalRule r;
  r.mode = m;
  r.methods = std::move(methods);
  r.paths = std::move(paths);
  return r;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

TEST(Approval, WhichUsesWait) {
  EXPECT_FALSE(approval_required(rule(ApprovalMode::None), "GET", "/"));
  EXPECT_TRUE(approval_required(rule(ApprovalMode::First), "GET", "/"));
  EXPECT_TRUE(approval_required(rule(ApprovalMode::Every), "GET", "/"));
  const ApprovalRule m = rule(ApprovalMode::Matching, {"POST", "DELETE"}, {"/v1/charges*"});
  EXPECT_TRUE(approval_required(m, "POST", "/v1/charges"));
  EXPECT_TRUE(approval_required(m, "DELETE", "/v1/charges/ch_1?x=1"));
  EXPECT_FALSE(approval_required(m, "GET", "/v1/charges"));
  EXPECT_FALSE(approval_required(m, "POST", "/v1/refunds"));
  // Fail closed: no request line, or a path no rule can judge.
  EXPECT_TRUE(approval_required(m, "", ""));
  EXPECT_TRUE(approval_required(m, "POST", ""));
  EXPECT_TRUE(approval_required(m, "POST", "/v1/refunds/../charges"));
  EXPECT_TRUE(approval_required(rule(ApprovalMode::Matching, {"POST"}), "POST", "/anything"));
  EXPECT_TRUE(approval_required(rule(ApprovalMode::Matching, {}, {"/admin/"}), "GET", "/admin/x"));
}

// review 27, finding 1: an `approve` path list names what needs a person, so a path a
// server reads as a listed one must ask, however it is spelled.
TEST(Approval, PathsMatchWhatAServerRoutesOn) {
  const ApprovalRule m = rule(ApprovalMode::Matching, {"POST"}, {"/v1/charges*"});
  EXPECT_TRUE(approval_required(m, "POST", "/v1/%63harges"));        // decoded: /v1/charges
  EXPECT_TRUE(approval_required(m, "POST", "/v1/charge%73?x=1"));
  EXPECT_TRUE(approval_required(m, "POST", "/v1;x/charges"));        // ';' parameters stripped
  EXPECT_TRUE(approval_required(m, "POST", "/v1/charges;jsessionid=1"));
  EXPECT_TRUE(approval_required(m, "POST", "//v1/charges"));
  EXPECT_TRUE(approval_required(m, "POST", "/V1/Charges"));          // case-insensitive servers
  EXPECT_TRUE(approval_required(m, "post", "/v1/charges"));
  EXPECT_TRUE(approval_required(m, "POST", "/v1/./charges"));
  EXPECT_TRUE(approval_required(m, "POST", "/v1/%2e/charges"));
  EXPECT_TRUE(approval_required(m, "POST", "/v1/%2563harges"));      // double encoding
  EXPECT_TRUE(approval_required(m, "POST", "/v1/caf\xc3\xa9"));      // non-ASCII: in doubt
  EXPECT_TRUE(approval_required(m, "POST", "/v1/%c3%a9"));
  // Still precise where there is no doubt.
  EXPECT_FALSE(approval_required(m, "POST", "/v1/refunds"));
  EXPECT_FALSE(approval_required(m, "POST", "/v1/%72efunds"));
  EXPECT_FALSE(approval_required(m, "GET", "/v1/%63harges"));
  // A rule written with an escape or capitals covers the same paths.
  EXPECT_TRUE(approval_required(rule(ApprovalMode::Matching, {}, {"/V1/%63harges"}), "POST", "/v1/charges/ch_1"));
  // The binding's allow-list keeps its byte semantics (a non-match refuses: fails closed).
  Binding allow;
  allow.paths = {"/v1/charges*"};
  EXPECT_FALSE(path_allowed(allow, "/v1/%63harges"));
  EXPECT_FALSE(path_allowed(allow, "/V1/charges"));
  EXPECT_TRUE(path_allowed(allow, "/v1/charges"));
}

TEST(Approval, HashBindsEveryField) {
  const std::string h = approval_request_hash("S", "GET", "api.example", "/a?x=1");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, approval_request_hash("S", "GET", "api.example", "/a?x=1"));
  EXPECT_NE(h, approval_request_hash("T", "GET", "api.example", "/a?x=1"));
  EXPECT_NE(h, approval_request_hash("S", "POST", "api.example", "/a?x=1"));
  EXPECT_NE(h, approval_request_hash("S", "GET", "api.example.org", "/a?x=1"));
  EXPECT_NE(h, approval_request_hash("S", "GET", "api.example", "/a?x=2"));
  EXPECT_NE(h, approval_request_hash("S", "GET", "api.example", "/a?x=1", std::string(64, 'a')));
  // Field boundaries count: moving a character across them changes the hash.
  EXPECT_NE(approval_request_hash("S", "GE", "Tapi", "/"), approval_request_hash("S", "GET", "api", "/"));
}

TEST(Approval, TtlDefaults) {
  EXPECT_EQ(approval_ttl_seconds(rule(ApprovalMode::First)), 0);
  EXPECT_EQ(approval_ttl_seconds(rule(ApprovalMode::Every)), 300);
  ApprovalRule r = rule(ApprovalMode::Every);
  r.ttl_seconds = 10;
  EXPECT_EQ(approval_ttl_seconds(r), 10);
}

ApprovalAsk ask_for(const std::string& key) {
  ApprovalAsk a;
  a.secret = "S";
  a.host = "api.example";
  a.method = "POST";
  a.path = "/v1/x";
  a.request_hash = key;
  a.key = key;
  return a;
}

TEST(ApprovalGate, AnswerPutsAnApprovalInForce) {
  ApprovalGate g(std::chrono::minutes(1));
  EXPECT_FALSE(g.in_force("k1"));
  const ApprovalAsk a = g.open(ask_for("k1"));
  EXPECT_GT(a.id, 0u);
  EXPECT_EQ(a.code.size(), 8u);
  EXPECT_EQ(a.code.find_first_not_of("abcdefghjkmnpqrstuvwxyz23456789"), std::string::npos);
  // The same request while it is open: the same ask (one prompt), not a new one.
  EXPECT_EQ(g.open(ask_for("k1")).id, a.id);
  const ApprovalAsk b = g.open(ask_for("k2"));
  EXPECT_NE(b.id, a.id);
  EXPECT_NE(b.code, a.code);
  EXPECT_EQ(g.open_asks().size(), 2u);
  EXPECT_FALSE(readable(g.answered_fd()));
  EXPECT_FALSE(g.find_code("zzzzzzzz").has_value());
  ASSERT_TRUE(g.find_code(a.code).has_value());
  EXPECT_TRUE(g.answer(a.id, ApprovalVerdict::Approved, "terminal", "tty"));
  EXPECT_FALSE(g.answer(a.id, ApprovalVerdict::Denied, "late", "socket"));   // answered once
  EXPECT_TRUE(readable(g.answered_fd()));
  auto answers = g.take_answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].ask.id, a.id);
  EXPECT_EQ(answers[0].verdict, ApprovalVerdict::Approved);
  EXPECT_FALSE(readable(g.answered_fd()));
  EXPECT_TRUE(g.in_force("k1"));
  EXPECT_FALSE(g.in_force("k2"));
  EXPECT_FALSE(g.find_code(a.code).has_value());   // a used code approves nothing more
}

TEST(ApprovalGate, DenialIsNotRemembered) {
  ApprovalGate g(std::chrono::minutes(1));
  const ApprovalAsk a = g.open(ask_for("k"));
  EXPECT_TRUE(g.answer(a.id, ApprovalVerdict::Denied, "terminal", "tty"));
  EXPECT_FALSE(g.in_force("k"));
  EXPECT_NE(g.open(ask_for("k")).id, a.id);   // asked again
}

TEST(ApprovalGate, ExpiresAsksAtTheirDeadline) {
  ApprovalGate g(std::chrono::milliseconds(0));
  const ApprovalAsk a = g.open(ask_for("k"));
  EXPECT_EQ(g.ms_to_next_deadline(), 0);
  g.expire();
  auto answers = g.take_answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].verdict, ApprovalVerdict::Timeout);
  EXPECT_EQ(answers[0].channel, "timeout");
  EXPECT_FALSE(g.is_open(a.id));
  EXPECT_FALSE(g.in_force("k"));
  EXPECT_EQ(g.ms_to_next_deadline(), -1);
}

TEST(ApprovalGate, StopEndsEverything) {
  ApprovalGate g(std::chrono::minutes(1));
  g.open(ask_for("a"));
  g.open(ask_for("b"));
  g.stop();
  EXPECT_TRUE(g.stopped());
  auto answers = g.take_answers();
  ASSERT_EQ(answers.size(), 2u);
  for (const auto& x : answers) EXPECT_EQ(x.channel, "stop");
  // wait_change does not wait once stopped.
  g.wait_change(0, std::chrono::steady_clock::now() + std::chrono::hours(1));
}

// await (the proxy's wait on its own thread): the answer another thread gives, also when
// the broker has already taken it; its own deadline; and the gate's stop.
TEST(ApprovalGate, AwaitGetsTheAnswerOfItsAsk) {
  ApprovalGate g(std::chrono::minutes(1));
  const ApprovalAsk a = g.open(ask_for("k1"));
  const ApprovalAsk b = g.open(ask_for("k2"));
  std::thread answerer([&] {
    // Before or after the waiter blocks: either way it gets its own ask's answer.
    EXPECT_TRUE(g.answer(b.id, ApprovalVerdict::Denied, "terminal", "tty"));
    EXPECT_TRUE(g.answer(a.id, ApprovalVerdict::Approved, "webhook: x", "webhook"));
  });
  const ApprovalAnswer got = g.await(a.id);
  answerer.join();
  EXPECT_EQ(got.ask.id, a.id);
  EXPECT_EQ(got.verdict, ApprovalVerdict::Approved);
  EXPECT_EQ(got.by, "webhook: x");
  // The broker takes both answers; a later await still finds its own.
  EXPECT_EQ(g.take_answers().size(), 2u);
  EXPECT_EQ(g.await(b.id).verdict, ApprovalVerdict::Denied);
  // An id the gate never had (or forgot): fails closed at once.
  EXPECT_EQ(g.await(9999).verdict, ApprovalVerdict::Timeout);
}

TEST(ApprovalGate, AwaitTimesOutAtTheDeadline) {
  ApprovalGate g(std::chrono::milliseconds(30));
  const ApprovalAsk a = g.open(ask_for("k"));
  const ApprovalAnswer got = g.await(a.id);   // nobody answers
  EXPECT_EQ(got.verdict, ApprovalVerdict::Timeout);
  EXPECT_EQ(got.channel, "timeout");
  EXPECT_FALSE(g.is_open(a.id));
  EXPECT_FALSE(g.in_force("k"));
}

TEST(ApprovalGate, AwaitEndsWhenTheGateStops) {
  ApprovalGate g(std::chrono::hours(1));
  const ApprovalAsk a = g.open(ask_for("k"));
  std::thread stopper([&] { g.stop(); });
  const ApprovalAnswer got = g.await(a.id);
  stopper.join();
  EXPECT_EQ(got.verdict, ApprovalVerdict::Timeout);
  EXPECT_EQ(got.channel, "stop");
}

// decide: a swap that needs an approval is an Allow the caller holds; settling it as
// denied wipes the value and refuses.
TEST(ApprovalDecide, HeldThenSettled) {
  const std::string value = "sk-live-0123456789abcdefghijklmnop";
  std::vector<ResolvedSecret> s;
  s.push_back({"API_KEY", "env", SecretValue::from(value)});
  Binding b;
  b.hosts = {"localhost"};
  // { methods, paths } (Matching): an approval stays in force for its request ("every"
  // is single use: ApprovalDecide.EveryIsSingleUse).
  b.approve.mode = ApprovalMode::Matching;
  b.approve.methods = {"POST"};
  auto t = TokenTable::build(std::move(s), {{"API_KEY", b}});
  ASSERT_TRUE(t.ok());
  auto verifier = test::test_peer_verifier();
  ApprovalGate gate(std::chrono::minutes(1));
  const std::string token(t->secrets()[0].token.view());
  auto req = test::broker_request(wire::Op::Swap, token, "localhost",
                                  test::der_of_pem_file(test::test_ca().server_cert), "POST", "/v1/x?q=1");
  DecideContext ctx{&*t, verifier.get()};
  PeerProcess peer{4242, "/usr/bin/curl"};

  // No gate: refused, never sent unasked.
  DecideOutcome none = decide(ctx, *req, peer);
  EXPECT_EQ(none.reply.decision, wire::Decision::Refuse);
  EXPECT_FALSE(none.ask.has_value());

  ctx.approvals = &gate;
  DecideOutcome held = decide(ctx, *req, peer);
  ASSERT_EQ(held.reply.decision, wire::Decision::Allow);
  ASSERT_TRUE(held.ask.has_value());
  EXPECT_EQ(held.reply.flags & wire::kReplyReuseOnConnection, 0);   // never granted per connection
  EXPECT_EQ(held.ask->path, "/v1/x");   // the query stays out of records and prompts
  EXPECT_EQ(held.ask->request_hash, approval_request_hash("API_KEY", "POST", "localhost", "/v1/x?q=1"));
  EXPECT_EQ(held.ask->key, held.ask->request_hash);

  ApprovalAnswer no{*held.ask, ApprovalVerdict::Denied, "terminal", "tty"};
  settle_approval(held, no);
  EXPECT_EQ(held.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(held.reply.data_len, 0u);
  for (unsigned char c : held.reply.data) ASSERT_EQ(c, 0);
  EXPECT_EQ(held.audit->decision, "refuse");

  // Approved: in force for this request, so the same request is not held again.
  const ApprovalAsk opened = gate.open(*decide(ctx, *req, peer).ask);
  gate.answer(opened.id, ApprovalVerdict::Approved, "terminal", "tty");
  DecideOutcome again = decide(ctx, *req, peer);
  EXPECT_EQ(again.reply.decision, wire::Decision::Allow);
  EXPECT_FALSE(again.ask.has_value());
  auto other = test::broker_request(wire::Op::Swap, token, "localhost",
                                    test::der_of_pem_file(test::test_ca().server_cert), "POST", "/v1/y");
  EXPECT_TRUE(decide(ctx, *other, peer).ask.has_value());
}

// One secret bound to localhost under `approve`.
Result<TokenTable> table_for(const std::string& name, ApprovalRule approve) {
  std::vector<ResolvedSecret> s;
  s.push_back({name, "env", SecretValue::from("sk-live-0123456789abcdefghijklmnop")});
  Binding b;
  b.hosts = {"localhost"};
  b.approve = std::move(approve);
  return TokenTable::build(std::move(s), {{name, b}});
}

// review 27, finding 1: a percent-encoded path of an approve rule is held, not swapped.
TEST(ApprovalDecide, EncodedPathIsHeld) {
  auto t = table_for("STRIPE_KEY", rule(ApprovalMode::Matching, {"POST"}, {"/v1/charges*"}));
  ASSERT_TRUE(t.ok());
  auto verifier = test::test_peer_verifier();
  ApprovalGate gate(std::chrono::minutes(1));
  const std::string token(t->secrets()[0].token.view());
  DecideContext ctx{&*t, verifier.get()};
  ctx.approvals = &gate;
  PeerProcess peer{4242, "/usr/bin/curl"};
  for (const char* path : {"/v1/%63harges", "/v1;x/charges", "/v1/charge%73", "/V1/CHARGES"}) {
    auto req = test::broker_request(wire::Op::Swap, token, "localhost",
                                    test::der_of_pem_file(test::test_ca().server_cert), "POST", path);
    DecideOutcome out = decide(ctx, *req, peer);
    EXPECT_TRUE(out.ask.has_value()) << path;
  }
  auto plain = test::broker_request(wire::Op::Swap, token, "localhost",
                                    test::der_of_pem_file(test::test_ca().server_cert), "POST", "/v1/refunds");
  EXPECT_FALSE(decide(ctx, *plain, peer).ask.has_value());
}

// "every": each request asks, and an approval covers only the request it was shown for.
TEST(ApprovalDecide, EveryIsSingleUse) {
  auto t = table_for("API_KEY", rule(ApprovalMode::Every));
  ASSERT_TRUE(t.ok());
  auto verifier = test::test_peer_verifier();
  ApprovalGate gate(std::chrono::minutes(1));
  const std::string token(t->secrets()[0].token.view());
  auto req = test::broker_request(wire::Op::Swap, token, "localhost",
                                  test::der_of_pem_file(test::test_ca().server_cert), "POST", "/v1/x");
  DecideContext ctx{&*t, verifier.get()};
  ctx.approvals = &gate;
  PeerProcess peer{4242, "/usr/bin/curl"};
  DecideOutcome first = decide(ctx, *req, peer);
  ASSERT_TRUE(first.ask.has_value());
  EXPECT_TRUE(first.ask->key.empty());
  const ApprovalAsk opened = gate.open(*first.ask);
  gate.answer(opened.id, ApprovalVerdict::Approved, "terminal", "tty");
  EXPECT_TRUE(decide(ctx, *req, peer).ask.has_value());   // the same request asks again
}

}  // namespace
}  // namespace kz
