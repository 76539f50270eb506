// The outbound rewrite and its per-connection driver, with a fake broker and a fake TLS
// writer: tokens swapped in headers, query strings and bodies, refused tokens unchanged,
// tokens split across writes, Basic credentials, Content-Length and chunk-size fixup,
// held requests, flush and drop.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kz/preload/basic_auth.h"
#include "fakes.h"
#include "kz/preload/http_rewrite.h"
#include "kz/preload/outbound.h"

namespace kz::preload {
namespace {

using test::FakeBroker;
using test::FakeWriter;
using test::hook_write;
using test::kTokRefused;
using test::kTokSame;
using test::kTokShort;
using test::kTokUnknown;
using test::kValSame;
using test::kValShort;
using test::replace_all;

const void* const kKey = reinterpret_cast<const void*>(0x7000);
const void* const kKey2 = reinterpret_cast<const void*>(0x8000);

class Outbound : public ::testing::Test {
 protected:
  void TearDown() override {
    // Drop whatever the test left (frees held scratch memory).
    conn_drop(*t, kKey, FakeBroker().ops());
    conn_drop(*t, kKey2, FakeBroker().ops());
  }
  WriteOutcome write(const std::string& buf, bool fixup = false, const void* key = kKey) {
    return hook_write(*t, key, buf, fixup, b, w);
  }
  std::unique_ptr<ConnTable> t = std::make_unique<ConnTable>();
  FakeBroker b;
  FakeWriter w;
};

std::string get_with_header(const std::string& tok) {
  return "GET /v1/models HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " + tok +
         "\r\nAccept: */*\r\n\r\n";
}

std::string post_json(const std::string& body, const std::string& extra = "") {
  return "POST /v1/chat HTTP/1.1\r\nHost: api.example.com\r\n" + extra +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// ---- no token: the fast path -----------------------------------------------------------

TEST_F(Outbound, NoTokenPassesThroughWithoutBrokerOrState) {
  b.abort_on_call = true;
  const std::string req = get_with_header("plain-api-key");
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(write(post_json("{\"a\":1}")), WriteOutcome::Consumed);
  EXPECT_EQ(write("just some body bytes, no request line"), WriteOutcome::Consumed);
  // The connection's requests are tracked from its first write (message_tracker.h); the
  // bytes after two complete requests are no request line: the stream is lost from here.
  EXPECT_EQ(t->count(), 1u);
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_EQ(t->find(kKey)->tracker.phase, MessageTracker::Phase::Lost);
  EXPECT_EQ(write("more of it"), WriteOutcome::PassThrough);   // lost, no token: the caller's bytes
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_TRUE(b.reports.empty());
  EXPECT_EQ(w.sent, req + post_json("{\"a\":1}") + "just some body bytes, no request line" + "more of it");
  EXPECT_EQ(outbound_write(*t, kKey, nullptr, 0, false, b.ops(), w.ops()), WriteOutcome::PassThrough);
  EXPECT_EQ(outbound_write(*t, kKey, "x", 0, false, b.ops(), w.ops()), WriteOutcome::PassThrough);
}

// BrokerOps::prepare may complete a handshake, and the TLS library's own SSL_clear on the
// way (which the shim hooks) drops the connection's state. The write must go on with a
// state looked up afresh, never the one freed under it (on c32c10a it used the freed one).
ConnTable* g_dropping_table = nullptr;

TEST_F(Outbound, AStateDroppedWhilePreparingIsNotUsed) {
  ASSERT_EQ(write(get_with_header("plain-api-key")), WriteOutcome::Consumed);   // the connection has a state
  ASSERT_NE(t->find(kKey), nullptr);
  g_dropping_table = t.get();
  BrokerOps ops = b.ops();
  ops.prepare = [](void*, const ConnState*) { conn_drop(*g_dropping_table, kKey, FakeBroker().ops()); };
  const std::string req = get_with_header(kTokSame);
  EXPECT_EQ(outbound_write(*t, kKey, req.data(), req.size(), false, ops, w.ops()), WriteOutcome::Consumed);
  EXPECT_NE(t->find(kKey), nullptr) << "a new state for the connection";
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_TRUE(b.swaps[0].had_state);
  EXPECT_EQ(w.sent, get_with_header("plain-api-key") + get_with_header(kValSame));
}

// A TLS object whose next library call would start a handshake (left to SSL_write, or
// cleared past the hooks). OpenSSL starts it with SSL_clear, whose hook drops the
// connection's state under its lock: a driver that wrote through the library under that
// lock hung (review 53 #2). prepare must complete the handshake first, with no lock held.
struct UnstartedObject {
  ConnTable* table = nullptr;
  bool unstarted = true;
  bool handshook_under_lock = false;
  int prepares = 0;
  FakeWriter w;
  // BrokerOps::handshake_unstarted and prepare: the handshake, with the hook's drop.
  static bool is_unstarted(void* ctx) { return static_cast<UnstartedObject*>(ctx)->unstarted; }
  static void handshake(void* ctx, const ConnState*) {
    auto* o = static_cast<UnstartedObject*>(ctx);
    ++o->prepares;
    if (!o->unstarted) return;
    o->unstarted = false;
    conn_drop(*o->table, kKey, FakeBroker().ops());   // SSL_clear's hook, in the handshake
  }
  // WriteOps::write_all: the real SSL_write, which would run the handshake here.
  static bool write_all(void* ctx, const char* p, std::size_t n) {
    auto* o = static_cast<UnstartedObject*>(ctx);
    if (o->unstarted) o->handshook_under_lock = true;
    o->w.sent.append(p, n);
    return true;
  }
  // No broker calls: these writes hold no token.
  static wire::Decision no_swap(void*, ConnState*, const char*, std::size_t, bool, char*, std::size_t, std::size_t*,
                                std::size_t*) {
    ADD_FAILURE() << "the broker was asked for a swap";
    return wire::Decision::Unknown;
  }
  static void no_report(void*, ConnState*, const char*, std::size_t) { ADD_FAILURE() << "a token was reported"; }
  BrokerOps ops() {
    BrokerOps ops;
    ops.ctx = this;
    ops.swap = no_swap;
    ops.report = no_report;
    ops.handshake_unstarted = is_unstarted;
    ops.prepare = handshake;
    return ops;
  }
  WriteOps wops() { return WriteOps{this, write_all}; }
};

TEST_F(Outbound, AFirstWriteTheShimSendsItselfHandshakesBeforeTheLock) {
  // The write ends with the start of a token's prefix ("KZ_"): the shim checks it and
  // sends it itself, under the connection's new state's lock.
  UnstartedObject o;
  o.table = t.get();
  const std::string body = "note: KZ_";
  const std::string req = post_json(body);
  EXPECT_EQ(outbound_write(*t, kKey, req.data(), req.size(), false, o.ops(), o.wops()), WriteOutcome::Consumed);
  EXPECT_FALSE(o.unstarted);
  EXPECT_FALSE(o.handshook_under_lock);
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_EQ(o.w.sent, req);
}

TEST_F(Outbound, AnObjectClearedPastTheHooksHandshakesBeforeTheLock) {
  // A connection that followed HTTP/2 (its writes go through the h2 engine, which sends
  // them itself), then cleared past the hooks: its next write starts a new handshake.
  ASSERT_EQ(write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), WriteOutcome::Consumed);
  ASSERT_NE(t->find(kKey), nullptr);
  ASSERT_NE(t->find(kKey)->h2, nullptr);
  UnstartedObject o;
  o.table = t.get();
  const std::string settings("\0\0\0\4\0\0\0\0\0", 9);
  const WriteOutcome r = outbound_write(*t, kKey, settings.data(), settings.size(), false, o.ops(), o.wops());
  EXPECT_FALSE(o.handshook_under_lock);
  // The old connection's state went with the handshake: the frame starts a new one, as
  // HTTP/1.1 bytes (no preface), sent as they are.
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_EQ(t->find(kKey)->h2, nullptr);
  if (r == WriteOutcome::PassThrough) o.w.sent += settings;
  EXPECT_EQ(o.w.sent, settings);
}

TEST_F(Outbound, AFlushOnAnObjectClearedPastTheHooksHandshakesBeforeTheLock) {
  // Something held for the connection (the start of a token's prefix), then a read: the
  // flush sends it itself.
  ASSERT_EQ(write(post_json("{}") + "KZ_"), WriteOutcome::Consumed);
  ASSERT_NE(t->find(kKey), nullptr);
  ASSERT_TRUE(t->find(kKey)->has_outbound_state());
  UnstartedObject o;
  o.table = t.get();
  outbound_flush(*t, kKey, o.ops(), o.wops());
  EXPECT_FALSE(o.unstarted);
  EXPECT_FALSE(o.handshook_under_lock);
  EXPECT_EQ(o.w.sent, "") << "the old connection's bytes went with its state";
  EXPECT_EQ(t->find(kKey), nullptr);
}

TEST_F(Outbound, AnUnfollowedConnectionIsLostAndItsTokensReported) {
  const std::string req = get_with_header(kTokSame);
  conn_unfollow(*t, kKey, req.data(), req.size(), b.ops());
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_EQ(t->find(kKey)->tracker.phase, MessageTracker::Phase::Lost);
  ASSERT_EQ(b.reports.size(), 1u);
  EXPECT_EQ(b.reports[0], kTokSame);
  EXPECT_TRUE(b.swaps.empty());
  // Later writes on it: never swapped, reported.
  EXPECT_EQ(write(get_with_header(kTokSame)), WriteOutcome::Consumed);
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_EQ(b.reports.size(), 2u);
  EXPECT_EQ(w.sent, get_with_header(kTokSame));
  EXPECT_TRUE(conn_unfollowed(*t, kKey));
  conn_drop(*t, kKey, b.ops());
  EXPECT_FALSE(conn_unfollowed(*t, kKey)) << "a new connection at the same address is followed";
}

TEST_F(Outbound, AStartedHandshakeIsNotAskedToRunAgain) {
  UnstartedObject o;
  o.table = t.get();
  o.unstarted = false;
  const std::string req = post_json("note: KZ_");
  EXPECT_EQ(outbound_write(*t, kKey, req.data(), req.size(), false, o.ops(), o.wops()), WriteOutcome::Consumed);
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_EQ(t->find(kKey)->prev_trailing, 3u) << "the state that saw the prefix was kept";
  EXPECT_EQ(o.prepares, 0) << "a token-free write on a started object gathers nothing";
}

TEST_F(Outbound, NoTokenWithFixupPassesThroughUnchanged) {
  // With fixup a request head takes the slow path (it might need holding), but without
  // a token nothing is asked and the caller's own buffer goes out.
  b.abort_on_call = true;
  const std::string req = post_json("{\"a\":1}");
  EXPECT_EQ(write(req, true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, req);
  EXPECT_TRUE(b.swaps.empty());
}

TEST_F(Outbound, BarePrefixWithoutTokenTextIsNotAToken) {
  b.abort_on_call = true;
  const std::string s = "docs: tokens look like KZ_TOK_ followed by letters.\n";
  EXPECT_EQ(write(s), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, s);
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_TRUE(b.reports.empty());
}

TEST_F(Outbound, OtherConnectionStateDoesNotAffectAConnectionWithout) {
  // Key 2 holds an incomplete head with a token fragment; key 1's writes go out untouched.
  EXPECT_EQ(write("POST /x HTTP/1.1\r\nX-Key: " + kTokSame.substr(0, 12), false, kKey2), WriteOutcome::Consumed);
  ASSERT_EQ(t->count(), 1u);
  EXPECT_GT(t->find(kKey2)->held_len, 0u);
  const std::size_t before = b.swaps.size();
  w.sent.clear();
  EXPECT_EQ(write("GET / HTTP/1.1\r\n\r\n"), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(b.swaps.size(), before);
  ASSERT_NE(t->find(kKey), nullptr);
  EXPECT_FALSE(t->find(kKey)->has_outbound_state());
}

// ---- tokens in one write ----------------------------------------------------------------

TEST_F(Outbound, TokenInHeaderSwapped) {
  const std::string req = get_with_header(kTokSame);
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, get_with_header(kValSame));
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].tok, kTokSame);
  EXPECT_FALSE(b.swaps[0].at_end);
  // The broker sees the request line of this request (method/path bindings).
  EXPECT_TRUE(b.swaps[0].had_state);
  EXPECT_EQ(b.swaps[0].method, "GET");
  EXPECT_EQ(b.swaps[0].path, "/v1/models");
  EXPECT_TRUE(b.reports.empty());
  EXPECT_EQ(w.sent.find("KZ_TOK_"), std::string::npos);
}

TEST_F(Outbound, TokenInQueryStringSwapped) {
  const std::string req = "GET /v1/search?api_key=" + kTokSame + "&q=x HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, replace_all(req, kTokSame, kValSame));
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].path, "/v1/search?api_key=" + kTokSame + "&q=x");
}

TEST_F(Outbound, TokenInBodySwappedSameLength) {
  for (bool fixup : {false, true}) {
    FakeWriter out;
    const std::string req = post_json("{\"api_key\":\"" + kTokSame + "\",\"n\":1}");
    EXPECT_EQ(hook_write(*t, kKey, req, fixup, b, out), WriteOutcome::Consumed) << fixup;
    EXPECT_EQ(out.sent, replace_all(req, kTokSame, kValSame)) << fixup;
  }
  EXPECT_EQ(b.allowed(), 2u);
}

TEST_F(Outbound, TokenAtTheVeryEndIsCompleteNotCarried) {
  // The write ends exactly with a whole token: the broker is told at_end and answers
  // Allow for the exact token, so nothing is held back.
  const std::string body = "token=" + kTokSame;
  const std::string req = "POST /f HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, replace_all(req, kTokSame, kValSame));
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_TRUE(b.swaps[0].at_end);
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->carry_len, 0u);
}

TEST_F(Outbound, SeveralTokensInOneWrite) {
  const std::string req = post_json("{\"a\":\"" + kTokSame + "\",\"b\":\"" + kTokSame + "\"}",
                                    "X-Api-Key: " + kTokSame + "\r\n");
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, replace_all(req, kTokSame, kValSame));
  EXPECT_EQ(b.swaps.size(), 3u);
}

TEST_F(Outbound, RefusedAndUnknownTokensUnchanged) {
  for (const std::string& tok : {kTokRefused, kTokUnknown}) {
    FakeWriter out;
    const std::string req = get_with_header(tok);
    EXPECT_EQ(hook_write(*t, kKey, req, false, b, out), WriteOutcome::Consumed) << tok;
    EXPECT_EQ(out.sent, req);
    ASSERT_FALSE(b.swaps.empty());
    EXPECT_EQ(b.swaps.back().tok, tok);   // the broker saw it (and audits its refusal)
  }
  EXPECT_TRUE(b.reports.empty());
  EXPECT_EQ(b.allowed(), 0u);
}

TEST_F(Outbound, RefusedNextToAllowed) {
  const std::string req = post_json("{\"ok\":\"" + kTokSame + "\",\"no\":\"" + kTokRefused + "\"}");
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, replace_all(req, kTokSame, kValSame));
  EXPECT_NE(w.sent.find(kTokRefused), std::string::npos);
  EXPECT_EQ(b.swaps.size(), 2u);
}

TEST_F(Outbound, WriteFailureIsFailed) {
  w.fail = true;
  EXPECT_EQ(write(get_with_header(kTokSame)), WriteOutcome::Failed);
  EXPECT_TRUE(w.sent.empty());
  // On another connection, with a write that has a token and a complete head.
  EXPECT_EQ(write("POST /x HTTP/1.1\r\nX: " + kTokSame + "\r\n\r\n", false, kKey2), WriteOutcome::Failed);
}

// ---- short secrets: framing ----------------------------------------------------------------

TEST_F(Outbound, ShortSecretInHeaderNeedsFixup) {
  const std::string req = get_with_header(kTokShort);
  // Fixup off: the length-changing swap is dropped, the token goes out unchanged, reported.
  EXPECT_EQ(write(req, false), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, req);
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokShort});
  // Fixup on: swapped (the head's length is not counted anywhere).
  FakeWriter out;
  EXPECT_EQ(hook_write(*t, kKey2, req, true, b, out), WriteOutcome::Consumed);
  EXPECT_EQ(out.sent, get_with_header(kValShort));
  EXPECT_EQ(b.reports.size(), 1u);
}

TEST_F(Outbound, ShortSecretInJsonBodyOneWriteFixesContentLength) {
  // 109-byte body -> 89: the digit count shrinks too.
  std::string body = "{\"model\":\"m\",\"api_key\":\"" + kTokShort + "\",\"pad\":\"";
  body += std::string(109 - body.size() - 2, 'p') + "\"}";
  ASSERT_EQ(body.size(), 109u);
  const std::string req = post_json(body);
  EXPECT_EQ(write(req, true), WriteOutcome::Consumed);
  const std::string want_body = replace_all(body, kTokShort, kValShort);
  EXPECT_EQ(w.sent, post_json(want_body));
  EXPECT_NE(w.sent.find("Content-Length: 89\r\n"), std::string::npos);
  EXPECT_TRUE(b.reports.empty());
}

TEST_F(Outbound, ShortSecretBodyInSecondWriteIsHeldThenFixed) {
  const std::string body = "{\"api_key\":\"" + kTokShort + "\",\"stream\":false}";
  const std::string req = post_json(body);
  const std::string want = post_json(replace_all(body, kTokShort, kValShort));
  const std::size_t head_end = req.find("\r\n\r\n") + 4;
  // Split after the head, inside the body before the token, and inside the token.
  for (std::size_t split : {head_end, head_end + 5, req.find(kTokShort) + 10, req.size() - 1}) {
    auto table = std::make_unique<ConnTable>();
    FakeBroker fb;
    FakeWriter out;
    EXPECT_EQ(hook_write(*table, kKey, req.substr(0, split), true, fb, out), WriteOutcome::Consumed) << split;
    EXPECT_EQ(out.sent, "") << "a request whose body is incomplete is held, split " << split;
    EXPECT_TRUE(fb.swaps.empty());
    ConnState* st = table->find(kKey);
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(st->held_len, split);
    EXPECT_EQ(hook_write(*table, kKey, req.substr(split), true, fb, out), WriteOutcome::Consumed) << split;
    EXPECT_EQ(out.sent, want) << split;
    EXPECT_EQ(out.calls.size(), 1u);
    EXPECT_EQ(st->held_len, 0u);
    EXPECT_EQ(st->held, nullptr);
    EXPECT_TRUE(fb.reports.empty());
    conn_drop(*table, kKey, fb.ops());
  }
}

TEST_F(Outbound, RequestHeldOverSeveralWrites) {
  const std::string body = "[\"" + kTokShort + "\"," + std::string(3000, '1') + "]";
  const std::string req = post_json(body);
  const std::size_t head_end = req.find("\r\n\r\n") + 4;
  EXPECT_EQ(write(req.substr(0, head_end), true), WriteOutcome::Consumed);
  for (std::size_t at = head_end; at < req.size(); at += 500) {
    EXPECT_TRUE(w.sent.empty());
    EXPECT_EQ(write(req.substr(at, 500), true), WriteOutcome::Consumed);
  }
  EXPECT_EQ(w.sent, post_json(replace_all(body, kTokShort, kValShort)));
}

TEST_F(Outbound, ExpectContinueIsNotHeld) {
  // The client waits for "100 Continue" before sending the body: holding would deadlock.
  const std::string body = "{\"k\":\"" + kTokShort + "\"}";
  const std::string req = post_json(body, "Expect: 100-continue\r\n");
  const std::size_t head_end = req.find("\r\n\r\n") + 4;
  EXPECT_EQ(write(req.substr(0, head_end), true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, req.substr(0, head_end));
  // The body alone has no framing to correct: the token goes out unchanged, reported.
  EXPECT_EQ(write(req.substr(head_end), true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, req);
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokShort});
}

TEST_F(Outbound, ShortSecretBodyWithoutFixupIsReported) {
  const std::string req = post_json("{\"k\":\"" + kTokShort + "\"}");
  EXPECT_EQ(write(req, false), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, req);
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokShort});
}

std::string chunk(const std::string& data) {
  char hex[24];
  const std::size_t n = format_hex(data.size(), hex, sizeof hex);
  return std::string(hex, n) + "\r\n" + data + "\r\n";
}

const std::string kChunkedHead = "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

TEST_F(Outbound, ChunkedBodyOneWriteFixesChunkSize) {
  const std::string data = "{\"key\":\"" + kTokShort + "\"}";
  const std::string req = kChunkedHead + chunk(data) + "0\r\n\r\n";
  EXPECT_EQ(write(req, true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, kChunkedHead + chunk(replace_all(data, kTokShort, kValShort)) + "0\r\n\r\n");
  EXPECT_NE(w.sent.find("\r\n14\r\n"), std::string::npos);   // 0x28 - 20
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->chunked_body);   // the last chunk was seen
}

TEST_F(Outbound, ChunkedBodyInLaterWritesUsesConnectionState) {
  const std::string d1 = "{\"key\":\"" + kTokShort + "\",";
  const std::string d2 = "\"other\":\"" + kTokShort + "\"}";
  EXPECT_EQ(write(kChunkedHead, true), WriteOutcome::Consumed);
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(st->chunked_body);
  EXPECT_EQ(write(chunk(d1), true), WriteOutcome::Consumed);
  EXPECT_TRUE(st->chunked_body);
  EXPECT_EQ(write(chunk(d2) + "0\r\n\r\n", true), WriteOutcome::Consumed);
  EXPECT_FALSE(st->chunked_body);
  EXPECT_EQ(w.sent, kChunkedHead + chunk(replace_all(d1, kTokShort, kValShort)) +
                        chunk(replace_all(d2, kTokShort, kValShort)) + "0\r\n\r\n");
  EXPECT_TRUE(b.reports.empty());
  // The next request on the connection is not chunked.
  EXPECT_EQ(write(post_json("{\"k\":\"" + kTokShort + "\"}"), true), WriteOutcome::Consumed);
  EXPECT_FALSE(st->chunked_body);
}

TEST_F(Outbound, ChunkSizeLineIsHeldUntilItsChunkIsComplete) {
  // urllib3 writes a chunk as four writes: size, CRLF, data, CRLF. The size line is held
  // back until its data is in, so it can be corrected.
  const std::string data = "{\"key\":\"" + kTokShort + "\"}";
  char hex[16];
  std::snprintf(hex, sizeof hex, "%zx", data.size());
  EXPECT_EQ(write(kChunkedHead, true), WriteOutcome::Consumed);
  EXPECT_EQ(write(hex, true), WriteOutcome::Consumed);
  EXPECT_EQ(write("\r\n", true), WriteOutcome::Consumed);
  EXPECT_EQ(write(data, true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, kChunkedHead);   // nothing of the chunk went out yet
  EXPECT_EQ(write("\r\n", true), WriteOutcome::Consumed);
  EXPECT_EQ(write("0\r\n\r\n", true), WriteOutcome::Consumed);   // complete, no token
  EXPECT_EQ(w.sent, kChunkedHead + chunk(replace_all(data, kTokShort, kValShort)) + "0\r\n\r\n");
  EXPECT_TRUE(b.reports.empty());
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->chunked_body);
}

TEST_F(Outbound, ChunkBeyondTheHoldLimitStopsTrackingAndReports) {
  // A chunk larger than the hold limit cannot be held: its size line goes out, the body
  // is no longer followed, and a short value inside it is refused (token unchanged).
  const std::string data = "{\"key\":\"" + kTokShort + "\"}";
  const std::string big(kHoldLimit + 16, 'x');
  char hex[32];
  std::snprintf(hex, sizeof hex, "%zx\r\n", big.size() + data.size());
  EXPECT_EQ(write(kChunkedHead, true), WriteOutcome::Consumed);
  write(std::string(hex) + big, true);
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->chunked_body);
  write(data + "\r\n0\r\n\r\n", true);
  EXPECT_EQ(w.sent, kChunkedHead + hex + big + data + "\r\n0\r\n\r\n");
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokShort});
}

TEST_F(Outbound, ChunkedFlushBeforeReadSendsTheHeldPartAndStopsTracking) {
  const std::string data = "{\"key\":\"" + kTokShort + "\"}";
  EXPECT_EQ(write(kChunkedHead, true), WriteOutcome::Consumed);
  EXPECT_EQ(write("28\r\n" + data.substr(0, 5), true), WriteOutcome::Consumed);
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, kChunkedHead + "28\r\n" + data.substr(0, 5));
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->chunked_body);
}

// ---- Basic credentials ------------------------------------------------------------------------

std::string b64(const std::string& s) {
  std::string out(s.size() / 3 * 4 + 8, '\0');
  const long n = b64_encode(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data(), out.size());
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

std::string get_basic(const std::string& cred, const std::string& header = "Authorization") {
  return "GET /repo.git/info/refs HTTP/1.1\r\nHost: git.example.com\r\n" + header + ": Basic " + b64(cred) +
         "\r\n\r\n";
}

TEST_F(Outbound, BasicCredentialReencodedWithValue) {
  const std::string req = get_basic("user:" + kTokSame);
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, get_basic("user:" + kValSame));
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].tok, kTokSame);
  EXPECT_FALSE(b.swaps[0].at_end);   // the credential ended: the token is complete
}

// Any spelling of the scheme, and a tab after it: the parser accepts them, so the fast
// path's pre-check must let them through (it once looked for "asic " / "ASIC " only).
TEST_F(Outbound, BasicSchemeInAnyCaseOrBeforeATab) {
  for (const std::string scheme : {"bAsIc ", "Basic\t"}) {
    SCOPED_TRACE(scheme);
    const std::string head = "GET / HTTP/1.1\r\nHost: git.example.com\r\nAuthorization: " + scheme;
    w.sent.clear();
    b.swaps.clear();
    EXPECT_EQ(write(head + b64("user:" + kTokSame) + "\r\n\r\n"), WriteOutcome::Consumed);
    EXPECT_EQ(w.sent, head + b64("user:" + kValSame) + "\r\n\r\n");
    EXPECT_EQ(b.swaps.size(), 1u);
  }
}

TEST_F(Outbound, BasicTokenAsUserAndProxyAuthorization) {
  const std::string req = get_basic(kTokSame + ":x-oauth-basic", "Proxy-Authorization");
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, get_basic(kValSame + ":x-oauth-basic", "Proxy-Authorization"));
}

TEST_F(Outbound, BasicShortSecretWithFixup) {
  const std::string req = get_basic("user:" + kTokShort);
  EXPECT_EQ(write(req, true), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, get_basic("user:" + kValShort));
}

TEST_F(Outbound, BasicWithoutTokenOrRefusedIsUnchanged) {
  for (const std::string& cred : {std::string("user:password"), "user:" + kTokRefused}) {
    FakeWriter out;
    const std::string req = get_basic(cred);
    EXPECT_EQ(hook_write(*t, kKey, req, false, b, out), WriteOutcome::Consumed) << cred;
    EXPECT_EQ(out.sent, req);
  }
  ASSERT_EQ(b.swaps.size(), 1u);   // only the refused token was asked about
  EXPECT_EQ(b.swaps[0].tok, kTokRefused);
}

TEST_F(Outbound, BasicAndBearerInOneHead) {
  const std::string req = "GET / HTTP/1.1\r\nAuthorization: Basic " + b64("u:" + kTokSame) +
                          "\r\nX-Api-Key: " + kTokSame + "\r\n\r\n";
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, "GET / HTTP/1.1\r\nAuthorization: Basic " + b64("u:" + kValSame) + "\r\nX-Api-Key: " +
                        kValSame + "\r\n\r\n");
}

// ---- tokens split across writes ------------------------------------------------------------

struct SplitRun {
  std::string first_out, all_out;
  FakeBroker broker;
  WriteOutcome r1{}, r2{};
};

// Sends req in two writes split at `split` on a fresh table; then drops the connection.
SplitRun run_split(const std::string& req, std::size_t split, bool fixup) {
  SplitRun run;
  auto table = std::make_unique<ConnTable>();
  FakeWriter out;
  run.r1 = hook_write(*table, kKey, req.substr(0, split), fixup, run.broker, out);
  run.first_out = out.sent;
  run.r2 = hook_write(*table, kKey, req.substr(split), fixup, run.broker, out);
  run.all_out = out.sent;
  if (ConnState* st = table->find(kKey)) {
    EXPECT_FALSE(st->has_outbound_state()) << "state left after a complete request";
  }
  conn_drop(*table, kKey, run.broker.ops());
  EXPECT_EQ(table->count(), 0u);
  return run;
}

// Positions of every occurrence of tok in s.
std::vector<std::size_t> occurrences(const std::string& s, const std::string& tok) {
  std::vector<std::size_t> at;
  for (std::size_t p = s.find(tok); p != std::string::npos; p = s.find(tok, p + 1)) at.push_back(p);
  return at;
}

// Checks one split of a request whose tokens all swap to same-length values: the output
// is the request with every occurrence either swapped or (only when the split falls in
// its "KZ_TOK_" prefix) unchanged and reported; the first write never ends inside a token.
void check_same_length_split(const std::string& req, std::size_t split, bool fixup, bool prefix_split_may_swap) {
  SCOPED_TRACE("split at " + std::to_string(split) + (fixup ? " fixup" : ""));
  const SplitRun run = run_split(req, split, fixup);
  ASSERT_EQ(run.all_out.size(), req.size());   // same-length values: positions are stable
  std::size_t unchanged = 0;
  for (std::size_t pos : occurrences(req, kTokSame)) {
    const std::string got = run.all_out.substr(pos, kTokSame.size());
    const bool in_prefix = split > pos && split < pos + wire::kTokenPrefixLen;
    if (got == kTokSame) {
      EXPECT_TRUE(in_prefix) << "token at " << pos << " not swapped";
      ++unchanged;
    } else {
      EXPECT_EQ(got, kValSame) << "token at " << pos << " half swapped";
      if (in_prefix) {
        EXPECT_TRUE(prefix_split_may_swap);
      }
    }
    // The first write's output never stops inside this token.
    if (run.first_out.size() > pos && run.first_out.size() < pos + kTokSame.size()) {
      EXPECT_TRUE(in_prefix) << "first write ends inside the token: " << run.first_out.substr(pos);
      EXPECT_EQ(run.first_out.substr(pos), kTokSame.substr(0, run.first_out.size() - pos));
    }
  }
  // Everything outside the tokens is byte-identical.
  EXPECT_EQ(replace_all(run.all_out, kValSame, kTokSame), req);
  // An unchanged token is reported, with its full text.
  EXPECT_EQ(run.broker.reports.size(), unchanged);
  for (const auto& r : run.broker.reports) EXPECT_EQ(r, kTokSame);
  // The first write's output is the start of the final output, and holds no token text.
  EXPECT_EQ(run.all_out.compare(0, run.first_out.size(), run.first_out), 0);
  if (unchanged == 0) {
    EXPECT_EQ(run.first_out.find("KZ_TOK_"), std::string::npos);
  }
  // Complete tokens only, except the start of one at the end of a write (asking whether
  // it is a token's beginning).
  for (const auto& s : run.broker.swaps)
    if (s.tok != kTokSame) {
      EXPECT_TRUE(s.at_end) << s.tok;
      EXPECT_EQ(kTokSame.compare(0, s.tok.size(), s.tok), 0) << s.tok;
    }
}

// A class-shaped token (a Slack bot token's rest: digits, '-' kept, then alphanumerics)
// after its kept prefix "xoxb-", in a header and in a JSON body, split at every byte:
// the marker is found and the token swapped whole; only a split inside the marker of the
// body's copy leaves it unchanged (and reported), as for "KZ_TOK_".
TEST(OutboundSplit, ShapedTokenAtEverySplitPoint) {
  const std::string tok = std::string(wire::kMarkerDigits) + "123-4567890123456-aBcDeFgHiJkLmNoPqRsTuVwX";
  const std::string val = "1098765432109-1234567890123-ZyXwVuTsRqPoNmLkJiHgFeDc";
  ASSERT_EQ(tok.size(), val.size());
  const std::string req = post_json("{\"token\":\"xoxb-" + tok + "\",\"x\":1}",
                                    "Authorization: Bearer xoxb-" + tok + "\r\n");
  const std::string want = replace_all(req, tok, val);
  const std::size_t body_at = req.rfind(tok);
  for (bool fixup : {false, true})
    for (std::size_t split = 1; split < req.size(); ++split) {
      SCOPED_TRACE("split at " + std::to_string(split) + (fixup ? " fixup" : ""));
      auto table = std::make_unique<ConnTable>();
      FakeBroker broker;
      broker.values[tok] = val;
      FakeWriter out;
      hook_write(*table, kKey, req.substr(0, split), fixup, broker, out);
      const std::string first = out.sent;
      hook_write(*table, kKey, req.substr(split), fixup, broker, out);
      conn_drop(*table, kKey, broker.ops());
      const bool in_marker = !fixup && split > body_at && split < body_at + wire::kMarkerDigitLen;
      if (in_marker) {
        EXPECT_EQ(out.sent, replace_all(req.substr(0, body_at), tok, val) + req.substr(body_at));
        EXPECT_EQ(broker.reports, std::vector<std::string>{tok});
      } else {
        EXPECT_EQ(out.sent, want);
        EXPECT_TRUE(broker.reports.empty());
      }
      EXPECT_EQ(first.find(tok.substr(0, wire::kMarkerDigitLen + 1)), std::string::npos) << "token text went out";
    }
}

// A string that merely contains a marker, or a shaped token with a byte changed, is left
// alone: the broker knows no such token, nothing is swapped.
TEST(OutboundSplit, ShapedLookalikeIsNotSwapped) {
  const std::string tok = std::string(wire::kMarkerLower) + "Ab3dE5gH7jK9mN1pQ2sT4vW6yZ8";
  const std::string look = std::string(wire::kMarkerLower) + "Ab3dE5gH7jK9mN1pQ2sT4vW6yZ9";
  auto table = std::make_unique<ConnTable>();
  FakeBroker broker;
  broker.values[tok] = "ghp-value-not-to-be-sent-at-all-00";
  FakeWriter out;
  const std::string req = get_with_header("ghp_" + look);
  hook_write(*table, kKey, req, false, broker, out);
  conn_drop(*table, kKey, broker.ops());
  EXPECT_EQ(out.sent, req);
  ASSERT_EQ(broker.swaps.size(), 1u);
  EXPECT_EQ(broker.swaps[0].tok, look);
  EXPECT_EQ(broker.allowed(), 0u);
}

TEST(OutboundSplit, HeaderTokenAtEverySplitPoint) {
  const std::string req = get_with_header(kTokSame);
  for (bool fixup : {false, true})
    // A head the first write ends inside is held until its end: the token is swapped
    // whole wherever the split falls, also inside its "KZ_TOK_" prefix.
    for (std::size_t split = 1; split < req.size(); ++split) check_same_length_split(req, split, fixup, true);
}

TEST(OutboundSplit, HeaderAndBodyTokensAtEverySplitPoint) {
  const std::string req = post_json("{\"api_key\":\"" + kTokSame + "\",\"x\":[1,2,3]}",
                                    "Authorization: Bearer " + kTokSame + "\r\n");
  const std::size_t head_end = req.find("\r\n\r\n") + 4;
  for (std::size_t split = 1; split < req.size(); ++split)
    check_same_length_split(req, split, false, split < head_end);   // a split head is held whole
  // With fixup a request whose body is incomplete is held whole, so a split anywhere in
  // the body (even in a token's prefix) is swapped.
  for (std::size_t split = 1; split < req.size(); ++split) check_same_length_split(req, split, true, true);
}

TEST(OutboundSplit, PrefixSplitInAHeadIsHeldAndSwappedWhole) {
  // The first write ends inside the head (and inside the token's prefix): the head is
  // held until its end arrives, then decided whole.
  const std::string req = get_with_header(kTokSame);
  const std::size_t pos = req.find(kTokSame);
  for (std::size_t k = 1; k <= wire::kTokenPrefixLen; ++k) {
    SCOPED_TRACE(k);
    const SplitRun run = run_split(req, pos + k, false);
    EXPECT_EQ(run.r1, WriteOutcome::Consumed);
    EXPECT_EQ(run.first_out, "");
    EXPECT_EQ(run.all_out, get_with_header(kValSame));
    EXPECT_TRUE(run.broker.reports.empty());
  }
}

TEST(OutboundSplit, PrefixSplitInABodyIsReportedNeverHalfSwapped) {
  const std::string body = "{\"k\":\"" + kTokSame + "\"}";
  const std::string req = post_json(body);
  const std::size_t pos = req.find(kTokSame);
  for (std::size_t k = 1; k < wire::kTokenPrefixLen; ++k) {
    SCOPED_TRACE(k);
    const SplitRun run = run_split(req, pos + k, false);
    EXPECT_EQ(run.r1, WriteOutcome::Consumed);
    EXPECT_EQ(run.first_out, req.substr(0, pos + k));   // "...KZ_T": out as it is
    EXPECT_EQ(run.all_out, req);
    EXPECT_EQ(run.broker.reports, std::vector<std::string>{kTokSame});
    EXPECT_EQ(run.broker.allowed(), 0u);
  }
  // Split just after the whole prefix: the fragment is held back and swapped.
  const SplitRun run = run_split(req, pos + wire::kTokenPrefixLen, false);
  EXPECT_EQ(run.first_out, req.substr(0, pos));
  EXPECT_EQ(run.all_out, replace_all(req, kTokSame, kValSame));
  EXPECT_TRUE(run.broker.reports.empty());
}

TEST(OutboundSplit, ExplicitBearerSplit) {
  // "Authorization: Bearer KZ_TOK_sam" | "eLenToken...\r\n...": the head is held whole.
  const std::string req = get_with_header(kTokSame);
  const std::size_t split = req.find(kTokSame) + 10;
  const SplitRun run = run_split(req, split, false);
  EXPECT_EQ(run.r1, WriteOutcome::Consumed);
  EXPECT_EQ(run.first_out, "");
  EXPECT_EQ(run.r2, WriteOutcome::Consumed);
  EXPECT_EQ(run.all_out, get_with_header(kValSame));
  ASSERT_EQ(run.broker.swaps.size(), 1u);
  EXPECT_EQ(run.broker.swaps[0].tok, kTokSame);
  EXPECT_EQ(run.broker.swaps[0].path, "/v1/models");
}

TEST(OutboundSplit, ShortSecretNeverHalfSwapped) {
  // A shorter value changes the framing; where the framing is not in the buffer the token
  // goes out whole and is reported. Either way: no partial token, no stray bytes.
  const std::string body = "{\"api_key\":\"" + kTokShort + "\"}";
  const std::string req = post_json(body);
  const std::string swapped = post_json(replace_all(body, kTokShort, kValShort));
  for (std::size_t split = 1; split < req.size(); ++split) {
    SCOPED_TRACE(split);
    const SplitRun run = run_split(req, split, true);
    if (run.all_out == swapped) {
      EXPECT_TRUE(run.broker.reports.empty());
    } else {
      EXPECT_EQ(run.all_out, req);
      EXPECT_EQ(run.broker.reports, std::vector<std::string>{kTokShort});
    }
    // Once the head is whole in the first write, the request is held and fixed.
    if (split >= req.find("\r\n\r\n") + 4) {
      EXPECT_EQ(run.all_out, swapped);
      EXPECT_EQ(run.first_out, "");
    }
  }
}

TEST(OutboundSplit, ByteByByteNeverHalfSwapped) {
  // Worst case: one byte per write. The token is never partly replaced.
  for (const std::string& req : {get_with_header(kTokSame), post_json("{\"k\":\"" + kTokSame + "\"}")}) {
    auto table = std::make_unique<ConnTable>();
    FakeBroker fb;
    FakeWriter out;
    for (char c : req) hook_write(*table, kKey, std::string(1, c), false, fb, out);
    outbound_flush(*table, kKey, fb.ops(), out.ops());
    EXPECT_TRUE(out.sent == req || out.sent == replace_all(req, kTokSame, kValSame)) << out.sent;
    // A prefix spread over seven writes is still seen, and the unswapped token reported.
    if (out.sent == req) {
      ASSERT_EQ(fb.reports.size(), 1u);
      EXPECT_EQ(fb.reports[0].rfind("KZ_TOK_", 0), 0u) << fb.reports[0];
    }
    conn_drop(*table, kKey, fb.ops());
  }
}

TEST(OutboundSplit, TokenStartThenValueInLaterWrites) {
  // "Bearer " | "KZ_TOK_" | rest: the head is held until its end, then swapped whole.
  const std::string req = get_with_header(kTokSame);
  const std::size_t pos = req.find(kTokSame);
  auto table = std::make_unique<ConnTable>();
  FakeBroker fb;
  FakeWriter out;
  EXPECT_EQ(hook_write(*table, kKey, req.substr(0, pos), false, fb, out), WriteOutcome::Consumed);
  EXPECT_EQ(hook_write(*table, kKey, req.substr(pos, 7), false, fb, out), WriteOutcome::Consumed);
  EXPECT_EQ(hook_write(*table, kKey, req.substr(pos + 7, 5), false, fb, out), WriteOutcome::Consumed);
  EXPECT_EQ(out.sent, "");
  EXPECT_EQ(hook_write(*table, kKey, req.substr(pos + 12), false, fb, out), WriteOutcome::Consumed);
  EXPECT_EQ(out.sent, get_with_header(kValSame));
  conn_drop(*table, kKey, fb.ops());
}

TEST(OutboundSplit, UnknownFragmentAtEndIsNotHeld) {
  // The end of a write that is not the start of any known token goes out now.
  const std::string s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\nX: KZ_TOK_zzz";
  auto table = std::make_unique<ConnTable>();
  FakeBroker fb;
  FakeWriter out;
  EXPECT_EQ(hook_write(*table, kKey, s, false, fb, out), WriteOutcome::Consumed);
  EXPECT_EQ(out.sent, s);
  ASSERT_EQ(fb.swaps.size(), 1u);
  EXPECT_TRUE(fb.swaps[0].at_end);
  ConnState* st = table->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->carry_len, 0u);
  conn_drop(*table, kKey, fb.ops());
}

// ---- flush and drop -----------------------------------------------------------------------------

TEST_F(Outbound, FlushSendsHeldFragmentUnchangedAndReportsIt) {
  const std::string part = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n{\"k\":\"" + kTokSame.substr(0, 15);
  EXPECT_EQ(write(part), WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, part.substr(0, part.size() - 15));
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->carry_len, 15u);
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, part);
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokSame.substr(0, 15)});
  EXPECT_EQ(st->carry_len, 0u);
  // Nothing left to flush.
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, part);
  EXPECT_EQ(b.reports.size(), 1u);
}

TEST_F(Outbound, FlushSendsHeldRequest) {
  // Head and part of the body held (fixup); the client reads before sending the rest.
  const std::string body = "{\"a\":\"" + kTokSame + "\",\"b\":\"" + kTokShort + "\",\"pad\":\"xxxxxxxxxx\"}";
  const std::string req = post_json(body, "X-Api-Key: " + kTokSame + "\r\n");
  const std::size_t split = req.find("pad");
  EXPECT_EQ(write(req.substr(0, split), true), WriteOutcome::Consumed);
  EXPECT_TRUE(w.sent.empty());
  outbound_flush(*t, kKey, b.ops(), w.ops());
  // Same-length values are swapped; the short one's framing cannot follow (the body is
  // incomplete), so it goes out unchanged and is reported.
  EXPECT_EQ(w.sent, replace_all(req.substr(0, split), kTokSame, kValSame));
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokShort});
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->held_len, 0u);
  // The rest of the body now goes straight through.
  EXPECT_EQ(write(req.substr(split), true), WriteOutcome::PassThrough);
  EXPECT_EQ(replace_all(w.sent, kValSame, kTokSame), req);
}

TEST_F(Outbound, FlushOfHeldRequestSwapsShortSecretInHead) {
  // The head of a held request is complete: a shorter value there needs no framing.
  const std::string body = "{\"pad\":\"" + std::string(50, 'x') + "\"}";
  const std::string req = post_json(body, "Authorization: Bearer " + kTokShort + "\r\n");
  const std::size_t split = req.size() - 10;
  EXPECT_EQ(write(req.substr(0, split), true), WriteOutcome::Consumed);
  EXPECT_TRUE(w.sent.empty());
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, replace_all(req.substr(0, split), kTokShort, kValShort));
  EXPECT_TRUE(b.reports.empty());
}

TEST_F(Outbound, FlushOfHeldRequestEndingInsideATokenReportsIt) {
  // Held request whose partial body ends with the start of a token: flushed without
  // waiting, the fragment goes out unchanged and must be reported.
  const std::string body = "{\"a\":\"" + kTokSame + "\"}";
  const std::string req = post_json(body);
  const std::size_t split = req.find(kTokSame) + 12;
  EXPECT_EQ(write(req.substr(0, split), true), WriteOutcome::Consumed);
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, req.substr(0, split));
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokSame.substr(0, 12)});
}

TEST_F(Outbound, FlushWithNothingHeldDoesNothing) {
  outbound_flush(*t, kKey, b.ops(), w.ops());   // no entry at all
  EXPECT_EQ(write(get_with_header(kTokSame)), WriteOutcome::Consumed);
  const std::string sent = w.sent;
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(w.sent, sent);
  EXPECT_TRUE(b.reports.empty());
}

TEST_F(Outbound, FlushClearsPrefixTrailingState) {
  // A write ending in "KZ_T", then a read (flush), then "OK_...": the read separates
  // them, so nothing is reported as a split token.
  EXPECT_EQ(write("POST /x HTTP/1.1\r\nX: KZ_T"), WriteOutcome::Consumed);
  outbound_flush(*t, kKey, b.ops(), w.ops());
  EXPECT_EQ(write("OK_abc\r\n\r\n"), WriteOutcome::PassThrough);
  EXPECT_TRUE(b.reports.empty());
}

TEST_F(Outbound, DropReportsHeldFragmentAndForgetsConnection) {
  EXPECT_EQ(write("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 60\r\n\r\nkey=" + kTokSame.substr(0, 20)),
            WriteOutcome::Consumed);
  ASSERT_EQ(t->count(), 1u);
  const std::string sent = w.sent;
  conn_drop(*t, kKey, b.ops());
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokSame.substr(0, 20)});
  EXPECT_EQ(t->count(), 0u);
  EXPECT_EQ(t->find(kKey), nullptr);
  EXPECT_EQ(w.sent, sent);   // nothing sent on drop
  conn_drop(*t, kKey, b.ops());   // again: nothing
  EXPECT_EQ(b.reports.size(), 1u);
}

TEST_F(Outbound, DropDiscardsHeldRequestWithoutSending) {
  const std::string req = post_json("{\"k\":\"" + kTokShort + "\",\"more\":1}");
  EXPECT_EQ(write(req.substr(0, req.size() - 4), true), WriteOutcome::Consumed);
  conn_drop(*t, kKey, b.ops());
  EXPECT_TRUE(w.sent.empty());
  EXPECT_TRUE(b.reports.empty());
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_EQ(t->count(), 0u);
}

// ---- the table is full ---------------------------------------------------------------------------

TEST_F(Outbound, TableFullReportsTokensAndLosesNewConnections) {
  for (std::uintptr_t i = 0; i < ConnTable::kSlots; ++i)
    ASSERT_NE(t->find_or_create(reinterpret_cast<const void*>(0x100000 + i * 64)), nullptr);
  ASSERT_EQ(t->find_or_create(kKey), nullptr);
  // No state: this connection's requests are not tracked, so no token on it is swapped.
  EXPECT_EQ(write(get_with_header(kTokSame)), WriteOutcome::PassThrough);
  EXPECT_EQ(w.sent, get_with_header(kTokSame));
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_EQ(b.reports, std::vector<std::string>{kTokSame});
  EXPECT_EQ(t->find(kKey), nullptr);
  // Room again: a connection that gets its state now may have written untracked bytes
  // before, so it starts lost (fail closed).
  t->remove(reinterpret_cast<const void*>(0x100000));
  EXPECT_EQ(write(get_with_header(kTokSame)), WriteOutcome::Consumed);
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_EQ(b.reports.size(), 2u);
  for (std::uintptr_t i = 0; i < ConnTable::kSlots; ++i) t->remove(reinterpret_cast<const void*>(0x100000 + i * 64));
}

// ---- rewrite_outbound directly ------------------------------------------------------------------

struct Rewritten {
  OutboundResult r;
  std::string out;
};

Rewritten rewrite(const std::string& in, const OutboundOptions& o, FakeBroker& fb, ConnState* st = nullptr) {
  std::vector<char> out(in.size() + 1), work(outbound_work_size(in.size()));
  Rewritten rw;
  rw.r = rewrite_outbound(in.data(), in.size(), o, fb.ops(), st, out.data(), work.data());
  rw.out = rw.r.changed ? std::string(out.data(), rw.r.out_len) : in.substr(0, rw.r.out_len);
  return rw;
}

TEST(RewriteOutbound, ResultFields) {
  FakeBroker fb;
  OutboundOptions o;
  const std::string in = "x=" + kTokSame + "&y=" + kTokRefused + "&z=" + kTokSame.substr(0, 9);
  const Rewritten rw = rewrite(in, o, fb);
  EXPECT_TRUE(rw.r.changed);
  EXPECT_EQ(rw.r.swapped, 1u);
  EXPECT_EQ(rw.r.carry_len, 9u);
  EXPECT_FALSE(rw.r.hold_request);
  EXPECT_EQ(rw.out, "x=" + kValSame + "&y=" + kTokRefused + "&z=");
}

TEST(RewriteOutbound, HoldOnlyWithinTheHoldLimit) {
  FakeBroker fb;
  const std::string body = "{\"k\":\"" + kTokShort + "\"," + std::string(100, ' ') + "}";
  const std::string req = post_json(body);
  const std::string part = req.substr(0, req.size() - 50);
  OutboundOptions o;
  o.fixup_lengths = true;
  EXPECT_TRUE(rewrite(part, o, fb).r.hold_request);
  EXPECT_TRUE(fb.swaps.empty());
  o.hold_limit = req.size() - 1;   // the whole request would not fit
  const Rewritten rw = rewrite(part, o, fb);
  EXPECT_FALSE(rw.r.hold_request);
  EXPECT_EQ(rw.out, part);   // the body edit cannot be accounted for: dropped
  EXPECT_EQ(rw.r.reported, 1u);
  o.hold_limit = req.size();
  EXPECT_TRUE(rewrite(part, o, fb).r.hold_request);
  o.allow_hold = false;
  EXPECT_FALSE(rewrite(part, o, fb).r.hold_request);
  o.allow_hold = true;
  o.fixup_lengths = false;   // no fixup: never held
  EXPECT_FALSE(rewrite(part, o, fb).r.hold_request);
}

TEST(RewriteOutbound, NoCarryWhenNotAllowed) {
  FakeBroker fb;
  OutboundOptions o;
  o.allow_carry = false;
  const std::string in = "Authorization: Bearer " + kTokSame.substr(0, 20);
  const Rewritten rw = rewrite(in, o, fb);
  EXPECT_EQ(rw.r.carry_len, 0u);
  EXPECT_EQ(rw.out, in);
  EXPECT_EQ(fb.reports, std::vector<std::string>{kTokSame.substr(0, 20)});
}

TEST(RewriteOutbound, ManyTokensBeyondTheEditLimitAreReported) {
  FakeBroker fb;
  std::string in;
  for (int i = 0; i < 130; ++i) in += kTokSame + ",";
  const Rewritten rw = rewrite(in, OutboundOptions{}, fb);
  EXPECT_EQ(rw.r.swapped, 128u);
  EXPECT_EQ(rw.r.reported, 2u);
  EXPECT_EQ(fb.reports.size(), 2u);
  // The first 128 swapped, the last two unchanged.
  std::string want;
  for (int i = 0; i < 128; ++i) want += kValSame + ",";
  want += kTokSame + "," + kTokSame + ",";
  EXPECT_EQ(rw.out, want);
}

// ---- each token against its own request (issue 15, class 8) -----------------------------

TEST_F(Outbound, PipelinedTokensAreDecidedAgainstTheirOwnRequests) {
  const std::string req = "GET /v1/ok HTTP/1.1\r\nHost: a.example\r\nX-Key: " + kTokSame +
                          "\r\n\r\nPOST /admin HTTP/1.1\r\nHost: b.example\r\nContent-Length: 0\r\nX-Key: " + kTokSame +
                          "\r\n\r\n";
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  ASSERT_EQ(b.swaps.size(), 2u);
  EXPECT_EQ(b.swaps[0].method, "GET");
  EXPECT_EQ(b.swaps[0].path, "/v1/ok");
  EXPECT_EQ(b.swaps[1].method, "POST");
  EXPECT_EQ(b.swaps[1].path, "/admin");
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(std::string(st->http_host, st->http_host_len), "b.example");
}

TEST_F(Outbound, TokenInABodyAfterItsHeadIsDecidedAgainstThatHead) {
  const std::string body = "{\"k\":\"" + kTokSame + "\"}";
  EXPECT_EQ(write("POST /v1/chat HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n"),
            WriteOutcome::Consumed);
  EXPECT_EQ(write(body), WriteOutcome::Consumed);
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].path, "/v1/chat");
  // The next head is a new request, even in the same write as the end of the body.
}

TEST_F(Outbound, TokenWhereNoRequestIsKnownIsReportedNotSwapped) {
  // The connection's first bytes are not a request line: its framing is unknown.
  EXPECT_EQ(write("hello " + kTokSame + "\r\n"), WriteOutcome::Consumed);
  EXPECT_TRUE(b.swaps.empty());
  ASSERT_EQ(b.reports.size(), 1u);
  EXPECT_EQ(b.reports[0], kTokSame);
  EXPECT_NE(w.sent.find(kTokSame), std::string::npos);
  // Conflicting framing loses the stream for good.
  const void* k2 = kKey2;
  FakeWriter w2;
  hook_write(*t, k2, "POST /v1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false,
             b, w2);
  hook_write(*t, k2, "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTokSame + "\r\n\r\n", false, b, w2);
  EXPECT_TRUE(b.swaps.empty());
  EXPECT_EQ(b.reports.size(), 2u);
}

TEST_F(Outbound, LongAbsoluteTargetMarksTheHostUncheckable) {
  const std::string req = "GET https://evil.example/" + std::string(1100, 'a') + " HTTP/1.1\r\nHost: h\r\nX: " +
                          kTokSame + "\r\n\r\n";
  EXPECT_EQ(write(req), WriteOutcome::Consumed);
  ConnState* st = t->find(kKey);
  ASSERT_NE(st, nullptr);
  EXPECT_NE(st->request_flags & wire::kFlagHostInvalid, 0);
}

TEST_F(Outbound, HeadSplitBeforeTheTokenIsHeldAndDecidedWhole) {
  EXPECT_EQ(write("GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\nGET /admin HTTP/1.1\r\nAuthorization: Bearer "),
            WriteOutcome::Consumed);
  EXPECT_EQ(w.sent, "");   // held until the head is complete
  EXPECT_EQ(write(kTokSame + "\r\nHost: h\r\n\r\n"), WriteOutcome::Consumed);
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].path, "/admin");
}

}  // namespace
}  // namespace kz::preload

namespace kz::preload::test {
namespace {

TEST(OutboundBasic, UnpaddedCredentialThatCannotBeReencodedIsReported) {
  // "user:" + a 30-byte token is 35 bytes: padded base64 is 48 characters, this client
  // sent 47 (no '='). The swapped credential cannot be written back in 47: the header
  // goes out unchanged and the token is reported, never silently left.
  std::string cred = b64("user:" + kTokSame);
  ASSERT_EQ(cred.back(), '=');
  cred.pop_back();
  const std::string req = "GET /r HTTP/1.1\r\nHost: h\r\nAuthorization: Basic " + cred + "\r\n\r\n";
  auto t = std::make_unique<ConnTable>();
  FakeBroker fb;
  FakeWriter out;
  hook_write(*t, reinterpret_cast<const void*>(0x1000), req, false, fb, out);
  EXPECT_EQ(out.sent, req);
  EXPECT_EQ(fb.reports, std::vector<std::string>{kTokSame});
}

}  // namespace
}  // namespace kz::preload::test

namespace kz::preload {
namespace {

// A marker that overlaps itself: the first write ends with a marker's start followed by a
// second, shorter start of it ("…kztok" + "k"…, or "KZ_TOK" then "KZ_TOK_…" overlapping),
// and the second write goes on from the shorter one. The marker starts inside the kept
// fragment, not at its start; the token goes out unswapped and is reported exactly once
// (review 27b #5).
TEST(OutboundSplit, SplitInsideSelfOverlappingMarkerIsReported) {
  for (const std::string& m : {std::string(wire::kTokenPrefix), std::string(wire::kMarkerLower),
                              std::string(wire::kMarkerUpper), std::string(wire::kMarkerDigits)}) {
    const std::string tok = m + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ";
    for (std::size_t k = 1; k < m.size(); ++k)
      for (std::size_t j = 1; j < m.size(); ++j) {
        SCOPED_TRACE(m + " k " + std::to_string(k) + " j " + std::to_string(j));
        const std::string lead = m.substr(0, k);
        const std::string req = post_json("{\"t\":\"" + lead + tok + "\"}");
        const std::size_t split = req.find(lead + tok) + k + j;
        auto table = std::make_unique<ConnTable>();
        FakeBroker broker;
        FakeWriter out;
        hook_write(*table, kKey, req.substr(0, split), false, broker, out);
        hook_write(*table, kKey, req.substr(split), false, broker, out);
        conn_drop(*table, kKey, broker.ops());
        EXPECT_EQ(out.sent, req);
        EXPECT_EQ(broker.reports, std::vector<std::string>{tok});
      }
  }
}

}  // namespace
}  // namespace kz::preload
