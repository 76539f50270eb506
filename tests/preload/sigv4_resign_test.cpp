// The shim's SigV4 re-signer (kz/preload/sigv4_resign.h) against a fake broker: what it
// asks (the body's hash and the head, as they will be sent), where it writes the
// signature, when it holds a request for its body, and that a refusal changes nothing.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kz/wire/sha256.h"
#include "kz/preload/message_tracker.h"
#include "kz/preload/sigv4_resign.h"

namespace kz::preload {
namespace {

const std::string kTokenSig(64, 'a');

std::string sha256_hex(const std::string& s) {
  char out[64];
  wire::sha256_hex(s.data(), s.size(), out);
  return std::string(out, 64);
}
const std::string kRealSig(64, 'b');

struct FakeBroker {
  std::vector<std::string> asked;
  wire::Decision answer = wire::Decision::Allow;
};

wire::Decision fake_sign(void* ctx, ConnState*, const char* data, std::size_t n, std::uint32_t, char* sig_out,
                         std::size_t* at) {
  auto* f = static_cast<FakeBroker*>(ctx);
  f->asked.emplace_back(data, n);
  const std::string head(data + 64, n - 64);
  std::memcpy(sig_out, kRealSig.data(), 64);
  *at = head.find(kTokenSig);
  return f->answer;
}

std::string signed_head(const std::string& method, const std::string& extra, std::size_t body_len) {
  return method + " / HTTP/1.1\r\nHost: secretsmanager.us-east-1.amazonaws.com\r\nX-Amz-Date: 20260101T000000Z\r\n" +
         extra + "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/secretsmanager/"
         "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + kTokenSig + "\r\nContent-Length: " +
         std::to_string(body_len) + "\r\n\r\n";
}

struct Resigned {
  ResignResult r;
  std::string out;
};

Resigned resign(FakeBroker& f, std::string buf, bool allow_hold = true) {
  MessageTracker from, to;
  TrackResult tr;
  track(from, buf.data(), buf.size(), &to, &tr);
  RequestLookup lookup{&tr, &from};
  OutboundOptions opt;
  opt.requests = &lookup;
  opt.allow_hold = allow_hold;
  BrokerOps b;
  b.ctx = &f;
  b.sign = fake_sign;
  auto table = std::make_unique<ConnTable>();   // large: not on the stack
  ConnState* st = table->find_or_create(&f);
  Resigned run;
  run.r = resign_sigv4(buf.data(), buf.size(), tr, opt, b, st);
  run.out = buf;
  return run;
}

TEST(SigV4Resign, AsksWithTheBodysHashAndWritesTheSignatureInPlace) {
  const std::string body = R"({"SecretId":"prod/db"})";
  const std::string head = signed_head("POST", "", body.size());
  FakeBroker f;
  const Resigned run = resign(f, head + body);
  ASSERT_EQ(f.asked.size(), 1u);
  EXPECT_EQ(f.asked[0], sha256_hex(body) + head);
  EXPECT_EQ(run.r.signed_count, 1u);
  std::string want = head + body;
  want.replace(want.find(kTokenSig), 64, kRealSig);
  EXPECT_EQ(run.out, want);
}

TEST(SigV4Resign, TwoRequestsInOneWriteAreTwoSignatures) {
  const std::string one = signed_head("GET", "", 0);
  const std::string two = signed_head("GET", "X-Two: 2\r\n", 0);
  FakeBroker f;
  const Resigned run = resign(f, one + two);
  ASSERT_EQ(f.asked.size(), 2u);
  EXPECT_EQ(f.asked[0], sha256_hex("") + one);
  EXPECT_EQ(f.asked[1], sha256_hex("") + two);
  EXPECT_EQ(run.r.signed_count, 2u);
  EXPECT_EQ(run.out.find(kTokenSig), std::string::npos);
}

TEST(SigV4Resign, HoldsARequestWhoseBodyIsStillToCome) {
  const std::string head = signed_head("POST", "", 20);
  FakeBroker f;
  const Resigned run = resign(f, head + "{\"SecretId\"");
  EXPECT_TRUE(run.r.hold);
  EXPECT_TRUE(f.asked.empty());
  EXPECT_EQ(run.out, head + "{\"SecretId\"");
  // Not allowed to hold (a flush): asked without the body's hash; the broker refuses.
  FakeBroker g;
  g.answer = wire::Decision::Refuse;
  const Resigned flushed = resign(g, head + "{\"SecretId\"", false);
  ASSERT_EQ(g.asked.size(), 1u);
  EXPECT_EQ(g.asked[0].substr(0, 64), std::string(64, '-'));
  EXPECT_EQ(flushed.out, head + "{\"SecretId\"");
  EXPECT_EQ(flushed.r.refused, 1u);
}

TEST(SigV4Resign, ContentSha256HeaderNeedsNoBody) {
  const std::string head = signed_head("PUT", "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n", 1000);
  FakeBroker f;
  const Resigned run = resign(f, head + "part of the body");
  EXPECT_FALSE(run.r.hold);
  ASSERT_EQ(f.asked.size(), 1u);
  EXPECT_EQ(f.asked[0].substr(0, 64), std::string(64, '-'));
  EXPECT_EQ(run.r.signed_count, 1u);
}

TEST(SigV4Resign, RefusalOrOtherRequestsChangeNothing) {
  FakeBroker f;
  f.answer = wire::Decision::Refuse;
  const std::string head = signed_head("GET", "", 0);
  EXPECT_EQ(resign(f, head).out, head);
  FakeBroker g;
  const std::string plain = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n";
  EXPECT_EQ(resign(g, plain).out, plain);
  EXPECT_TRUE(g.asked.empty());
}

// Through the connection driver (outbound_write), as the shim and the proxy run it: a
// client that writes the head and the body of a signed request separately (its body's
// hash is needed) gets both sent once the body is in, signed over that body.
struct Sent {
  std::string bytes;
};
bool capture(void* ctx, const char* p, std::size_t n) {
  static_cast<Sent*>(ctx)->bytes.append(p, n);
  return true;
}

TEST(SigV4Resign, TheDriverHoldsTheHeadUntilTheBodyIsWritten) {
  const std::string body = R"({"SecretId":"prod/db"})";
  const std::string head = signed_head("POST", "", body.size());
  FakeBroker f;
  BrokerOps b;
  b.ctx = &f;
  b.sign = fake_sign;
  Sent sent;
  WriteOps w{&sent, capture};
  auto table = std::make_unique<ConnTable>();
  int conn = 0;
  EXPECT_EQ(outbound_write(*table, &conn, head.data(), head.size(), false, b, w), WriteOutcome::Consumed);
  EXPECT_EQ(sent.bytes, "");   // held: the signature covers the body's hash
  EXPECT_TRUE(f.asked.empty());
  EXPECT_EQ(outbound_write(*table, &conn, body.data(), body.size(), false, b, w), WriteOutcome::Consumed);
  ASSERT_EQ(f.asked.size(), 1u);
  EXPECT_EQ(f.asked[0], sha256_hex(body) + head);
  std::string want = head + body;
  want.replace(want.find(kTokenSig), 64, kRealSig);
  EXPECT_EQ(sent.bytes, want);
  conn_drop(*table, &conn, b);
}

}  // namespace
}  // namespace kz::preload
