// The broker's decisions: swap only a known token, to a bound host, over TLS whose
// peer chain verifies under kz's trust store, with an allowed method and path.
#include <gtest/gtest.h>


#include <cstring>
#include <memory>

#include "secrets/decide.h"
#include "decide_requests.h"

#include "kz/wire/fingerprint.h"
#include "kz/wire/value_forms.h"
#include "test_support.h"

namespace kz {
namespace {

const std::string kValue = "sk-live-0123456789abcdefghijklmnop";

struct Fixture : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  PeerProcess peer{4242, "/usr/bin/curl"};

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from(kValue)});
    Binding b;
    b.hosts = {"localhost"};
    b.methods = {"GET", "POST"};
    b.paths = {"/v1/"};
    auto t = TokenTable::build(std::move(s), {{"API_KEY", b}});
    ASSERT_TRUE(t.ok());
    table = std::move(*t);
    verifier = test::test_peer_verifier();
  }
  std::string token() const { return std::string(table.secrets()[0].token.view()); }

  std::unique_ptr<wire::Request> request(wire::Op op, const std::string& data, const std::string& host,
                                         const std::string& chain, const std::string& method = "GET",
                                         const std::string& path = "/v1/models",
                                         const std::string* http_host = nullptr) {
    return test::broker_request(op, data, host, chain, method, path, http_host);
  }
  DecideOutcome run(const wire::Request& r) { return decide({&table, verifier.get()}, r, peer); }
  static std::string reason(const DecideOutcome& o) { return std::string(o.reply.reason, o.reply.reason_len); }
  // The outcome's audit record as it is written (null when there is none).
  static nlohmann::json record(const DecideOutcome& o) { return o.audit ? to_record(*o.audit) : nlohmann::json(); }
};

TEST_F(Fixture, SwapsForABoundVerifiedHost) {
  auto o = run(*request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert)));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << reason(o);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), kValue);
  EXPECT_EQ(o.reply.fp_len, kValue.size());
  EXPECT_EQ(o.reply.fp_hash, table.secrets()[0].fp_hash);
  EXPECT_EQ(record(o)["decision"], "allow");
  EXPECT_EQ(record(o)["secret"], "API_KEY");
  EXPECT_EQ(record(o)["host"], "localhost");
  EXPECT_EQ(record(o)["exe"], "/usr/bin/curl");
  const std::string dump = record(o).dump();
  EXPECT_EQ(dump.find(kValue), std::string::npos);
  EXPECT_EQ(dump.find(token()), std::string::npos);
}

TEST_F(Fixture, IpSanVerifiesButTheHostIsNotBound) {
  auto o = run(*request(wire::Op::Swap, token(), "127.0.0.1", test::der_of_pem_file(test::test_ca().server_cert)));
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(o.reply.data_len, 0u);
  EXPECT_EQ(reason(o), "API_KEY may not be sent to 127.0.0.1 (it is bound to localhost)");
  EXPECT_EQ(record(o)["decision"], "refuse");
}

TEST_F(Fixture, RogueCertificateIsRefused) {
  auto o = run(*request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().rogue_cert)));
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("does not verify"), std::string::npos) << reason(o);
}

TEST_F(Fixture, NoChainIsRefused) {
  auto o = run(*request(wire::Op::Swap, token(), "localhost", ""));
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("no peer certificate"), std::string::npos) << reason(o);
}

TEST_F(Fixture, PlainTcpIsRefusedAndReportsAreRecorded) {
  auto r = request(wire::Op::Swap, token(), "localhost", "");
  r->channel = wire::Channel::Plain;
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("plain"), std::string::npos);
  auto rep = request(wire::Op::Report, token(), "127.0.0.1", "");
  rep->channel = wire::Channel::Plain;
  auto o2 = run(*rep);
  EXPECT_EQ(o2.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(record(o2)["decision"], "refuse");
  EXPECT_EQ(record(o2)["secret"], "API_KEY");
}

// An HTTP/2 stream the shim reset (a value of another length in DATA): refused with its
// own reason, not "sent unchanged" (it was not sent at all).
TEST_F(Fixture, H2StreamResetReportHasItsOwnReason) {
  auto rep = request(wire::Op::Report, token(), "localhost", "");
  rep->form = wire::kReportH2StreamReset;
  ASSERT_TRUE(wire::request_is_valid(*rep, sizeof(wire::Request)));
  auto o = run(*rep);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(record(o)["decision"], "refuse");
  EXPECT_EQ(record(o)["secret"], "API_KEY");
  EXPECT_NE(record(o)["reason"].get<std::string>().find("the stream was reset"), std::string::npos);
  rep->form = wire::kReportH2StreamReset + 1;   // no other reason exists
  EXPECT_FALSE(wire::request_is_valid(*rep, sizeof(wire::Request)));
}

TEST_F(Fixture, MethodAndPathRestrictions) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  EXPECT_EQ(run(*request(wire::Op::Swap, token(), "localhost", chain, "DELETE")).reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "/admin")).reply.decision,
            wire::Decision::Refuse);
  EXPECT_EQ(run(*request(wire::Op::Swap, token(), "localhost", chain, "POST", "/v1/chat")).reply.decision,
            wire::Decision::Allow);
}

TEST_F(Fixture, UnknownAndIncompleteTokens) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  auto unknown = run(*request(wire::Op::Swap, "KZ_TOK_notatokenofthisrun123", "localhost", chain));
  EXPECT_EQ(unknown.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(record(unknown)["reason"], "not a token of this run");
  auto partial = request(wire::Op::Swap, token().substr(0, 15), "localhost", chain);
  partial->flags |= wire::kFlagTokenAtEnd;
  auto o = run(*partial);
  EXPECT_EQ(o.reply.decision, wire::Decision::Incomplete);
  EXPECT_EQ(o.reply.token_len, token().size());
  EXPECT_FALSE(o.audit.has_value());
  // Without the at-end flag a prefix is just an unknown token.
  EXPECT_EQ(run(*request(wire::Op::Swap, token().substr(0, 15), "localhost", chain)).reply.decision,
            wire::Decision::Refuse);
}

TEST_F(Fixture, RedactConfirmsAValueAndAnswersWithTheToken) {
  auto o = run(*request(wire::Op::Redact, kValue, "localhost", ""));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), token());
  EXPECT_EQ(record(o)["event"], "redact");
  auto miss = run(*request(wire::Op::Redact, std::string(kValue.size(), 'q'), "localhost", ""));
  EXPECT_EQ(miss.reply.decision, wire::Decision::Unknown);
  EXPECT_FALSE(miss.audit.has_value());
}

std::string in_form(wire::ValueForm f, std::string_view v) {
  std::string out(wire::kMaxFormLen, '\0');
  out.resize(wire::encode_form(f, reinterpret_cast<const unsigned char*>(v.data()), v.size(), out.data(), out.size()));
  return out;
}

TEST_F(Fixture, RedactInAnEncodedFormAnswersWithTheTokenInThatForm) {
  for (wire::ValueForm f : {wire::ValueForm::Base64, wire::ValueForm::Base64UrlNoPad, wire::ValueForm::HexUpper}) {
    auto r = request(wire::Op::Redact, in_form(f, kValue), "localhost", "");
    r->form = static_cast<std::uint32_t>(f);
    ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
    auto o = run(*r);
    ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << static_cast<int>(f);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), in_form(f, token()));
    // The raw value asked as another form is no hit.
    auto raw = request(wire::Op::Redact, kValue, "localhost", "");
    raw->form = static_cast<std::uint32_t>(f);
    EXPECT_EQ(run(*raw).reply.decision, wire::Decision::Unknown);
  }
}

// A kept-prefix value (token shape): its rest alone, echoed base64- or hex-encoded, is
// redacted to the bare token in that form, not to the agent's whole copy (review 27b #3).
TEST(DecideRedact, RestOfAKeptPrefixValueAnswersWithTheBareTokenInThatForm) {
  const std::string value = "ghp_aB3dE5gH7jK9mN1pQ2sT4vW6yZ8aB3dE5gH7";
  std::vector<ResolvedSecret> s;
  s.push_back({"GITHUB_TOKEN", "env", SecretValue::from(value)});
  Binding b;
  b.hosts = {"localhost"};
  auto t = TokenTable::build(std::move(s), {{"GITHUB_TOKEN", b}}, TokenShape::Auto);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->secrets()[0].shown_prefix, "ghp_");
  const std::string tok(t->secrets()[0].token.view());
  auto verifier = test::test_peer_verifier();
  for (wire::ValueForm f : {wire::ValueForm::Base64, wire::ValueForm::HexLower}) {
    auto r = test::broker_request(wire::Op::Redact, in_form(f, value.substr(4)), "localhost", "", "GET", "/", nullptr);
    r->form = static_cast<std::uint32_t>(f);
    auto o = decide({&*t, verifier.get()}, *r, PeerProcess{4242, "/usr/bin/curl"});
    ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << static_cast<int>(f);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), in_form(f, tok));
  }
}

TEST_F(Fixture, SwapAllowCarriesAPrintOfEveryDistinctForm) {
  auto o = run(*request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert)));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << reason(o);
  // kValue is alphanumeric and '-': percent and JSON forms equal the raw value; the
  // length is a multiple of 3 or not, so padded and unpadded base64 may coincide.
  EXPECT_GE(o.reply.nforms, 4u);
  EXPECT_EQ(o.reply.fq_base % 2, 1u);
  EXPECT_EQ(o.reply.fq_hash, wire::fq_hash(reinterpret_cast<const unsigned char*>(kValue.data()), kValue.size(), o.reply.fq_base));
  for (std::size_t i = 0; i < o.reply.nforms; ++i) {
    const auto f = static_cast<wire::ValueForm>(o.reply.forms[i].form);
    const std::string e = in_form(f, kValue);
    EXPECT_NE(e, kValue);
    EXPECT_EQ(o.reply.forms[i].len, e.size());
    EXPECT_EQ(o.reply.forms[i].hash, wire::fp_hash(reinterpret_cast<const unsigned char*>(e.data()), e.size(), o.reply.fp_base));
    EXPECT_EQ(o.reply.forms[i].quick, wire::fq_hash(reinterpret_cast<const unsigned char*>(e.data()), e.size(), o.reply.fq_base));
  }
}

TEST_F(Fixture, CodedResponseReportIsARefusalWithTheCoding) {
  auto r = request(wire::Op::Report, "gzip", "localhost", "");
  r->flags |= wire::kFlagCodedResponse;
  ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  const auto rec = record(o);
  EXPECT_EQ(rec["event"], "redact");
  EXPECT_EQ(rec["decision"], "refuse");
  EXPECT_NE(rec["reason"].get<std::string>().find("content-coded (gzip)"), std::string::npos);
  EXPECT_EQ(rec["host"], "localhost");
  EXPECT_EQ(rec["path"], "/v1/models");
}

}  // namespace
}  // namespace kz

namespace kz {
namespace {

TEST_F(Fixture, GrantOnlyWithoutPerRequestRulesAndUsesAreRecorded) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  // The fixture's secret restricts methods and paths: every request must be asked about.
  auto restricted = run(*request(wire::Op::Swap, token(), "localhost", chain));
  ASSERT_EQ(restricted.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(restricted.reply.flags, 0);
  EXPECT_FALSE(record(restricted).contains("grant"));

  std::vector<ResolvedSecret> s;
  s.push_back({"OPEN_KEY", "env", SecretValue::from(kValue)});
  Binding b;
  b.hosts = {"localhost"};
  auto t = TokenTable::build(std::move(s), {{"OPEN_KEY", b}});
  ASSERT_TRUE(t.ok());
  table = std::move(*t);
  auto open = run(*request(wire::Op::Swap, token(), "localhost", chain));
  ASSERT_EQ(open.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(open.reply.flags, wire::kReplyReuseOnConnection);
  EXPECT_EQ(record(open)["grant"], "connection");
  // [blind] reuse = "request": no grants at all.
  auto asked = decide({&table, verifier.get(), false}, *request(wire::Op::Swap, token(), "localhost", chain), peer);
  ASSERT_EQ(asked.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(asked.reply.flags, 0);
  // Never a grant with a refusal.
  EXPECT_EQ(run(*request(wire::Op::Swap, token(), "127.0.0.1", chain)).reply.flags, 0);

  auto uses = request(wire::Op::Report, token(), "localhost", "");
  uses->uses = 41;
  ASSERT_TRUE(wire::request_is_valid(*uses, sizeof(wire::Request)));
  auto o = run(*uses);
  EXPECT_EQ(record(o)["event"], "swap");
  EXPECT_EQ(record(o)["decision"], "allow");
  EXPECT_EQ(record(o)["uses"], 41);
  EXPECT_EQ(record(o)["secret"], "OPEN_KEY");
  EXPECT_EQ(o.reply.data_len, 0u);   // a use report never returns a value
}


// Canary: whatever decide() is asked, its record never holds the value or the token,
// whether it allows, refuses, counts uses or redacts, and whatever the request's query.
TEST_F(Fixture, NoRecordHoldsAValueOrAToken) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  const std::string tok = token();
  std::vector<std::unique_ptr<wire::Request>> asks;
  asks.push_back(request(wire::Op::Swap, tok, "localhost", chain));                             // allow
  asks.push_back(request(wire::Op::Swap, tok, "127.0.0.1", chain));                             // host not bound
  asks.push_back(request(wire::Op::Swap, tok, "localhost", ""));                                // chain missing
  asks.push_back(request(wire::Op::Swap, tok, "localhost", chain, "DELETE"));                   // method
  asks.push_back(request(wire::Op::Swap, tok, "localhost", chain, "GET", "/v2/x"));             // path
  asks.push_back(request(wire::Op::Swap, tok, "localhost", chain, "GET", "/v1/m?key=" + tok));  // token in the query
  asks.push_back(request(wire::Op::Swap, tok, "localhost", chain, "GET", "/v1/m?v=" + kValue)); // value in the query
  asks.push_back(request(wire::Op::Swap, kValue, "localhost", chain));                          // a value, not a token
  asks.push_back(request(wire::Op::Report, tok, "localhost", chain));                           // sent unchanged
  auto uses = request(wire::Op::Report, tok, "localhost", chain);
  uses->uses = 3;
  asks.push_back(std::move(uses));
  auto plain = request(wire::Op::Swap, tok, "localhost", "");
  plain->channel = wire::Channel::Plain;
  asks.push_back(std::move(plain));
  asks.push_back(request(wire::Op::Redact, kValue, "localhost", ""));                           // a response held it
  std::size_t records = 0;
  for (const auto& r : asks) {
    ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
    const DecideOutcome o = run(*r);
    if (!o.audit) continue;
    ++records;
    const std::string line = record(o).dump();
    EXPECT_EQ(line.find(kValue), std::string::npos) << line;
    EXPECT_EQ(line.find(tok), std::string::npos) << line;
    EXPECT_EQ(line.find(tok.substr(0, 16)), std::string::npos) << line;   // nor a token's prefix
  }
  EXPECT_EQ(records, asks.size());
}

// Facts the shim saw on the TLS object that put the value within the agent's reach (or
// in a protocol the shim cannot parse): refused with the reason, audited with the host,
// path and process, even for a bound, verified host and an allowed request.
TEST_F(Fixture, UnsafeConnectionFactsAreRefusedWithTheirReason) {
  const struct {
    std::uint8_t flag;
    const char* reason;
  } cases[] = {
      {wire::kFlagKeyLog, "TLS key logging is on for this connection"},
      {wire::kFlagNotSocketBio, "the TLS object writes to a memory BIO, not a socket"},
      {wire::kFlagAlpnNotHttp1,
       "the connection negotiated an ALPN protocol other than the one kz follows on it (http/1.1 or none; h2 only "
       "when its first bytes were the HTTP/2 preface)"},
  };
  for (const auto& c : cases) {
    auto r = request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert));
    r->flags |= c.flag;
    ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
    auto o = run(*r);
    EXPECT_EQ(o.reply.decision, wire::Decision::Refuse) << c.reason;
    EXPECT_EQ(o.reply.data_len, 0u);
    EXPECT_EQ(o.reply.flags, 0u);
    EXPECT_EQ(reason(o), std::string(c.reason).substr(0, wire::kMaxReason));
    const auto rec = record(o);
    EXPECT_EQ(rec["decision"], "refuse");
    EXPECT_EQ(rec["reason"], c.reason);
    EXPECT_EQ(rec["host"], "localhost");
    EXPECT_EQ(rec["path"], "/v1/models");
    EXPECT_EQ(rec["exe"], "/usr/bin/curl");
    EXPECT_EQ(rec["secret"], "API_KEY");
  }
}

// A swap written before the TLS object finished its handshake (the shim could not complete
// it): the chain in the request may be an earlier session's, so even a bound, verified
// host with an allowed request is refused, with the reason. Any other Swap form is invalid.
TEST_F(Fixture, ASwapBeforeTheHandshakeFinishedIsRefused) {
  auto r = request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert));
  ASSERT_EQ(run(*r).reply.decision, wire::Decision::Allow);   // the same request, finished: allowed
  r->form = wire::kFormHandshakeUnfinished;
  ASSERT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_EQ(o.reply.data_len, 0u);
  const std::string why =
      "the TLS handshake had not finished: the certificate chain the object reported may be an earlier session's";
  EXPECT_EQ(reason(o), why.substr(0, wire::kMaxReason));
  const auto rec = record(o);
  EXPECT_EQ(rec["decision"], "refuse");
  EXPECT_EQ(rec["reason"], why);
  EXPECT_EQ(rec["host"], "localhost");
  r->form = 1;
  EXPECT_FALSE(wire::request_is_valid(*r, sizeof(wire::Request)));
}

TEST_F(Fixture, RequestFlagsOnARedactAreInvalid) {
  // (Every flag bit has a meaning; the request's own flags mean nothing on a Redact.)
  auto r = request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert));
  r->op = wire::Op::Redact;
  r->flags |= wire::kFlagUnidentified;
  EXPECT_FALSE(wire::request_is_valid(*r, sizeof(wire::Request)));
}

}  // namespace
// ---- domain fronting (issue 15, class 7) --------------------------------------------------

TEST_F(Fixture, HostHeaderNamingAnotherHostIsRefusedAndAudited) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  const std::string evil = "evil.example:443";
  auto o = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "/v1/models", &evil));
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("evil.example"), std::string::npos) << reason(o);
  EXPECT_NE(reason(o).find("fronting"), std::string::npos) << reason(o);
  EXPECT_EQ(o.reply.data_len, 0u);
  EXPECT_EQ(record(o)["http_host"], "evil.example:443");
  EXPECT_EQ(record(o)["decision"], "refuse");
}

TEST_F(Fixture, HostHeaderWithPortCaseAndTrailingDotMatches) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  for (std::string h : {"localhost", "LocalHost:8443", "localhost.", "localhost.:443"}) {
    auto o = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "/v1/models", &h));
    EXPECT_EQ(o.reply.decision, wire::Decision::Allow) << h << ": " << reason(o);
    EXPECT_EQ(record(o)["http_host"], h);
  }
}

TEST_F(Fixture, MissingMalformedOrDuplicateHostIsRefused) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  for (std::string h : {"", "user@localhost", "localhost:x", "localhost:443:1"}) {
    auto o = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "/v1/models", &h));
    EXPECT_EQ(o.reply.decision, wire::Decision::Refuse) << h;
  }
  auto r = request(wire::Op::Swap, token(), "localhost", chain);
  r->flags |= wire::kFlagHostInvalid;
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("more than one Host"), std::string::npos) << reason(o);
}

TEST_F(Fixture, AbsoluteFormTargetMustNameTheVerifiedHost) {
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  auto bad = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "https://evil.example/v1/models"));
  EXPECT_EQ(bad.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(bad).find("evil.example"), std::string::npos) << reason(bad);
  // Its path is what the binding judges.
  auto good = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "https://localhost:8443/v1/models"));
  EXPECT_EQ(good.reply.decision, wire::Decision::Allow) << reason(good);
  auto outside = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "https://localhost/admin"));
  EXPECT_EQ(outside.reply.decision, wire::Decision::Refuse);
  // Absolute form with no Host header still names a host.
  const std::string none;
  auto only = run(*request(wire::Op::Swap, token(), "localhost", chain, "GET", "https://localhost/v1/x", &none));
  EXPECT_EQ(only.reply.decision, wire::Decision::Allow) << reason(only);
}

TEST_F(Fixture, UnidentifiedRequestReportIsAuditedAsSuch) {
  auto r = request(wire::Op::Report, token(), "localhost", "");
  r->flags |= wire::kFlagUnidentified;
  auto o = run(*r);
  EXPECT_EQ(o.reply.decision, wire::Decision::Refuse);
  EXPECT_NE(reason(o).find("could not be identified"), std::string::npos) << reason(o);
}

// Tokens that look right: a token that keeps its value's prefix ("sk-live-" is no known
// prefix, "sk-" is) stands for the rest of the value. The swap answers with that rest and
// a redaction of the rest answers with the token, so the prefix in the agent's copy (and
// in the server's echo) stays where it is and the length is exact both ways.
TEST_F(Fixture, ShapedTokenStandsForTheRestOfTheValue) {
  std::vector<ResolvedSecret> s;
  s.push_back({"API_KEY", "env", SecretValue::from(kValue)});
  Binding b;
  b.hosts = {"localhost"};
  auto t = TokenTable::build(std::move(s), {{"API_KEY", b}}, TokenShape::Auto);
  ASSERT_TRUE(t.ok());
  table = std::move(*t);
  const TokenEntry& e = table.secrets()[0];
  ASSERT_EQ(e.shown_prefix, "sk-");
  const std::string rest = kValue.substr(3);
  EXPECT_EQ(token().size(), rest.size());
  auto o = run(*request(wire::Op::Swap, token(), "localhost", test::der_of_pem_file(test::test_ca().server_cert)));
  ASSERT_EQ(o.reply.decision, wire::Decision::Allow) << reason(o);
  EXPECT_EQ(e.shown_prefix + std::string(reinterpret_cast<const char*>(o.reply.data), o.reply.data_len), kValue);
  EXPECT_EQ(o.reply.fp_len, rest.size());
  auto red = run(*request(wire::Op::Redact, rest, "localhost", ""));
  ASSERT_EQ(red.reply.decision, wire::Decision::Allow);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(red.reply.data), red.reply.data_len), token());
  const std::string shown(token_as_shown(e).view());
  EXPECT_EQ(shown.size(), kValue.size());
  // An encoded echo is of the whole value (base64 of the rest is no part of it): it is
  // caught whole and answered with the agent's whole copy in that form.
  for (auto f : {wire::ValueForm::Base64, wire::ValueForm::HexLower}) {
    auto r = request(wire::Op::Redact, in_form(f, kValue), "localhost", "");
    r->form = static_cast<std::uint32_t>(f);
    auto enc = run(*r);
    ASSERT_EQ(enc.reply.decision, wire::Decision::Allow) << static_cast<int>(f);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(enc.reply.data), enc.reply.data_len), in_form(f, shown));
  }
}

}  // namespace kz
