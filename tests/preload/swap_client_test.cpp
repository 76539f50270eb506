// The broker swap client (kz/preload/swap_client.h) over a fake transport: the requests
// it builds, the grant cache, how replies are applied, fail-closed paths, and that a
// slow broker answer (or a slow handshake) on one thread holds up no other thread.
#include <gtest/gtest.h>

#include <pthread.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fakes.h"
#include "kz/preload/conn_table.h"
#include "kz/preload/outbound.h"
#include "kz/preload/swap_client.h"

namespace kz::preload::test {
namespace {

using wire::Decision;
using wire::Op;

std::string field(const char* p, std::size_t n) { return std::string(p, n); }

// A request as the broker saw it.
struct Seen {
  Op op;
  wire::Channel channel;
  std::uint8_t flags;
  std::uint32_t pid, uses;
  std::uint64_t conn_id;
  std::string host, method, path, peer, data, chain, http_host;
  std::uint32_t form;
};

// Answers with `answer` (Refuse when unset); one buffer pair per thread, as the shim's.
class FakeTransport final : public SwapTransport {
 public:
  std::function<void(const wire::Request&, wire::Reply&)> answer;
  bool no_buffer = false, no_reply = false;
  bool alive = true;   // broker_alive()

  bool broker_alive() override { return alive; }
  wire::Request* request() override { return no_buffer ? nullptr : &bufs().req; }
  wire::Reply* exchange() override {
    Buffers& b = bufs();
    {
      std::lock_guard lock(mu_);
      const wire::Request& r = b.req;
      seen_.push_back(Seen{r.op, r.channel, r.flags, r.pid, r.uses, r.conn_id, field(r.host, r.host_len),
                           field(r.method, r.method_len), field(r.path, r.path_len), field(r.peer, r.peer_len),
                           std::string(reinterpret_cast<const char*>(r.data), r.data_len),
                           std::string(reinterpret_cast<const char*>(r.chain), r.chain_len),
                           field(r.http_host, r.http_host_len), r.form});
    }
    if (no_reply) return nullptr;
    std::memset(&b.rep, 0, sizeof b.rep);
    b.rep.version = wire::kProtocolVersion;
    b.rep.op = b.req.op;
    b.rep.decision = Decision::Refuse;
    if (answer) answer(b.req, b.rep);
    return &b.rep;
  }
  void warn(const char* msg) override { warnings.emplace_back(msg); }

  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // The calling thread's buffers, to check they were wiped.
  static bool data_wiped() {
    const Buffers& b = bufs();
    for (unsigned char c : b.req.data) if (c != 0) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(&b.rep);
    for (std::size_t i = 0; i < sizeof b.rep; ++i) if (p[i] != 0) return false;
    return true;
  }
  std::vector<std::string> warnings;

 private:
  struct Buffers {
    wire::Request req{};
    wire::Reply rep{};
  };
  static Buffers& bufs() {
    thread_local std::unique_ptr<Buffers> b(new Buffers());
    return *b;
  }
  std::mutex mu_;
  std::vector<Seen> seen_;
};

void allow_value(wire::Reply& rep, const std::string& value, std::uint8_t flags = 0) {
  rep.decision = Decision::Allow;
  rep.flags = flags;
  std::memcpy(rep.data, value.data(), value.size());
  rep.data_len = static_cast<std::uint32_t>(value.size());
}

// Facts the way a hook fills them: lazily, counting the gathers.
struct Facts {
  ConnFacts f;
  int gathers = 0;
  std::string chain = "DER-CHAIN";
  int chain_fills = 0;
  const char* host_override = nullptr;   // gather names this host instead
  int* on_grant_count = nullptr;
  const std::string* ids = nullptr;   // what fill_chain_ids gives, when a test sets it
  int* id_fills = nullptr;
  const std::string* sni = nullptr;   // what gather_host gives, when a test sets it
  int* host_gathers = nullptr;
  const bool* done = nullptr;   // what handshake_done gives, when a test sets it
  Facts() {
    f.channel = wire::Channel::OpenSSL;
    f.pid = 4242;
    f.ctx = this;
    f.gather = [](ConnFacts* self) {
      auto* me = static_cast<Facts*>(self->ctx);
      ++me->gathers;
      const std::string host = me->host_override != nullptr ? std::string(me->host_override)
                                                             : "api.exa mple.com\x01";   // the client drops the space and control
      std::memcpy(self->host, host.data(), host.size());
      self->host_len = host.size();
      const std::string peer = "203.0.113.7:443";
      std::memcpy(self->peer, peer.data(), peer.size());
      self->peer_len = peer.size();
    };
    f.fill_chain = [](void* ctx, unsigned char* out, std::size_t cap) -> std::size_t {
      const std::string& c = static_cast<Facts*>(ctx)->chain;
      ++static_cast<Facts*>(ctx)->chain_fills;
      if (c.size() > cap) return 0;
      std::memcpy(out, c.data(), c.size());
      return c.size();
    };
  }
};

std::unique_ptr<ConnState> state_with_request_line(std::uint64_t id) {
  auto st = std::make_unique<ConnState>();
  st->conn_id = id;
  st->set_request_line("POST", 4, "/v1/chat?x=1", 12);
  st->set_request_host("api.example.com", 15, 1);   // the request names the connection's host
  return st;
}

Decision swap(SwapClient& c, ConnState* st, const std::string& tok, std::string* value, bool at_end = false,
              std::size_t* token_len = nullptr) {
  char out[256];
  std::size_t vl = 0, tl = 0;
  const Decision d = c.swap(st, tok.data(), tok.size(), at_end, out, tok.size(), &vl, &tl);
  if (d == Decision::Allow) value->assign(out, vl);
  if (token_len != nullptr) *token_len = tl;
  return d;
}

TEST(SwapClient, BuildsTheSwapRequestFromFactsAndConnectionState) {
  FakeTransport t;
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(77);
  std::string v;
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v, true), Decision::Refuse);
  EXPECT_EQ(swap(c, st.get(), kTokShort, &v), Decision::Refuse);
  EXPECT_EQ(facts.gathers, 1) << "facts are gathered once per client";
  const auto seen = t.seen();
  ASSERT_EQ(seen.size(), 2u);
  const Seen& r = seen[0];
  EXPECT_EQ(r.op, Op::Swap);
  EXPECT_EQ(r.channel, wire::Channel::OpenSSL);
  EXPECT_EQ(r.flags, wire::kFlagTokenAtEnd | wire::kFlagPeerHasChain);
  EXPECT_EQ(r.pid, 4242u);
  EXPECT_EQ(r.uses, 0u);
  EXPECT_EQ(r.conn_id, 77u);
  EXPECT_EQ(r.host, "api.example.com");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/v1/chat?x=1");
  EXPECT_EQ(r.peer, "203.0.113.7:443");
  EXPECT_EQ(r.data, kTokSame);
  EXPECT_EQ(r.chain, "DER-CHAIN");
  EXPECT_EQ(seen[1].flags, wire::kFlagPeerHasChain);
  EXPECT_TRUE(FakeTransport::data_wiped());
}

TEST(SwapClient, PlainConnectionsSendNoChainAndFactsMayNameTheConnection) {
  FakeTransport t;
  Facts facts;
  facts.f.channel = wire::Channel::Plain;
  facts.f.conn_id = 9;
  SwapClient c(t, facts.f);
  c.report(nullptr, kTokSame.data(), kTokSame.size());
  const auto seen = t.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, Op::Report);
  EXPECT_EQ(seen[0].chain, "");
  EXPECT_EQ(seen[0].flags, 0);
  EXPECT_EQ(seen[0].conn_id, 9u);
  EXPECT_EQ(seen[0].method, "");
  EXPECT_EQ(seen[0].data, kTokSame);
}

TEST(SwapClient, AllowCopiesTheValueAndKeepsItsFingerprint) {
  FakeTransport t;
  t.answer = [](const wire::Request&, wire::Reply& rep) {
    allow_value(rep, kValSame);
    rep.fp_base = 31;
    rep.fp_hash = 0xabc;
    rep.fp_len = static_cast<std::uint32_t>(kValSame.size());
    rep.secret_id = 5;
  };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(1);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  EXPECT_EQ(v, kValSame);
  ASSERT_EQ(st->nfps, 1u);
  EXPECT_EQ(st->fps[0].hash, 0xabcu);
  EXPECT_EQ(st->fps[0].secret_id, 5u);
  EXPECT_EQ(st->ngrants, 0u) << "no grant without kReplyReuseOnConnection";
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 2u);
  EXPECT_TRUE(FakeTransport::data_wiped());
}

TEST(SwapClient, GrantHitAnswersWithoutTheBrokerAndMissAsks) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    const std::string tok(reinterpret_cast<const char*>(r.data), r.data_len);
    allow_value(rep, tok == kTokSame ? kValSame : kValShort, wire::kReplyReuseOnConnection);
  };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(3);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(field(st->host, st->host_len), "api.exa mple.com\x01") << "kept for the use reports";
  EXPECT_EQ(st->channel, wire::Channel::OpenSSL);

  t.answer = nullptr;   // the broker would refuse now: a hit must not ask
  v.clear();
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  EXPECT_EQ(v, kValSame);
  EXPECT_EQ(st->grants[0].unreported, 1u);
  EXPECT_EQ(t.seen().size(), 1u);

  EXPECT_EQ(swap(c, st.get(), kTokShort, &v), Decision::Refuse) << "another token misses the cache";
  EXPECT_EQ(t.seen().size(), 2u);
  std::string none;
  EXPECT_EQ(swap(c, nullptr, kTokSame, &none), Decision::Refuse) << "no state, no grants";
}

// A process that outlives its run: kz's broker is gone, so a grant must not answer; the
// grants are wiped and the broker is asked, which fails closed.
TEST(SwapClient, GrantsEndWhenTheBrokerIsGone) {
  FakeTransport t;
  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, kValSame, wire::kReplyReuseOnConnection); };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(5);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  t.alive = false;
  t.no_reply = true;   // and nobody answers
  v.clear();
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(st->ngrants, 0u);
  for (unsigned char b : st->grants[0].value) EXPECT_EQ(b, 0) << "the granted value was not wiped";
  EXPECT_EQ(t.seen().size(), 2u) << "the broker must be asked once the grant is gone";
}

TEST(SwapClient, GrantUsesAreReportedEveryReportIntervalAndAtTheEnd) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(11);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  for (std::uint32_t i = 0; i < wire::kReuseReportEvery + 3; ++i) ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  auto seen = t.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].op, Op::Report);
  EXPECT_EQ(seen[1].uses, wire::kReuseReportEvery);
  EXPECT_EQ(seen[1].data, kTokSame);
  EXPECT_EQ(seen[1].chain, "") << "use reports carry what the state kept, no chain";
  EXPECT_EQ(seen[1].host, "api.example.com");
  EXPECT_EQ(seen[1].peer, "203.0.113.7:443");
  EXPECT_EQ(seen[1].conn_id, 11u);
  EXPECT_EQ(st->grants[0].unreported, 3u);

  c.report_grant_uses(st.get());
  seen = t.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].uses, 3u);
  EXPECT_EQ(st->grants[0].unreported, 0u);
  c.report_grant_uses(st.get());
  EXPECT_EQ(t.seen().size(), 3u) << "nothing unreported, nothing sent";
}

// Domain fronting on a granted connection (issue 15, class 7): a request that names
// another host (Host header, absolute-form target, two Host headers) is not answered from
// the grant; the broker is asked (and refuses).
TEST(SwapClient, GrantAnswersOnlyARequestNamingTheGrantedHost) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap && std::string(r.http_host, r.http_host_len) == "api.example.com")
      allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(7);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  st->set_request_host("evil.example", 12, 1);
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse);
  EXPECT_EQ(t.seen().back().http_host, "evil.example");
  st->set_request_host("api.example.com", 15, 2);
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse);
  EXPECT_NE(t.seen().back().flags & wire::kFlagHostInvalid, 0);
  st->set_request_host("api.example.com", 15, 1);
  st->set_request_line("GET", 3, "https://evil.example/x", 22);
  const std::size_t before = t.seen().size();
  swap(c, st.get(), kTokSame, &v);
  EXPECT_EQ(t.seen().size(), before + 1) << "an absolute target naming another host goes to the broker";
  const std::size_t asked = t.seen().size();
  st->set_request_line("GET", 3, "/v1/x", 5);
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  EXPECT_EQ(t.seen().size(), asked) << "the granted host again: the grant answers";
}

// A grant lives as long as its connection: the drivers drop it with the connection
// (SSL_free / SSL_clear), reporting its uses; the next connection asks again.
TEST(SwapClient, GrantsEndWithTheirConnection) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  Facts facts;
  SwapClient c(t, facts.f);
  auto table = std::make_unique<ConnTable>();
  int key = 0;
  ConnState* st = table->find_or_create(&key);
  ASSERT_NE(st, nullptr);
  st->set_request_line("GET", 3, "/", 1);
  st->set_request_host("api.example.com", 15, 1);   // a grant answers only for its own host
  std::string v;
  ASSERT_EQ(swap(c, st, kTokSame, &v), Decision::Allow);
  ASSERT_EQ(swap(c, st, kTokSame, &v), Decision::Allow);
  conn_drop(*table, &key, c.ops());
  auto seen = t.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].op, Op::Report);
  EXPECT_EQ(seen[1].uses, 1u);
  EXPECT_EQ(table->find(&key), nullptr);
  st = table->find_or_create(&key);
  ASSERT_EQ(swap(c, st, kTokSame, &v), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 3u) << "the new connection asked the broker";
}

// A grant is keyed by the TLS object's address, which a new session can reuse (the old
// one freed past the shim's hooks). Every reuse recomputes the peer's identity (SNI +
// chain) from the live object: another peer drops the grants, reports their uses, and
// asks the broker.
TEST(SwapClient, AGrantIsReusedOnlyForThePeerItWasGivenFor) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  auto st = state_with_request_line(21);
  std::string v;
  int grants_registered = 0;
  auto hook_call = [&](const std::string& chain, const char* host) {
    // One client per hook call, as the shim makes them.
    Facts facts;
    facts.chain = chain;
    facts.f.on_grant = [](void* ctx) { ++*static_cast<Facts*>(ctx)->on_grant_count; };
    facts.on_grant_count = &grants_registered;
    facts.host_override = host;
    SwapClient c(t, facts.f);
    return swap(c, st.get(), kTokSame, &v);
  };
  ASSERT_EQ(hook_call("CHAIN-BOUND", nullptr), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(grants_registered, 1) << "the shim hears of the grant (OpenSSL ex-data)";
  ASSERT_EQ(hook_call("CHAIN-BOUND", nullptr), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 1u) << "same peer: the grant answers";

  // Same address, new session: another chain. The grant must not answer.
  t.answer = nullptr;   // the broker refuses the unbound peer
  EXPECT_EQ(hook_call("CHAIN-UNBOUND", nullptr), Decision::Refuse);
  auto seen = t.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].op, Op::Report) << "the old grant's uses are reported";
  EXPECT_EQ(seen[1].uses, 1u);
  EXPECT_EQ(seen[2].op, Op::Swap) << "the broker decides for the new peer";
  EXPECT_EQ(seen[2].chain, "CHAIN-UNBOUND");
  EXPECT_EQ(st->ngrants, 0u);
  for (unsigned char ch : std::string(reinterpret_cast<const char*>(st->grants), sizeof st->grants))
    ASSERT_EQ(ch, 0) << "the dropped grant's value is wiped";

  // Same chain, another SNI: also another peer.
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  ASSERT_EQ(hook_call("CHAIN-BOUND", nullptr), Decision::Allow);
  t.answer = nullptr;
  EXPECT_EQ(hook_call("CHAIN-BOUND", "unbound.example"), Decision::Refuse);
  EXPECT_EQ(t.seen().back().host, "unbound.example");
  EXPECT_EQ(st->ngrants, 0u);
}

// Where the TLS library keeps each certificate's digest (OpenSSL), a grant's peer is
// derived from those ids when it is given and at each recheck: no DER chain is filled
// per reuse, and ids that change (another chain behind the same object), or that the
// library no longer gives, end the grant.
TEST(SwapClient, ChainIdsStandForTheChainAtEachRecheck) {
  FakeTransport t;
  const auto allow = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  t.answer = allow;
  auto st = state_with_request_line(41);
  std::string v;
  std::string ids = "SHA1-LEAF-BOUND.....SHA1-CA-BOUND.......";
  int id_fills = 0, chain_fills = 0;
  auto hook_call = [&] {
    Facts facts;
    facts.ids = &ids;
    facts.id_fills = &id_fills;
    facts.f.fill_chain_ids = [](void* ctx, unsigned char* out, std::size_t cap) -> std::size_t {
      auto* me = static_cast<Facts*>(ctx);
      ++*me->id_fills;
      if (me->ids->empty() || me->ids->size() > cap) return 0;
      std::memcpy(out, me->ids->data(), me->ids->size());
      return me->ids->size();
    };
    SwapClient c(t, facts.f);
    const Decision d = swap(c, st.get(), kTokSame, &v);
    chain_fills += facts.chain_fills;
    return d;
  };
  ASSERT_EQ(hook_call(), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(chain_fills, 1) << "the broker's request still carries the DER chain";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(hook_call(), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 1u) << "the same ids: the grant answers";
  EXPECT_EQ(chain_fills, 1) << "a recheck encodes no chain";
  EXPECT_EQ(id_fills, 4);

  t.answer = nullptr;   // the broker refuses what it is asked next
  ids = "SHA1-LEAF-OTHER.....SHA1-CA-BOUND.......";
  EXPECT_EQ(hook_call(), Decision::Refuse);
  EXPECT_EQ(st->ngrants, 0u) << "another leaf behind the same object";
  EXPECT_EQ(t.seen().back().op, Op::Swap);

  t.answer = allow;
  ASSERT_EQ(hook_call(), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  t.answer = nullptr;
  ids.clear();   // the library gives no ids now: the DER chain's identity is another one
  EXPECT_EQ(hook_call(), Decision::Refuse);
  EXPECT_EQ(st->ngrants, 0u);
}

// A recheck needs the host and the chain, not the peer's address: with gather_host the
// full gather (which formats the address) is not run for it. The host gather_host gives
// is the one the grant was bound with, so the grant answers; another SNI behind the same
// object drops it; no SNI at all falls back to the full gather.
TEST(SwapClient, ARecheckGathersTheHostAlone) {
  FakeTransport t;
  const auto allow = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  t.answer = allow;
  auto st = state_with_request_line(43);
  std::string v;
  std::string sni = "api.example.com";
  int host_gathers = 0, full_gathers = 0;
  auto hook_call = [&] {
    Facts facts;
    facts.host_override = "api.example.com";
    facts.sni = &sni;
    facts.host_gathers = &host_gathers;
    facts.f.gather_host = [](ConnFacts* self) {
      auto* me = static_cast<Facts*>(self->ctx);
      ++*me->host_gathers;
      if (me->sni->empty()) return false;
      std::memcpy(self->host, me->sni->data(), me->sni->size());
      self->host_len = me->sni->size();
      return true;
    };
    SwapClient c(t, facts.f);
    const Decision d = swap(c, st.get(), kTokSame, &v);
    full_gathers += facts.gathers;
    return d;
  };
  ASSERT_EQ(hook_call(), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(full_gathers, 1) << "the broker's request is built from the full facts";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(hook_call(), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 1u) << "the same host and chain: the grant answers";
  EXPECT_EQ(full_gathers, 1) << "a recheck does not gather the peer's address";
  EXPECT_EQ(host_gathers, 3);

  t.answer = nullptr;
  sni = "evil.example";   // the object now names another server
  EXPECT_EQ(hook_call(), Decision::Refuse);
  EXPECT_EQ(st->ngrants, 0u) << "another SNI behind the same object";

  t.answer = allow;
  sni = "api.example.com";
  ASSERT_EQ(hook_call(), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  const int before = full_gathers;
  const std::size_t asked = t.seen().size();
  sni.clear();   // no SNI: the full gather names the host (here the same one)
  ASSERT_EQ(hook_call(), Decision::Allow);
  EXPECT_EQ(full_gathers, before + 1);
  EXPECT_EQ(st->ngrants, 1u);
  EXPECT_EQ(t.seen().size(), asked) << "the full gather's host is the grant's: no round trip";
}

// An object whose handshake is not done reports the chain of whatever session it holds,
// maybe the bound peer's from before it was cleared past the hooks: a grant does not
// answer for it, the broker is told (Swap form kFormHandshakeUnfinished), and an Allow
// for it anyway is not applied.
TEST(SwapClient, NoSwapBeforeTheHandshakeIsDone) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  auto st = state_with_request_line(47);
  std::string v;
  bool done = true;
  auto hook_call = [&] {
    Facts facts;
    facts.f.handshake_done = [](void* ctx) { return *static_cast<Facts*>(ctx)->done; };
    facts.done = &done;
    SwapClient c(t, facts.f);
    return swap(c, st.get(), kTokSame, &v);
  };
  ASSERT_EQ(hook_call(), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(t.seen().back().form, 0u);
  ASSERT_EQ(hook_call(), Decision::Allow);
  EXPECT_EQ(t.seen().size(), 1u) << "done: the grant answers";

  done = false;   // the same SNI and chain, but the object has not handshaken since
  v.clear();
  EXPECT_EQ(hook_call(), Decision::Refuse) << "the broker's Allow is not applied";
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(st->ngrants, 0u) << "the grant is dropped";
  ASSERT_EQ(t.seen().size(), 3u);   // its one use reported, then the swap asked
  EXPECT_EQ(t.seen()[1].op, Op::Report);
  EXPECT_EQ(t.seen().back().op, Op::Swap);
  EXPECT_EQ(t.seen().back().form, wire::kFormHandshakeUnfinished);
  EXPECT_EQ(t.warnings.size(), 1u);

  // A SigV4 signature likewise: the request says so (beside its own form bits), and an
  // Allow for it is not applied.
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Sign) allow_value(rep, std::string(wire::kSignHashLen, 'f'));
  };
  Facts facts;
  facts.done = &done;
  facts.f.handshake_done = [](void* ctx) { return *static_cast<Facts*>(ctx)->done; };
  SwapClient c(t, facts.f);
  const std::string head(wire::kSignHashLen + 40, 'h');
  char sig[wire::kSignHashLen];
  std::size_t at = 0;
  EXPECT_EQ(c.sign(st.get(), head.data(), head.size(), wire::kSignHeadTruncated, sig, &at), Decision::Refuse);
  EXPECT_EQ(t.seen().back().op, Op::Sign);
  EXPECT_EQ(t.seen().back().form, wire::kSignHeadTruncated | wire::kFormHandshakeUnfinished);
  done = true;
  EXPECT_EQ(c.sign(st.get(), head.data(), head.size(), 0, sig, &at), Decision::Allow);
  EXPECT_EQ(t.seen().back().form, 0u);
}

// The fallback proxy's session has one upstream for life and drops its state before it
// goes (peer_fixed): its grants answer without fetching and hashing the chain again on
// every request. Everything else a grant checks still applies.
TEST(SwapClient, AFixedPeerReusesItsGrantWithoutRederivingItsIdentity) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  for (const bool fixed : {false, true}) {
    Facts facts;
    facts.f.peer_fixed = fixed;
    SwapClient c(t, facts.f);
    auto st = state_with_request_line(31);
    std::string v;
    ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
    ASSERT_EQ(st->ngrants, 1u);
    const int fills = facts.chain_fills;
    for (int i = 0; i < 3; ++i) ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
    EXPECT_EQ(facts.chain_fills - fills, fixed ? 0 : 3) << (fixed ? "peer_fixed" : "shim");

    // A request that names another host still goes to the broker (which refuses it).
    const std::size_t asked = t.seen().size();
    t.answer = nullptr;
    st->set_request_host("other.example", 13, 1);
    EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse);
    EXPECT_EQ(t.seen().size(), asked + 1);
    t.answer = [](const wire::Request& r, wire::Reply& rep) {
      if (r.op == Op::Swap) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
    };
  }
}

TEST(SwapClient, RefusalUnknownAndIncompleteLeaveTheTokenAlone) {
  FakeTransport t;
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(2);
  std::string v = "untouched";
  EXPECT_EQ(swap(c, st.get(), kTokRefused, &v), Decision::Refuse);
  t.answer = [](const wire::Request&, wire::Reply& rep) { rep.decision = Decision::Unknown; };
  EXPECT_EQ(swap(c, st.get(), kTokUnknown, &v), Decision::Unknown);
  EXPECT_EQ(v, "untouched");
  t.answer = [](const wire::Request&, wire::Reply& rep) {
    rep.decision = Decision::Incomplete;
    rep.token_len = 30;
  };
  std::size_t tl = 0;
  EXPECT_EQ(swap(c, st.get(), "KZ_TOK_same", &v, true, &tl), Decision::Incomplete);
  EXPECT_EQ(tl, 30u);
  EXPECT_EQ(st->ngrants, 0u);
  EXPECT_EQ(st->nfps, 0u);
}

TEST(SwapClient, FailsClosed) {
  FakeTransport t;
  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, kValSame + "-longer-than-the-token"); };
  Facts facts;
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(2);
  std::string v;
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse) << "a value longer than its token";
  EXPECT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(st->nfps, 0u);
  EXPECT_TRUE(FakeTransport::data_wiped());

  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, kValSame); };
  t.no_reply = true;
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse) << "no answer";
  t.no_buffer = true;
  const std::size_t asked = t.seen().size();
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse) << "no buffer";
  EXPECT_EQ(t.seen().size(), asked) << "nothing sent without a request buffer";
  unsigned char buf[] = "sk-live-0123456789abcdefghijkl";
  EXPECT_FALSE(c.redact(st.get(), buf, sizeof buf - 1, 0));
}

TEST(SwapClient, RedactOverwritesOnlyWithASameLengthReplacement) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    allow_value(rep, kTokSame.substr(0, r.data_len));
  };
  Facts facts;
  SwapClient c(t, facts.f);
  std::string buf = kValSame;
  ASSERT_TRUE(c.redact(nullptr, reinterpret_cast<unsigned char*>(buf.data()), buf.size(), 0));
  EXPECT_EQ(buf, kTokSame.substr(0, kValSame.size()));
  EXPECT_EQ(t.seen().back().op, Op::Redact);
  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, "short"); };
  buf = kValSame;
  EXPECT_FALSE(c.redact(nullptr, reinterpret_cast<unsigned char*>(buf.data()), buf.size(), 0));
  EXPECT_EQ(buf, kValSame);
  EXPECT_TRUE(FakeTransport::data_wiped());
}

// Through the rewrite driver: the token goes out as its value, and the facts were
// gathered before the connection's state was locked (the shim may run a handshake there).
// Unsafe facts (key logging, a memory BIO, h2) travel as request flags on every swap,
// and a grant does not skip them: a key-log callback can be set after the first grant.
TEST(SwapClient, UnsafeFactsAreFlaggedAndBypassTheGrant) {
  FakeTransport t;
  t.answer = [](const wire::Request& r, wire::Reply& rep) {
    if ((r.flags & wire::kUnsafeFlags) == 0) allow_value(rep, kValSame, wire::kReplyReuseOnConnection);
  };
  static std::uint8_t unsafe_now;
  static int probes;
  unsafe_now = 0;
  probes = 0;
  Facts facts;
  facts.f.unsafe = [](void*) -> std::uint8_t {
    ++probes;
    return unsafe_now;
  };
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(5);
  std::string v;
  ASSERT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  ASSERT_EQ(st->ngrants, 1u);
  EXPECT_EQ(t.seen()[0].flags & wire::kUnsafeFlags, 0);

  for (const std::uint8_t flag : {wire::kFlagKeyLog, wire::kFlagNotSocketBio, wire::kFlagAlpnNotHttp1}) {
    unsafe_now = flag;
    v.clear();
    const std::size_t before = t.seen().size();
    EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse) << int(flag);
    EXPECT_EQ(v, "");
    ASSERT_EQ(t.seen().size(), before + 1) << "an unsafe connection asks the broker, which audits the refusal";
    EXPECT_EQ(t.seen().back().flags & wire::kUnsafeFlags, flag);
    EXPECT_EQ(t.seen().back().path, "/v1/chat?x=1");
  }
  EXPECT_EQ(st->grants[0].unreported, 0u) << "refused swaps are not grant uses";

  unsafe_now = 0;
  const std::size_t before = t.seen().size();
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Allow);
  EXPECT_EQ(t.seen().size(), before) << "safe again: the grant answers";
  EXPECT_EQ(probes, 5);
}

TEST(SwapClient, ABrokerThatAllowsAnUnsafeSwapIsOverruled) {
  FakeTransport t;
  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, kValSame, wire::kReplyReuseOnConnection); };
  Facts facts;
  facts.f.unsafe = [](void*) -> std::uint8_t { return wire::kFlagNotSocketBio; };
  SwapClient c(t, facts.f);
  auto st = state_with_request_line(6);
  std::string v;
  EXPECT_EQ(swap(c, st.get(), kTokSame, &v), Decision::Refuse);
  EXPECT_EQ(v, "");
  EXPECT_EQ(st->ngrants, 0u);
  EXPECT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(FakeTransport::data_wiped());
}

TEST(SwapClient, AWriteWithoutATokenNeverProbesTheConnection) {
  FakeTransport t;
  auto table = std::make_unique<ConnTable>();
  int key = 0;
  static int probes;
  probes = 0;
  Facts facts;
  facts.f.unsafe = [](void*) -> std::uint8_t {
    ++probes;
    return 0;
  };
  SwapClient c(t, facts.f);
  FakeWriter w;
  const std::string req = "GET / HTTP/1.1\r\nAuthorization: Bearer plain-text\r\n\r\n";
  EXPECT_EQ(outbound_write(*table, &key, req.data(), req.size(), false, c.ops(), w.ops()), WriteOutcome::Consumed);
  EXPECT_EQ(probes, 0);
  EXPECT_EQ(facts.gathers, 0);
  EXPECT_TRUE(t.seen().empty());
}

TEST(SwapClient, DriverGathersFactsBeforeLockingTheConnection) {
  FakeTransport t;
  t.answer = [](const wire::Request&, wire::Reply& rep) { allow_value(rep, kValSame); };
  auto table = std::make_unique<ConnTable>();
  int key = 0;
  static ConnTable* probe_table;
  static const void* probe_key;
  static bool locked_at_gather;
  static int gathers;
  gathers = 0;
  probe_table = table.get();
  probe_key = &key;
  locked_at_gather = false;
  Facts facts;
  facts.f.gather = [](ConnFacts*) {
    ++gathers;
    if (ConnState* st = probe_table->find(probe_key)) {
      if (pthread_mutex_trylock(&st->mu) == 0) pthread_mutex_unlock(&st->mu);
      else locked_at_gather = true;
    } else {
      ADD_FAILURE() << "gathered before the state existed";
    }
  };
  SwapClient c(t, facts.f);
  FakeWriter w;
  // The connection has state already (an earlier token), so the write has a lock to take.
  ASSERT_NE(table->find_or_create(&key), nullptr);
  const std::string req = "GET / HTTP/1.1\r\nAuthorization: Bearer " + kTokSame + "\r\n\r\n";
  ASSERT_EQ(outbound_write(*table, &key, req.data(), req.size(), false, c.ops(), w.ops()), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, replace_all(req, kTokSame, kValSame));
  EXPECT_EQ(gathers, 1);
  EXPECT_FALSE(locked_at_gather);
}

// Two threads, two connections. The first one's broker answer (then its handshake) does
// not come until the second has swapped: with a process-wide lock around the round trip
// this would deadlock (caught by the bounded wait, then released).
void expect_no_cross_thread_blocking(bool slow_gather) {
  FakeTransport t;
  std::latch slow_entered(1), release(1);
  t.answer = [&](const wire::Request& r, wire::Reply& rep) {
    const std::string tok(reinterpret_cast<const char*>(r.data), r.data_len);
    if (tok == kTokSame && !slow_gather) {
      slow_entered.count_down();
      release.wait();
    }
    allow_value(rep, tok == kTokSame ? kValSame : kValShort);
  };
  Facts slow_facts, fast_facts;
  if (slow_gather) {
    static std::latch* entered;
    static std::latch* rel;
    entered = &slow_entered;
    rel = &release;
    slow_facts.f.gather = [](ConnFacts*) {
      entered->count_down();
      rel->wait();   // a handshake that waits on a slow peer
    };
  }
  auto slow_st = state_with_request_line(1), fast_st = state_with_request_line(2);
  std::string slow_value;
  std::thread slow([&] {
    SwapClient c(t, slow_facts.f);
    EXPECT_EQ(swap(c, slow_st.get(), kTokSame, &slow_value), Decision::Allow);
  });
  slow_entered.wait();
  auto fast = std::async(std::launch::async, [&] {
    SwapClient c(t, fast_facts.f);
    std::string v;
    return swap(c, fast_st.get(), kTokShort, &v) == Decision::Allow && v == kValShort;
  });
  const bool finished = fast.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  release.count_down();
  slow.join();
  ASSERT_TRUE(finished) << "the second thread's swap waited for the first one's";
  EXPECT_TRUE(fast.get());
  EXPECT_EQ(slow_value, kValSame);
}

TEST(SwapClient, SlowBrokerAnswerOnOneThreadDoesNotBlockAnother) { expect_no_cross_thread_blocking(false); }
TEST(SwapClient, SlowHandshakeOnOneThreadDoesNotBlockAnother) { expect_no_cross_thread_blocking(true); }

}  // namespace
}  // namespace kz::preload::test
