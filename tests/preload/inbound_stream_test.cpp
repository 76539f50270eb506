// The inbound stream of a connection that carries a value (kz/preload/inbound.h): values
// in any encoded form, split across reads or across chunks, are replaced by their token
// in the same form; the last bytes are held only while the message goes on; a
// content-coded response fails.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fakes.h"
#include "kz/preload/inbound.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/value_forms.h"

namespace kz::preload {
namespace {

using test::FakeBroker;
using test::kTokSame;
using test::kValSame;

constexpr std::uint64_t kBase = 0x1d3f5a7c9b2e4ULL;
constexpr std::uint64_t kQuickBase = 0x9e3779b97f4a7c15ULL;   // odd, as the broker's fq_base

std::string form(wire::ValueForm f, const std::string& v) {
  std::string out(wire::kMaxFormLen, '\0');
  out.resize(wire::encode_form(f, reinterpret_cast<const unsigned char*>(v.data()), v.size(), out.data(), out.size()));
  return out;
}

// What the broker gives the shim for kValSame: a print of every distinct form.
void add_prints(ConnState& st, const std::string& value) {
  for (std::size_t f = 0; f < wire::kValueFormCount; ++f) {
    const std::string e = form(static_cast<wire::ValueForm>(f), value);
    Fingerprint p;
    p.base = kBase;
    p.hash = wire::fp_hash(reinterpret_cast<const unsigned char*>(e.data()), e.size(), kBase);
    p.quick_base = kQuickBase;
    p.quick = wire::fq_hash(reinterpret_cast<const unsigned char*>(e.data()), e.size(), kQuickBase);
    p.len = static_cast<std::uint32_t>(e.size());
    p.secret_id = 1;
    p.form = static_cast<std::uint32_t>(f);
    bool dup = false;
    for (std::size_t i = 0; i < st.nfps; ++i) dup = dup || (st.fps[i].hash == p.hash && st.fps[i].len == p.len);
    if (!dup) st.add_fingerprint(p);
  }
}

struct Stream {
  std::unique_ptr<ConnTable> t = std::make_unique<ConnTable>();
  const void* key = reinterpret_cast<const void*>(0x7000);
  ConnState* st = nullptr;
  FakeBroker b;
  std::string out;   // what the program was handed

  Stream() {
    st = t->find_or_create(key);
    add_prints(*st, kValSame);
  }
  ~Stream() { t->remove(key); }
  void feed(const std::string& bytes) {
    stream_feed(*st, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), b.ops());
    take();
  }
  void end() {
    stream_end(*st, b.ops());
    take();
  }
  void take() {
    unsigned char tmp[1024];
    for (std::size_t k; (k = stream_take(st->in, tmp, sizeof tmp, false)) > 0;) out.append(reinterpret_cast<char*>(tmp), k);
  }
};

std::string head_cl(std::size_t n) { return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n"; }

TEST(InboundStream, EveryFormInOneRead) {
  for (std::size_t f = 0; f < wire::kValueFormCount; ++f) {
    const auto vf = static_cast<wire::ValueForm>(f);
    const std::string body = "{\"echo\":\"" + form(vf, kValSame) + "\"}";
    Stream s;
    s.feed(head_cl(body.size()) + body);
    EXPECT_EQ(s.out, head_cl(body.size()) + "{\"echo\":\"" + form(vf, kTokSame) + "\"}") << f;
  }
}

TEST(InboundStream, ValueStraddlingTwoReads) {
  for (wire::ValueForm vf : {wire::ValueForm::Raw, wire::ValueForm::Base64, wire::ValueForm::HexLower}) {
    const std::string enc = form(vf, kValSame);
    const std::string body = "key=" + enc + ";";
    for (std::size_t cut = 1; cut < enc.size(); cut += 7) {
      Stream s;
      const std::string all = head_cl(body.size()) + body;
      const std::size_t at = head_cl(body.size()).size() + 4 + cut;
      s.feed(all.substr(0, at));
      // Nothing of the value is out before the rest arrives.
      EXPECT_EQ(s.out.find(enc.substr(0, cut)), std::string::npos) << cut;
      s.feed(all.substr(at));
      EXPECT_EQ(s.out, head_cl(body.size()) + "key=" + form(vf, kTokSame) + ";") << cut;
    }
  }
}

TEST(InboundStream, ValueSplitAcrossChunksKeepsTheFraming) {
  const std::string enc = form(wire::ValueForm::Base64, kValSame);
  const std::string a = "k=" + enc.substr(0, 9), c = enc.substr(9) + "\n";
  auto chunk = [](const std::string& d) {
    char n[16];
    snprintf(n, sizeof n, "%zx", d.size());
    return std::string(n) + "\r\n" + d + "\r\n";
  };
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  Stream s;
  s.feed(head + chunk(a));
  s.feed(chunk(c));
  s.feed("0\r\n\r\n");
  const std::string tenc = form(wire::ValueForm::Base64, kTokSame);
  EXPECT_EQ(s.out, head + chunk("k=" + tenc.substr(0, 9)) + chunk(tenc.substr(9) + "\n") + "0\r\n\r\n");
  EXPECT_EQ(s.out.find(enc.substr(0, 9)), std::string::npos);
}

TEST(InboundStream, AMessageBoundaryReleasesEverything) {
  Stream s;
  const std::string body = "short";
  s.feed(head_cl(body.size()) + body);
  EXPECT_EQ(s.out, head_cl(body.size()) + body);   // complete: nothing held
  EXPECT_EQ(s.st->in.len, 0u);
  // A body that goes on: its last bytes wait, then come with the end.
  Stream u;
  u.feed(head_cl(100) + std::string(60, 'x'));
  EXPECT_LT(u.out.size(), head_cl(100).size() + 60);
  u.feed(std::string(40, 'y'));
  EXPECT_EQ(u.out, head_cl(100) + std::string(60, 'x') + std::string(40, 'y'));
}

TEST(InboundStream, NoBodyResponsesEndAtTheHead) {
  Stream s;
  s.st->push_request(RequestKind::Head);
  const std::string h = head_cl(5000);
  s.feed(h);
  EXPECT_EQ(s.out, h);
  Stream n;
  const std::string nc = "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
  n.feed(nc);
  EXPECT_EQ(n.out, nc);
}

TEST(InboundStream, UntilCloseBodyEndsAtTheEndOfTheStream) {
  Stream s;
  const std::string head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
  s.feed(head + "x " + kValSame.substr(0, 10));
  s.feed(kValSame.substr(10));
  s.end();
  EXPECT_EQ(s.out, head + "x " + kTokSame);
}

TEST(InboundStream, ContentCodedResponseFails) {
  Stream s;
  s.feed("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00");
  EXPECT_TRUE(s.st->in.failed);
  EXPECT_EQ(s.out, "");
  ASSERT_EQ(s.b.coded.size(), 1u);
  EXPECT_EQ(s.b.coded[0], "gzip");
  // identity is not a coding.
  Stream i;
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi";
  i.feed(ok);
  EXPECT_FALSE(i.st->in.failed);
  EXPECT_EQ(i.out, ok);
}

TEST(InboundStream, AfterAProtocolSwitchScannedPerReadAndNeverHeld) {
  Stream s;
  const std::string up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
  s.feed(up + "SSH-2.0-x " + kValSame + " tail");
  EXPECT_EQ(s.out, up + "SSH-2.0-x " + kTokSame + " tail");
  s.feed("more");
  EXPECT_EQ(s.out, up + "SSH-2.0-x " + kTokSame + " tailmore");
  EXPECT_FALSE(s.st->in.failed);
}

// Review 27b, 1: bytes that are not a response where one must start, on a connection that
// carries a value, fail the read: scanned read by read, a value split across reads would
// go through.
TEST(InboundStream, LostResponseFramingFails) {
  Stream s;
  s.feed("SSH-2.0-x " + kValSame.substr(0, 10));
  EXPECT_TRUE(s.st->in.failed);
  EXPECT_EQ(s.out, "");
}

// Review 27b, 1: each response is framed as its own request's answer (the FIFO), not as
// the answer to the request the last token was bound to (st->method).
TEST(InboundStream, PipelinedResponsesFramedByTheirOwnRequests) {
  Stream s;
  s.st->push_request(RequestKind::Other);   // POST /echo
  s.st->push_request(RequestKind::Head);    // HEAD /x?q=<token>
  std::memcpy(s.st->method, "HEAD", 4);     // what bind_request left (the last token's request)
  s.st->method_len = 4;
  const std::string body = "{\"echo\":\"" + kValSame + "\"}";
  const std::size_t cut = body.size() - 10;   // inside the value
  s.feed(head_cl(body.size()) + body.substr(0, cut));
  s.feed(body.substr(cut));
  const std::string head2 = head_cl(5000);   // the HEAD's answer: no body
  s.feed(head2);
  EXPECT_FALSE(s.st->in.failed);
  std::string want = body;
  want.replace(want.find(kValSame), kValSame.size(), kTokSame);
  EXPECT_EQ(s.out, head_cl(body.size()) + want + head2);
  EXPECT_EQ(s.st->requests_count, 0u);
}

// A response past the requests the ring knows, once a request went out it could not
// follow: its framing is unknown, the read fails.
TEST(InboundStream, AResponsePastAnUnknownRequestFails) {
  Stream s;
  s.st->push_request(RequestKind::Other);
  s.st->requests_unknown = true;
  s.feed(head_cl(2) + "ok");
  EXPECT_FALSE(s.st->in.failed);
  s.feed(head_cl(2) + "ok");
  EXPECT_TRUE(s.st->in.failed);
  EXPECT_EQ(s.out, head_cl(2) + "ok");
}

// The shim's read: a small caller buffer, a library that hands out pieces.
struct PieceReader {
  std::vector<std::string> pieces;
  std::size_t next = 0;
  static long read(void* ctx, unsigned char* p, std::size_t cap) {
    auto* self = static_cast<PieceReader*>(ctx);
    if (self->next == self->pieces.size()) return 0;
    std::string& s = self->pieces[self->next];
    const std::size_t n = s.size() < cap ? s.size() : cap;
    std::memcpy(p, s.data(), n);
    s.erase(0, n);
    if (s.empty()) ++self->next;
    return static_cast<long>(n);
  }
};

// Review 27b, 2: a read that went to the library while the connection carried no value
// returns after one was swapped: its bytes go through the stream before the program
// gets them; the rest of the response is read through it.
TEST(InboundRead, AReadThatWaitedWhileTheValueWentOutIsRedacted) {
  Stream s;
  s.st->push_request(RequestKind::Other);
  const std::string body = "echo:" + kValSame + "\n";
  const std::string all = head_cl(body.size()) + body;
  const std::size_t first = all.size() - 20;   // this read ends inside the value
  PieceReader pr;
  pr.pieces = {all.substr(first)};
  ReadOps r;
  r.ctx = &pr;
  r.read = &PieceReader::read;
  std::vector<unsigned char> buf(all.begin(), all.begin() + static_cast<long>(first));
  buf.resize(4096);
  std::size_t n = 0;
  long lib = 0;
  std::string got;
  InboundRead rr = inbound_after_passthrough(*s.t, s.key, buf.data(), first, buf.size(), false, s.b.ops(), r, &n, &lib);
  ASSERT_EQ(rr, InboundRead::Delivered);
  got.append(reinterpret_cast<char*>(buf.data()), n);
  while ((rr = inbound_read(*s.t, s.key, buf.data(), buf.size(), false, s.b.ops(), r, &n, &lib)) ==
         InboundRead::Delivered)
    got.append(reinterpret_cast<char*>(buf.data()), n);
  EXPECT_EQ(got, head_cl(body.size()) + "echo:" + kTokSame + "\n");
  // A peek in that position fails; a connection without a value keeps its bytes.
  unsigned char p[8] = {'a'};
  EXPECT_EQ(inbound_after_passthrough(*s.t, s.key, p, 1, sizeof p, true, s.b.ops(), r, &n, &lib), InboundRead::Failed);
  EXPECT_EQ(inbound_after_passthrough(*s.t, reinterpret_cast<const void*>(0x1234), p, 1, sizeof p, false, s.b.ops(), r,
                                      &n, &lib),
            InboundRead::PassThrough);
}

TEST(InboundRead, SmallReadsThroughTheStream) {
  Stream s;
  const std::string body = "v=" + kValSame;
  const std::string all = head_cl(body.size()) + body;
  PieceReader pr;
  pr.pieces = {all.substr(0, all.size() - 7), all.substr(all.size() - 7)};
  ReadOps r;
  r.ctx = &pr;
  r.read = &PieceReader::read;
  std::string got;
  for (int i = 0; i < 1000; ++i) {
    unsigned char buf[5];
    std::size_t n = 0;
    long lib = 0;
    const InboundRead rr = inbound_read(*s.t, s.key, buf, sizeof buf, false, s.b.ops(), r, &n, &lib);
    ASSERT_NE(rr, InboundRead::PassThrough);
    if (rr == InboundRead::Library) {
      EXPECT_EQ(lib, 0);
      break;
    }
    ASSERT_EQ(rr, InboundRead::Delivered);
    got.append(reinterpret_cast<char*>(buf), n);
  }
  EXPECT_EQ(got, head_cl(body.size()) + "v=" + kTokSame);
  // A connection without a stream reads as usual.
  unsigned char buf[4];
  std::size_t n = 0;
  long lib = 0;
  EXPECT_EQ(inbound_read(*s.t, reinterpret_cast<const void*>(0x1234), buf, 4, false, s.b.ops(), r, &n, &lib),
            InboundRead::PassThrough);
}

TEST(InboundRead, AFatalEndReleasesWhatIsHeld) {
  // A close-delimited body whose connection ends in an error (no close_notify): the held
  // tail is scanned and handed out, then the library's error.
  Stream s;
  const std::string head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
  const std::string body = std::string(100, 'z') + " key " + kValSame;
  PieceReader pr;
  pr.pieces = {head + body};
  ReadOps r;
  r.ctx = &pr;
  r.read = [](void* ctx, unsigned char* p, std::size_t cap) -> long {
    auto* self = static_cast<PieceReader*>(ctx);
    return self->next == self->pieces.size() ? -110 : PieceReader::read(ctx, p, cap);
  };
  r.ended = [](void*, long rc) { return rc == -110; };
  std::string got;
  long lib = 0;
  for (int i = 0; i < 100; ++i) {
    unsigned char buf[64];
    std::size_t n = 0;
    const InboundRead rr = inbound_read(*s.t, s.key, buf, sizeof buf, false, s.b.ops(), r, &n, &lib);
    if (rr != InboundRead::Delivered) {
      EXPECT_EQ(rr, InboundRead::Library);
      break;
    }
    got.append(reinterpret_cast<char*>(buf), n);
  }
  EXPECT_EQ(lib, -110);
  EXPECT_EQ(got, head + std::string(100, 'z') + " key " + kTokSame);
}

}  // namespace
}  // namespace kz::preload
