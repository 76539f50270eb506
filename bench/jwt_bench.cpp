// JWT verification cost per token (the PDP verifies one per request): RS256 (RSA-2048),
// ES256 (P-256), EdDSA and HS256, through the whole JwtVerifier (parse, header checks,
// key selection by kid, signature, claims). Keys are made at start-up.
#include <benchmark/benchmark.h>

#include "../tests/support/jwt_test_signer.h"
#include "policy/jwt_verifier.h"

namespace {

using nlohmann::json;
using kz::test::Signer;

constexpr std::int64_t kNow = 1'800'000'000;

json claims() {
  return json{{"iss", "https://auth.example"}, {"aud", "keyzero"}, {"sub", "agent-1"},
              {"service", "data-pipeline-agent"}, {"env", "prod"}, {"iat", kNow - 10}, {"exp", kNow + 600}};
}

void run(benchmark::State& state, const char* alg) {
  Signer s = Signer::make(alg, "k1");
  Signer other = Signer::make(alg, "k0");   // a second key in the set, selected away by kid
  kz::jwt::IssuerConfig c;
  c.issuer = "https://auth.example";
  c.audience = "keyzero";
  auto set = kz::jwt::jwks_from_json(json{{"keys", json::array({other.jwk(), s.jwk()})}});
  if (!set) std::abort();
  c.jwks = std::make_shared<const kz::jwt::JwkSet>(std::move(*set));
  std::vector<kz::jwt::IssuerConfig> cs;
  cs.push_back(std::move(c));
  auto v = kz::jwt::JwtVerifier::create(std::move(cs));
  if (!v) std::abort();
  const std::string tok = s.sign(claims());
  for (auto _ : state) {
    auto r = v->verify(tok, kNow);
    if (!r) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(r);
  }
}

void BM_VerifyRS256(benchmark::State& state) { run(state, "RS256"); }
void BM_VerifyPS256(benchmark::State& state) { run(state, "PS256"); }
void BM_VerifyES256(benchmark::State& state) { run(state, "ES256"); }
void BM_VerifyEdDSA(benchmark::State& state) { run(state, "EdDSA"); }

void BM_VerifyHS256(benchmark::State& state) {
  kz::jwt::IssuerConfig c;
  c.issuer = "https://auth.example";
  c.audience = "keyzero";
  const std::string key(32, 'k');
  c.hs256_key = kz::ScrubbedString(key);
  std::vector<kz::jwt::IssuerConfig> cs;
  cs.push_back(std::move(c));
  auto v = kz::jwt::JwtVerifier::create(std::move(cs));
  if (!v) std::abort();
  const std::string tok = kz::test::hs256(json{{"alg", "HS256"}, {"typ", "JWT"}}, claims(), key);
  for (auto _ : state) {
    auto r = v->verify(tok, kNow);
    if (!r) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(r);
  }
}

// Rejections that must stay cheap: a malformed token and alg none never reach crypto.
void BM_RejectMalformed(benchmark::State& state) {
  kz::jwt::IssuerConfig c;
  c.issuer = "https://auth.example";
  c.audience = "keyzero";
  c.hs256_key = kz::ScrubbedString(std::string(32, 'k'));
  std::vector<kz::jwt::IssuerConfig> cs;
  cs.push_back(std::move(c));
  auto v = kz::jwt::JwtVerifier::create(std::move(cs));
  if (!v) std::abort();
  const std::string tok = "eyJhbGciOiJub25lIn0." + kz::jwt::base64url_encode(claims().dump()) + ".";
  for (auto _ : state) {
    auto r = v->verify(tok, kNow);
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK(BM_VerifyRS256);
BENCHMARK(BM_VerifyPS256);
BENCHMARK(BM_VerifyES256);
BENCHMARK(BM_VerifyEdDSA);
BENCHMARK(BM_VerifyHS256);
BENCHMARK(BM_RejectMalformed);

}  // namespace

BENCHMARK_MAIN();
