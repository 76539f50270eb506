// What AWS SigV4 re-signing (docs/aws.md) costs the broker per request, beyond a plain
// swap's decision: parse the head, rebuild the canonical request and reproduce the
// agent's signature with the token (trying the URI constructions until one matches),
// then sign with the real key. The broker round trip itself is the same as a swap's
// with [blind] reuse = "request" (scripts/bench-blind, "broker asked each time"), so
// the total per signed request is that round trip plus this. Also the shim's share:
// the SHA-256 of a body (kz/wire/sha256.h) when the request has no x-amz-content-sha256.
#include <benchmark/benchmark.h>

#include <string>

#include "kz/sigv4.h"
#include "kz/wire/sha256.h"

namespace {

namespace s4 = kz::sigv4;

const std::string kToken = "KZ_TOK_0123456789abcdefghijklmnopqrstuvw";   // 40, as a key's token
const std::string kKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

// A Secrets Manager GetSecretValue head as botocore writes it, signed with the token.
std::string head(const std::string& service, s4::UriStyle style, const std::string& payload) {
  const std::string target = service == "s3" ? "/kz-bucket/reports/2026%20Q1.csv" : "/";
  std::string h = "POST " + target + " HTTP/1.1\r\nHost: " + service + ".us-east-1.amazonaws.com\r\n"
                  "Accept-Encoding: identity\r\nX-Amz-Target: secretsmanager.GetSecretValue\r\n"
                  "Content-Type: application/x-amz-json-1.1\r\nUser-Agent: Boto3/1.26.27 Python/3.11.2\r\n"
                  "X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAKZBENCH000000001/"
                  "20260101/us-east-1/" + service + "/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                  "x-amz-target, Signature=" + std::string(64, '0') + "\r\nContent-Length: 22\r\n\r\n";
  auto p = s4::parse_head(h);
  auto s = s4::parse_signed(*p, h);
  const std::string creq = s4::canonical_request(*p, *s, style, payload);
  h.replace(s->signature_pos, 64, s4::signature(kToken, *s, s4::string_to_sign(*s, creq)));
  return h;
}

// The broker's SigV4 work for one request (decide_sign without the checks it shares with a swap).
void resign(benchmark::State& state, const std::string& service, s4::UriStyle style) {
  const std::string payload = std::string(s4::kEmptyHash);
  const std::string text = head(service, style, payload);
  for (auto _ : state) {
    auto p = s4::parse_head(text);
    auto s = s4::parse_signed(*p, text);
    std::string sig;
    for (s4::UriStyle st : s4::kUriStyles) {
      const std::string creq = s4::canonical_request(*p, *s, st, payload);
      if (s4::signature(kToken, *s, s4::string_to_sign(*s, creq)) != s->signature) continue;
      sig = s4::signature(kKey, *s, s4::string_to_sign(*s, creq));
      break;
    }
    if (sig.empty()) state.SkipWithError("not reproduced");
    benchmark::DoNotOptimize(sig);
  }
}

// A GetSecretValue-shaped head (path "/"): every URI construction gives the same, so the
// first matches; an S3 object path with one to encode, signed S3's way (encoded once).
void BM_BrokerResignS3(benchmark::State& state) { resign(state, "s3", s4::UriStyle::EncodeOnce); }
void BM_BrokerResignSecretsManager(benchmark::State& state) {
  resign(state, "secretsmanager", s4::UriStyle::EncodeTwiceNormalized);
}

void BM_ShimBodyHash(benchmark::State& state) {
  const std::string body(static_cast<std::size_t>(state.range(0)), 'x');
  char out[64];
  for (auto _ : state) {
    kz::wire::sha256_hex(body.data(), body.size(), out);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

BENCHMARK(BM_BrokerResignS3);
BENCHMARK(BM_BrokerResignSecretsManager);
BENCHMARK(BM_ShimBodyHash)->Arg(64)->Arg(1024)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
