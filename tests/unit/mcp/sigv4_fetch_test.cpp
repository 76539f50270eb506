// MCP fetch's SigV4 signing (mcp/sigv4_fetch.h): the headers kz adds make a request that
// the verifier's side (kz/sigv4.h, what the broker checks agents' requests with) accepts
// for the real key, over the Host libcurl sends; refusals name the secret and what does
// not match.
#include <gtest/gtest.h>

#include "kz/sigv4.h"
#include "mcp/sigv4_fetch.h"

namespace kz::mcp {
namespace {

constexpr const char* kKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

SigningCredentials creds(bool token) {
  SigningCredentials c;
  c.secret = "AWS_SECRET_ACCESS_KEY";
  c.binding.hosts = {"*.amazonaws.com", "localhost"};
  c.binding.sign = "sigv4";
  c.binding.services = {"s3", "secretsmanager"};
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.key = SecretValue::from(kKey);
  if (token) c.session_token = SecretValue::from("FwoGZXIvYXdzEXAMPLE+/=");
  return c;
}

HopInfo hop(const std::string& url, const std::string& method) {
  HopInfo h;
  h.url = *parse_https_url(url);
  h.method = method;
  return h;
}

// The request as it goes on the wire, and the verifier's verdict on it.
std::string verify(const HopInfo& h, const PreparedHop& wire, sigv4::UriStyle style) {
  std::string text = h.method + " " + h.url.target + " HTTP/1.1\r\n";
  for (const auto& [k, v] : wire.headers) text += k + ": " + v.str() + "\r\n";
  text += "\r\n";
  auto head = sigv4::parse_head(text);
  if (!head) return head.error().message;
  auto s = sigv4::parse_signed(*head, text);
  if (!s) return s.error().message;
  const std::string creq = sigv4::canonical_request(*head, *s, style, sigv4::sha256_hex(wire.body.str()));
  return sigv4::signature(kKey, *s, sigv4::string_to_sign(*s, creq)) == s->signature ? "ok" : "bad signature";
}

TEST(McpSigV4, SignedRequestVerifiesWithTheRealKey) {
  const HopInfo h = hop("https://localhost:8443/kzbucket/a%20b.txt?x-id=PutObject", "PUT");
  PreparedHop wire;
  wire.headers.emplace_back("Content-Type", ScrubbedString("text/plain"));
  wire.body = ScrubbedString("hello");
  ASSERT_TRUE(sign_hop(wire, h, creds(true), {"s3", "us-east-1"}, "20260101T000000Z").ok());
  EXPECT_EQ(verify(h, wire, sigv4::UriStyle::EncodeOnce), "ok");
  bool host = false, token = false, auth = false;
  for (const auto& [k, v] : wire.headers) {
    if (k == "Host") host = v.str() == "localhost:8443";
    if (k == "X-Amz-Security-Token") token = v.str() == "FwoGZXIvYXdzEXAMPLE+/=";
    if (k == "Authorization") auth = v.str().find("Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request") != std::string::npos;
    EXPECT_EQ(v.str().find(kKey), std::string::npos) << k;
  }
  EXPECT_TRUE(host && token && auth);
}

TEST(McpSigV4, OtherServicesEncodeThePathTwice) {
  const HopInfo h = hop("https://secretsmanager.us-east-1.amazonaws.com/", "POST");
  PreparedHop wire;
  wire.headers.emplace_back("X-Amz-Target", ScrubbedString("secretsmanager.GetSecretValue"));
  wire.headers.emplace_back("Accept-Encoding", ScrubbedString("gzip"));   // libcurl's own: not sent, not signed
  wire.body = ScrubbedString(R"({"SecretId":"prod/db"})");
  ASSERT_TRUE(sign_hop(wire, h, creds(false), {"secretsmanager", "us-east-1"}, "20260101T000000Z").ok());
  std::erase_if(wire.headers, [](const auto& kv) { return kv.first == "Accept-Encoding"; });
  EXPECT_EQ(verify(h, wire, sigv4::UriStyle::EncodeTwiceNormalized), "ok");
}

TEST(McpSigV4, RefusalsNameTheSecretAndWhat) {
  const SigningCredentials c = creds(false);
  EXPECT_EQ(sign_refusal(c, {"s3", "us-east-1"}, hop("https://s3.amazonaws.com/b/k", "GET")), "");
  EXPECT_NE(sign_refusal(c, {"s3", "us-east-1"}, hop("https://evil.example/b/k", "GET"))
                .find("AWS_SECRET_ACCESS_KEY may not be sent to evil.example"),
            std::string::npos);
  EXPECT_NE(sign_refusal(c, {"sts", "us-east-1"}, hop("https://sts.amazonaws.com/", "POST"))
                .find("AWS_SECRET_ACCESS_KEY may not sign for the service sts"),
            std::string::npos);
  EXPECT_EQ(sign_header_problem("Content-Type"), "");
  EXPECT_NE(sign_header_problem("authorization"), "");
  EXPECT_NE(sign_header_problem("X-Amz-Date"), "");
  EXPECT_EQ(host_header(hop("https://[::1]:9000/", "GET").url), "[::1]:9000");
  EXPECT_EQ(host_header(hop("https://s3.amazonaws.com/", "GET").url), "s3.amazonaws.com");
}

}  // namespace
}  // namespace kz::mcp
