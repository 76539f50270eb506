// The proxy's in-process broker (proxy/decide_transport.h) holding a use that needs a
// person's approval (approve = ...): the request waits on the calling thread until the
// gate answers, then is decided again; a wait that fails on the way (no stand-in thread,
// an audit sink that throws) answers its ask instead of leaving it open (review 28 #2: a
// dead ask would keep a gate slot and the terminal prompt for the rest of the run).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "../secrets/decide_requests.h"
#include "proxy/decide_transport.h"
#include "secrets/approval.h"
#include "test_support.h"

namespace kz {
namespace {

constexpr const char* kValue = "sk-live-0123456789abcdefghijklmnop";

struct ProxyHold : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier = test::test_peer_verifier();
  ApprovalGate gate{std::chrono::minutes(5)};
  DecideContext dc;
  SwapContext sc;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from(kValue)});
    Binding b;
    b.hosts = {"localhost"};
    b.approve.mode = ApprovalMode::Every;
    table = TokenTable::build(std::move(s), {{"API_KEY", b}}).value();
    dc.table = &table;
    dc.verifier = verifier.get();
    dc.via = "proxy";
    dc.approvals = &gate;
    sc.decide = &dc;
    sc.host = "localhost";
    sc.chain = test::der_of_pem_file(test::test_ca().server_cert);
  }
  wire::Reply* swap(DecideTransport& t) {
    auto r = test::broker_request(wire::Op::Swap, std::string(table.secrets()[0].token.view()), "localhost", sc.chain,
                                  "POST", "/v1/charges");
    std::memcpy(t.request(), r.get(), sizeof(wire::Request));
    return t.exchange();
  }
  // Answers the first ask that opens (from another thread).
  void answer_when_asked(ApprovalVerdict v) {
    std::uint64_t seen = 0;
    for (int i = 0; i < 100; ++i) {
      const auto asks = gate.open_asks();
      if (!asks.empty()) {
        gate.answer(asks[0].id, v, "test", "test");
        return;
      }
      seen = gate.wait_change(seen, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    }
  }
};

TEST_F(ProxyHold, ApprovedWhileHeldGetsTheValue) {
  sc.while_held = [&](const std::function<void()>& wait) {
    std::thread answerer([&] { answer_when_asked(ApprovalVerdict::Approved); });
    wait();
    answerer.join();
  };
  DecideTransport t(sc);
  const wire::Reply* rep = swap(t);
  ASSERT_NE(rep, nullptr);
  EXPECT_EQ(rep->decision, wire::Decision::Allow);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(rep->data), rep->data_len), kValue);
  EXPECT_TRUE(gate.open_asks().empty());
}

TEST_F(ProxyHold, DeniedWhileHeldIsRefused) {
  sc.while_held = [&](const std::function<void()>& wait) {
    std::thread answerer([&] { answer_when_asked(ApprovalVerdict::Denied); });
    wait();
    answerer.join();
  };
  DecideTransport t(sc);
  const wire::Reply* rep = swap(t);
  ASSERT_NE(rep, nullptr);
  EXPECT_EQ(rep->decision, wire::Decision::Refuse);
  EXPECT_EQ(rep->data_len, 0u);
}

TEST_F(ProxyHold, AWaitThatFailsAnswersItsAsk) {
  sc.while_held = [](const std::function<void()>&) { throw std::runtime_error("no thread for the stand-in"); };
  DecideTransport t(sc);
  EXPECT_EQ(swap(t), nullptr);   // no answer: the swap client refuses
  EXPECT_TRUE(gate.open_asks().empty());
  // Its slot is free again: the next use is asked, not refused for a full gate.
  sc.while_held = [&](const std::function<void()>& wait) {
    std::thread answerer([&] { answer_when_asked(ApprovalVerdict::Approved); });
    wait();
    answerer.join();
  };
  const wire::Reply* rep = swap(t);
  ASSERT_NE(rep, nullptr);
  EXPECT_EQ(rep->decision, wire::Decision::Allow);
}

}  // namespace
}  // namespace kz
