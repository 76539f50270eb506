// jwks_url: an issuer's JWKS fetched over HTTPS (local test server with the test CA),
// cached, re-fetched on an unknown kid at most once per min_refresh_interval, and kept
// when the identity provider is unreachable or untrusted.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "jwt_test_signer.h"
#include "kz/providers/http_client.h"
#include "policy/jwt_verifier.h"
#include "test_support.h"

namespace kz::jwt {
namespace {

using nlohmann::json;
using kz::test::Signer;

constexpr std::int64_t kNow = 1'800'000'000;

json claims() {
  return json{{"iss", "https://idp.example"}, {"aud", "keyzero"}, {"exp", kNow + 600}, {"service", "a"}};
}

std::string jwks_of(std::initializer_list<const Signer*> ss) {
  json j{{"keys", json::array()}};
  for (const auto* s : ss) j["keys"].push_back(s->jwk());
  return j.dump();
}

int fetch_count(const kz::test::ServerProcess& srv) {
  HttpRequest req;
  req.url = srv.url("https") + "/count";
  req.ca_file = kz::test::test_ca().ca;
  req.deadline = Deadline::clock::now() + std::chrono::seconds(5);
  auto r = http_send(std::move(req), "count");
  if (!r) return -1;
  auto j = json::parse(r->body.str(), nullptr, false);
  return j.is_object() ? j.value("count", -1) : -1;
}

JwtVerifier make(const std::string& url, std::chrono::seconds min_refresh, const std::string& ca) {
  IssuerConfig c;
  c.issuer = "https://idp.example";
  c.audience = "keyzero";
  c.jwks_https.url = url;
  c.jwks_https.ca_file = ca;
  c.jwks_https.min_refresh_interval = min_refresh;
  std::vector<IssuerConfig> v;
  v.push_back(std::move(c));
  auto r = JwtVerifier::create(std::move(v));
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
  return std::move(r).value();
}

std::string reason(const JwtResult<VerifiedJwt>& r) { return r ? "ok" : to_string(r.error().reason); }

TEST(JwtJwksHttps, FetchCacheAndRotation) {
  kz::test::TempDir dir;
  Signer a = Signer::make("ES256", "a");
  Signer b = Signer::make("RS256", "b");
  const std::string file = dir.write("jwks.json", jwks_of({&a}));
  auto args = kz::test::tls_args();
  args.insert(args.end(), {"--file", file});
  kz::test::ServerProcess srv("jwks_server.py", args);
  const std::string url = srv.url("https") + "/jwks.json";

  auto v = make(url, std::chrono::seconds(0), kz::test::test_ca().ca);
  EXPECT_EQ(reason(v.verify(a.sign(claims()), kNow)), "ok");
  EXPECT_EQ(reason(v.verify(a.sign(claims()), kNow)), "ok");
  EXPECT_EQ(fetch_count(srv), 1) << "the second token is verified from the cache";

  // The identity provider rotates to b: the unknown kid triggers one re-fetch.
  dir.write("jwks.json", jwks_of({&a, &b}));
  EXPECT_EQ(reason(v.verify(b.sign(claims()), kNow)), "ok");
  EXPECT_EQ(fetch_count(srv), 2);

  // A kid that exists nowhere: refreshes (interval 0 here), still unknown.
  Signer c{"RS256", "c", PkeyPtr(EVP_PKEY_dup(b.key.get()))};
  EXPECT_EQ(reason(v.verify(c.sign(claims()), kNow)), "unknown_kid");
}

TEST(JwtJwksHttps, UnknownKidRefreshIsRateLimited) {
  kz::test::TempDir dir;
  Signer a = Signer::make("EdDSA", "a");
  Signer b = Signer::make("EdDSA", "b");
  const std::string file = dir.write("jwks.json", jwks_of({&a}));
  auto args = kz::test::tls_args();
  args.insert(args.end(), {"--file", file});
  kz::test::ServerProcess srv("jwks_server.py", args);
  auto v = make(srv.url("https") + "/jwks.json", std::chrono::seconds(3600), kz::test::test_ca().ca);
  EXPECT_EQ(reason(v.verify(a.sign(claims()), kNow)), "ok");
  dir.write("jwks.json", jwks_of({&a, &b}));
  // Tokens with unknown kids do not make the PDP hammer the identity provider.
  for (int i = 0; i < 5; ++i) {
    Signer r{"EdDSA", "random-" + std::to_string(i), PkeyPtr(EVP_PKEY_dup(b.key.get()))};
    EXPECT_EQ(reason(v.verify(r.sign(claims()), kNow)), "unknown_kid");
  }
  EXPECT_EQ(fetch_count(srv), 1);
}

TEST(JwtJwksHttps, UntrustedOrFailingServerGivesNoKeys) {
  kz::test::TempDir dir;
  Signer a = Signer::make("ES256", "a");
  const std::string file = dir.write("jwks.json", jwks_of({&a}));
  auto args = kz::test::tls_args(/*rogue=*/true);
  args.insert(args.end(), {"--file", file});
  kz::test::ServerProcess rogue("jwks_server.py", args);
  auto v = make(rogue.url("https") + "/jwks.json", std::chrono::seconds(30), kz::test::test_ca().ca);
  auto r = v.verify(a.sign(claims()), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(to_string(r.error().reason), std::string("unknown_kid"));
  EXPECT_NE(r.error().message.find("unavailable"), std::string::npos) << r.error().message;

  auto args2 = kz::test::tls_args();
  args2.insert(args2.end(), {"--file", file});
  kz::test::ServerProcess srv("jwks_server.py", args2);
  auto v2 = make(srv.url("https") + "/status/500", std::chrono::seconds(30), kz::test::test_ca().ca);
  auto r2 = v2.verify(a.sign(claims()), kNow);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("500"), std::string::npos) << r2.error().message;
}

}  // namespace
}  // namespace kz::jwt
