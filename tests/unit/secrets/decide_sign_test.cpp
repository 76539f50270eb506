// The broker's SigV4 decision (secrets/decide_sign.h): a request the agent signed with
// its token is signed again with the real key, only when kz can reproduce the agent's
// signature from the bytes sent and every binding rule allows it.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "kz/digest.h"
#include "kz/sigv4.h"
#include "secrets/decide.h"
#include "decide_requests.h"
#include "test_support.h"

namespace kz {
namespace {

const std::string kKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const std::string kSession = "FwoGZXIvYXdzEXAMPLEsessiontoken0123456789abcdefghij";
const std::string kAkid = "AKIAKZTESTSIGV40001";
const std::int64_t kNow = 1767225600;   // 2026-01-01T00:00:00Z
const std::string kDate = "20260101T000000Z";

struct SignFixture : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  PeerProcess peer{4242, "/usr/bin/python3"};

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"AWS_SECRET_ACCESS_KEY", "env", SecretValue::from(kKey)});
    s.push_back({"AWS_SESSION_TOKEN", "env", SecretValue::from(kSession)});
    Binding b;
    b.hosts = {"localhost"};
    b.sign = "sigv4";
    b.access_key_id = kAkid;
    b.services = {"s3", "secretsmanager"};
    b.session_token = "AWS_SESSION_TOKEN";
    Binding t;
    t.hosts = {"localhost"};
    auto built = TokenTable::build(std::move(s), {{"AWS_SECRET_ACCESS_KEY", b}, {"AWS_SESSION_TOKEN", t}});
    ASSERT_TRUE(built.ok());
    table = std::move(*built);
    verifier = test::test_peer_verifier();
  }
  std::string key_token() const { return std::string(table.secrets()[0].token.view()); }
  std::string session_token() const { return std::string(table.secrets()[1].token.view()); }

  // A head as an SDK writes it, signed with `key` (the token, for the agent).
  static std::string signed_head(const std::string& key, const std::string& service, const std::string& extra,
                                 const std::string& session, const std::string& date = kDate,
                                 const std::string& akid = kAkid) {
    std::string head = "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Date: " + date + "\r\n" + extra +
                       "X-Amz-Security-Token: " + session + "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + akid +
                       "/" + date.substr(0, 8) + "/us-east-1/" + service +
                       "/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=" +
                       std::string(64, '0') + "\r\nContent-Length: 2\r\n\r\n";
    return resign(key, service, head);
  }
  // head's signature made again with `key`, over head as it now is.
  static std::string resign(const std::string& key, const std::string& service, std::string head) {
    auto h = sigv4::parse_head(head);
    auto s = sigv4::parse_signed(*h, head);
    EXPECT_TRUE(s.ok()) << s.error().message;
    const auto style = service == "s3" ? sigv4::UriStyle::EncodeOnce : sigv4::UriStyle::EncodeTwiceNormalized;
    const std::string creq = sigv4::canonical_request(*h, *s, style, kz_sha("{}"));
    head.replace(s->signature_pos, 64, sigv4::signature(key, *s, sigv4::string_to_sign(*s, creq)));
    return head;
  }
  static std::string kz_sha(const std::string& body) { return sha256_hex(body); }

  std::unique_ptr<wire::Request> request(const std::string& head, const std::string& host = "localhost",
                                         const std::string& body_hash = "") {
    const std::string localhost = "localhost";
    return test::broker_request(wire::Op::Sign, (body_hash.empty() ? kz_sha("{}") : body_hash) + head, host,
                                test::der_of_pem_file(test::test_ca().server_cert), "POST", "/", &localhost);
  }
  DecideOutcome run(const wire::Request& r) {
    DecideContext ctx{&table, verifier.get()};
    ctx.now = kNow;
    return decide(ctx, r, peer);
  }
  static std::string reason(const DecideOutcome& o) { return std::string(o.reply.reason, o.reply.reason_len); }
};

TEST_F(SignFixture, SignsWithTheRealKeyOverTheRequestAsSent) {
  const std::string head = signed_head(key_token(), "secretsmanager", "X-Amz-Target: secretsmanager.GetSecretValue\r\n",
                                       session_token());
  auto o = run(*request(head));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << reason(o);
  // What the server will receive: the session token's value in place of its token,
  // signed with the real key.
  std::string sent = head;
  sent.replace(sent.find(session_token()), session_token().size(), kSession);
  const std::string want = [&] {
    std::string h = sent;
    auto p = sigv4::parse_head(h);
    auto s = sigv4::parse_signed(*p, h);
    const std::string creq = sigv4::canonical_request(*p, *s, sigv4::UriStyle::EncodeTwiceNormalized, kz_sha("{}"));
    return sigv4::signature(kKey, *s, sigv4::string_to_sign(*s, creq));
  }();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), want);
  EXPECT_EQ(head.substr(o.reply.token_len, 64).size(), 64u);
  EXPECT_EQ(head.find("Signature=") + 10, o.reply.token_len);
  ASSERT_TRUE(o.audit);
  const auto rec = to_record(*o.audit);
  EXPECT_EQ(rec["event"], "sign");
  EXPECT_EQ(rec["service"], "secretsmanager");
  EXPECT_EQ(rec["region"], "us-east-1");
  EXPECT_EQ(rec["secret"], "AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(rec.dump().find(kKey), std::string::npos);
}

// A signature asked before the TLS object finished its handshake: the chain may be an
// earlier session's (as for a swap, decide_test ASwapBeforeTheHandshakeFinishedIsRefused).
TEST_F(SignFixture, ASignatureBeforeTheHandshakeFinishedIsRefused) {
  const std::string head = signed_head(key_token(), "secretsmanager", "X-Amz-Target: secretsmanager.GetSecretValue\r\n",
                                       session_token());
  auto r = request(head);
  ASSERT_EQ(run(*r).reply.decision, wire::Decision::Allow);
  r->form |= wire::kFormHandshakeUnfinished;
  ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(o.reply.data_len, 0u);
  EXPECT_NE(reason(o).find("the TLS handshake had not finished"), std::string::npos) << reason(o);
  r->form = 4;
  EXPECT_FALSE(wire::request_is_valid(*r, sizeof(wire::Request)));
}

TEST_F(SignFixture, RefusesWhatItCannotReproduce) {
  // Signed with another key than the token: kz cannot tell what was signed.
  auto o = run(*request(signed_head("another-key", "secretsmanager", "", session_token())));
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("could not reproduce"), std::string::npos) << reason(o);
  // The body is not the one the hash was given for.
  auto o2 = run(*request(signed_head(key_token(), "secretsmanager", "", session_token()), "localhost",
                         kz_sha("{\"other\":1}")));
  EXPECT_EQ(o2.reply.decision, wire::Decision::Refuse);
}

TEST_F(SignFixture, BindingRules) {
  auto unbound = run(*request(signed_head(key_token(), "secretsmanager", "", session_token()), "127.0.0.1"));
  EXPECT_EQ(unbound.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(unbound).find("127.0.0.1"), std::string::npos) << reason(unbound);
  auto service = run(*request(signed_head(key_token(), "sts", "", session_token())));
  EXPECT_EQ(service.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(service).find("service sts"), std::string::npos) << reason(service);
  auto skew = run(*request(signed_head(key_token(), "secretsmanager", "", session_token(), "20251231T234000Z")));
  EXPECT_EQ(skew.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(skew).find("15 minutes"), std::string::npos) << reason(skew);
  auto streaming = run(*request(signed_head(
      key_token(), "s3", "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n", session_token())));
  EXPECT_EQ(streaming.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(streaming).find("streaming"), std::string::npos) << reason(streaming);
}

// The agent's own program on the broker socket: the binding is checked on the wire
// request's method, target and Host (POST / to localhost here), so a head that says
// anything else is not signed.
TEST_F(SignFixture, TheSignedHeadMustBeTheCheckedRequest) {
  const std::string head = signed_head(key_token(), "secretsmanager", "", session_token());
  std::string other_target = head;
  other_target.replace(0, 6, "PUT /x");
  std::string other_host = head;
  other_host.replace(other_host.find("Host: localhost"), 15, "Host: evil.test");
  // Signed with the token, as the agent can: kz would reproduce it and sign with the key.
  for (const std::string& h : {resign(key_token(), "secretsmanager", other_target),
                               resign(key_token(), "secretsmanager", other_host)}) {
    auto o = run(*request(h));
    EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
    EXPECT_NE(reason(o).find("is not the request's"), std::string::npos) << reason(o);
  }
}

TEST_F(SignFixture, TheKeyIsNeverSwappedIn) {
  // Its token in a body or header, to a bound host: a swap would put the key in the
  // agent's write and on the server.
  auto r = test::broker_request(wire::Op::Swap, key_token(), "localhost",
                                test::der_of_pem_file(test::test_ca().server_cert), "PUT", "/bucket/exfil");
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(o.reply.data_len, 0u);
  EXPECT_EQ(reason(o), "AWS_SECRET_ACCESS_KEY is a signing key (sign = \"sigv4\"): kz signs requests with it and "
                       "never sends it");
  // The session token is an ordinary secret: swapped.
  auto t = run(*test::broker_request(wire::Op::Swap, session_token(), "localhost",
                                     test::der_of_pem_file(test::test_ca().server_cert), "GET", "/"));
  EXPECT_EQ(t.reply.decision, wire::Decision::Allow) << reason(t);
}

TEST_F(SignFixture, AnotherKeyIdIsNotKzsBusiness) {
  auto o = run(*request(signed_head("k", "secretsmanager", "", "x", kDate, "AKIAOTHERKEY00000001")));
  EXPECT_EQ(o.reply.decision, wire::Decision::Unknown);
  EXPECT_FALSE(o.audit);
}

}  // namespace
}  // namespace kz

namespace kz {
namespace {

// A week-long presigned URL is a credential that works from anywhere: kz does not sign one,
// even when the agent signed it with its token correctly.
TEST_F(SignFixture, ALongPresignedUrlIsRefused) {
  const std::string target = "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + kAkid +
                             "%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=" + kDate +
                             "&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=" + std::string(64, '0');
  const std::string head = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const std::string localhost = "localhost";
  auto r = test::broker_request(wire::Op::Sign, kz_sha("") + head, "localhost",
                                test::der_of_pem_file(test::test_ca().server_cert), "GET", target, &localhost);
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("X-Amz-Expires"), std::string::npos) << reason(o);
}

}  // namespace
}  // namespace kz
