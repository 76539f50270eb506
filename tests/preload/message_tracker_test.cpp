// Request boundaries on one connection: which request each byte of a write belongs to
// (issue 15, class 8). Pipelined requests, bodies by Content-Length and chunks, empty
// lines before a request, heads split across writes, and everything a server could read
// differently, which loses the stream for good.
#include <gtest/gtest.h>

#include <string>

#include "kz/preload/message_tracker.h"

namespace kz::preload {
namespace {

struct Tracked {
  MessageTracker state;
  TrackResult r;
  std::string buf;

  // Tracks one write and commits the new state (as the driver does once it is sent).
  void write(const std::string& b) {
    buf = b;
    MessageTracker next;
    track(state, buf.data(), buf.size(), &next, &r);
    prev = state;
    state = next;
  }
  // The target of the request the byte at the first occurrence of `needle` belongs to;
  // "?" when it belongs to none.
  std::string target_at(const std::string& needle) const {
    const std::size_t pos = buf.find(needle);
    EXPECT_NE(pos, std::string::npos) << needle;
    const RequestRef* ref = r.at(pos);
    if (ref == nullptr) return "?";
    if (ref->kind == RequestRef::Kind::Continued) return std::string(prev.cur.target, prev.cur.target_len);
    return buf.substr(ref->target.pos, ref->target.len);
  }
  std::string host_at(const std::string& needle) const {
    const RequestRef* ref = r.at(buf.find(needle));
    if (ref == nullptr) return "?";
    if (ref->kind == RequestRef::Kind::Continued) return std::string(prev.cur.host, prev.cur.host_len);
    return buf.substr(ref->host.pos, ref->host.len);
  }
  MessageTracker prev;
};

const std::string kTok = "KZ_TOK_x";

TEST(MessageTracker, OneRequestWithItsHeaderToken) {
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/v1/ok");
  EXPECT_EQ(t.host_at(kTok), "h");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Head);
  EXPECT_FALSE(t.r.head_incomplete);
}

TEST(MessageTracker, TwoRequestsInOneWrite) {
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/admin");
  EXPECT_EQ(t.r.nrefs, 2u);
}

TEST(MessageTracker, ContentLengthZeroThenASecondRequest) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok +
          "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/admin");
}

TEST(MessageTracker, BodyByContentLengthAcrossWritesThenTheNextRequest) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n0123456789");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Body);
  t.write("abc" + kTok.substr(0, 7));   // 10 more body bytes
  EXPECT_EQ(t.target_at("abc"), "/v1/ok");
  EXPECT_EQ(t.host_at("abc"), "h");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Head);
  t.write("GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/admin");
}

TEST(MessageTracker, BodyEndingMidWriteGivesTheRestToTheNextRequest) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
  t.write("12345GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at("123"), "/v1/ok");
  EXPECT_EQ(t.target_at(kTok), "/admin");
}

TEST(MessageTracker, LeadingEmptyLinesAreSkipped) {
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\n");
  t.write("\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/admin");
}

TEST(MessageTracker, ChunkedBodyThenTheNextRequest) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Chunked);
  t.write("3;ext=1\r\nxyz\r\n0\r\nTrailer: t\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at("xyz"), "/v1/ok");
  EXPECT_EQ(t.target_at(kTok), "/admin");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Head);
}

TEST(MessageTracker, ChunkSizeLineSplitAcrossWrites) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1");
  t.write("0\r\n0123456789abcdef\r\n0\r\n\r\n");
  EXPECT_EQ(t.target_at("abc"), "/v1/ok");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Head);
}

TEST(MessageTracker, HeadSplitBeforeItsEndIsIncomplete) {
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\nGET /admin HTTP/1.1\r\nAuthorization: Bearer ");
  EXPECT_TRUE(t.r.head_incomplete);
  EXPECT_EQ(t.target_at("Authorization"), "?");
}

TEST(MessageTracker, ExpectContinueBodyIsUnidentified) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n");
  t.write("GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "?");
}

TEST(MessageTracker, AmbiguousFramingLosesTheStream) {
  const std::string rest = "GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n";
  for (std::string head : {
           "POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
           "POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST /v1/ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           "POST /v1/ok HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n",
           "POST /v1/ok HTTP/1.1\r\nHost: h\r\n Content-Length: 5\r\n\r\n",
           "POST /v1/ok HTTP/1.1\r\nHost: h\nContent-Length: 5\r\n\r\n",
           "GET /v1/ok HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
           "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n",
           "GET /v1/ok HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
           "GET /v1/ok HTTP/2.0\r\nHost: h\r\n\r\n",
           " GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET  /v1/ok HTTP/1.1\r\nHost: h\r\n\r\n",
       }) {
    Tracked t;
    t.write(head);
    t.write(rest);
    EXPECT_EQ(t.target_at(kTok), "?") << head;
    EXPECT_EQ(t.state.phase, MessageTracker::Phase::Lost) << head;
  }
}

// A control byte other than tab (NUL, DEL, ESC, ...) anywhere in a head, in a value, a
// name or the request line, is read differently by different servers: the stream is lost.
// A tab in a value and bytes above 0x7f are fine.
TEST(MessageTracker, ControlBytesInAHeadLoseTheStream) {
  const std::string rest = "GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n";
  for (const std::string& bad : {std::string("\0", 1), std::string("\x7f"), std::string("\x1b"), std::string("\x0b")}) {
    for (const std::string& head : {"POST /v1/ok HTTP/1.1\r\nHost: h\r\nX: a" + bad + "b\r\nContent-Length: 0\r\n\r\n",
                                    "POST /v1/ok HTTP/1.1\r\nHost: h\r\nX" + bad + ": a\r\n\r\n",
                                    "POST /v1/o" + bad + "k HTTP/1.1\r\nHost: h\r\n\r\n",
                                    "POST /v1/ok HTTP/1.1\r\nHost: h\r\nX: a" + bad + "\r\n\r\n"}) {
      Tracked t;
      t.write(head);
      t.write(rest);
      EXPECT_EQ(t.target_at(kTok), "?") << static_cast<int>(bad[0]) << " in " << head;
      EXPECT_EQ(t.state.phase, MessageTracker::Phase::Lost);
    }
  }
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\r\nX: a\tb \xc3\xa9\r\nAuthorization: Bearer " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "/v1/ok");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Head);
}

TEST(MessageTracker, BareLfBetweenRequestsIsNotASecondHead) {
  // A lenient server ends the first head at "\n\n"; the tracker must not read one head.
  Tracked t;
  t.write("GET /v1/ok HTTP/1.1\r\nHost: h\n\nGET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "?");
}

TEST(MessageTracker, MalformedChunkLosesTheStream) {
  Tracked t;
  t.write("POST /v1/ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeXX");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Lost);
  t.write("GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "?");
}

TEST(MessageTracker, HostCountAndLongTargets) {
  Tracked t;
  t.write("GET /a HTTP/1.1\r\nHost: h\r\nHost: evil\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.r.at(t.buf.find(kTok))->host_count, 2u);
  Tracked u;
  u.write("POST /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(u.state.cur.target_len, 0);   // too long to keep: unknown to the broker
  EXPECT_EQ(u.state.cur.host_count, 1);   // origin form: the Host header still decides
  Tracked v;
  v.write("POST https://evil.example/" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
  EXPECT_GT(v.state.cur.host_count, 1);   // its authority cannot be checked: invalid
}

TEST(MessageTracker, ManyPipelinedRequestsBeyondTheRefLimitLoseTheStream) {
  std::string many;
  for (std::size_t i = 0; i < kMaxRequestRefs + 2; ++i) many += "GET /v1/ok HTTP/1.1\r\nHost: h\r\n\r\n";
  Tracked t;
  t.write(many + "GET /admin HTTP/1.1\r\nHost: h\r\nX: " + kTok + "\r\n\r\n");
  EXPECT_EQ(t.target_at(kTok), "?");
  EXPECT_EQ(t.state.phase, MessageTracker::Phase::Lost);
}

}  // namespace
}  // namespace kz::preload
