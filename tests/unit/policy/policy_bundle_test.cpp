// Loading bundle.yaml: what is accepted, and errors that name file:line:column and the
// field (for CEL: the rule and the offset in the expression).
#include "policy/bundle.h"

#include <gtest/gtest.h>

namespace kz::policy {
namespace {

std::string error_of(const std::string& yaml) {
  auto b = parse_bundle(yaml, "/etc/kz/bundle.yaml");
  return b ? std::string() : b.error().message;
}

TEST(PolicyBundle, TheIssueExampleLoads) {
  auto b = parse_bundle(R"Y(
identity:
  issuers:
    - issuer: "https://auth.example"
      audience: "keyzero"
      jwks_file: ./jwks.json
providers:
  vault: { address: "https://vault:8200" }
policies:
- match: "secret/data/prod/**"
  rules:
  - cel: "identity.service == 'data-pipeline-agent'"
    effect: allow
  - cel: "identity.service == 'support-agent'"
    effect: deny
- match: "secret/data/staging/**"
  rules:
  - cel: "identity.env == 'staging'"
    effect: allow
    mode: shadow
)Y",
                        "/etc/kz/bundle.yaml");
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_EQ(b->issuers.size(), 1u);
  EXPECT_EQ(b->issuers[0].jwks_file, "/etc/kz/jwks.json");
  EXPECT_EQ(b->providers.count("vault"), 1u);
  ASSERT_EQ(b->policies.size(), 2u);
  EXPECT_EQ(b->policies[1].rules[0].mode, RuleMode::Shadow);
  EXPECT_EQ(b->revision.size(), 64u);
  EXPECT_EQ(b->policies[0].rules[1].pos.line, 14);
}

TEST(PolicyBundle, CelErrorsNameTheRuleAndTheOffset) {
  const std::string e = error_of(R"Y(policies:
- match: "**"
  rules:
  - cel: "identity.service == "
    effect: allow
)Y");
  EXPECT_NE(e.find("/etc/kz/bundle.yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("policies[0].rules[0].cel: offset"), std::string::npos) << e;
}

TEST(PolicyBundle, FieldErrors) {
  EXPECT_NE(error_of("policies:\n- match: '**'\n  rules:\n  - { cel: 'true', effect: permit }\n").find(
                "effect must be allow, deny or approve"),
            std::string::npos);
  EXPECT_NE(error_of("policies:\n- match: '**'\n  rules:\n  - { cel: 'true', effect: allow, mode: dry }\n").find(
                "mode must be enforce or shadow"),
            std::string::npos);
  EXPECT_NE(error_of("policies:\n- match: 'a**'\n  rules:\n  - { cel: 'true', effect: allow }\n").find(
                "must be a whole path segment"),
            std::string::npos);
  EXPECT_NE(error_of("policies:\n- match: '**'\n  rulez: []\n").find("unknown key \"rulez\""), std::string::npos);
  EXPECT_NE(error_of("providers:\n  vault: { adress: x }\npolicies: []\n").find("unknown key \"adress\""),
            std::string::npos);
  EXPECT_NE(error_of("providers:\n  nope: {}\npolicies: []\n").find("unknown provider"), std::string::npos);
  EXPECT_NE(error_of("identity:\n  issuers:\n  - { issuer: a, audience: b }\npolicies: []\n").find(
                "give its keys"),
            std::string::npos);
  EXPECT_NE(error_of("identity:\n  issuers:\n  - { issuer: a, audience: b, jwks_url: 'http://x' }\npolicies: []\n")
                .find("https://"),
            std::string::npos);
  EXPECT_NE(error_of("policies: [\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("providers: {}\n").find("policies is required"), std::string::npos);
  EXPECT_NE(error_of("policies:\n- match: '**'\n  rules:\n  - { cel: 'true', effect: deny, reveal: true }\n")
                .find("reveal only means something on an allow rule"),
            std::string::npos);
}

TEST(PolicyBundle, ErrorsCarryLineAndColumn) {
  const std::string e = error_of("policies:\n- match: '**'\n  rules:\n  - cel: 'true'\n    effect: maybe\n");
  EXPECT_EQ(e.rfind("/etc/kz/bundle.yaml:5:13: ", 0), 0u) << e;
}

}  // namespace
TEST(PolicyBundle, SecretsAndMcpSettings) {
  auto b = parse_bundle(R"Y(
policies:
- match: "**"
  rules:
  - cel: "true"
    effect: allow
    reveal: true
secrets:
  GITHUB_TOKEN: { provider: env, ref: GH, hosts: [api.github.com, "*.githubusercontent.com"], methods: [GET], paths: [/repos/] }
mcp:
  token_ttl: 5m
  allowed_hosts: [mcp.internal]
  fetch: { allow_addresses: [loopback, metadata], ca_file: ./ca.pem, max_body: 4096, timeout: 3s, max_redirects: 2 }
)Y",
                        "/etc/kz/bundle.yaml");
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_EQ(b->secrets.size(), 1u);
  EXPECT_EQ(b->secrets[0].name, "GITHUB_TOKEN");
  EXPECT_EQ(b->secrets[0].hosts.size(), 2u);
  EXPECT_EQ(b->secrets[0].methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(b->mcp.token_ttl, std::chrono::seconds(300));
  EXPECT_EQ(b->mcp.allowed_hosts, std::vector<std::string>{"mcp.internal"});
  EXPECT_TRUE(b->mcp.fetch.allow_loopback);
  EXPECT_FALSE(b->mcp.fetch.allow_link_local);
  EXPECT_TRUE(b->mcp.fetch.allow_metadata);
  EXPECT_EQ(b->mcp.fetch.ca_file, "/etc/kz/ca.pem");
  EXPECT_EQ(b->mcp.fetch.max_body, 4096u);
  EXPECT_EQ(b->mcp.fetch.timeout, std::chrono::seconds(3));
  EXPECT_EQ(b->mcp.fetch.max_redirects, 2);
  EXPECT_TRUE(b->policies[0].rules[0].reveal);
}

TEST(PolicyBundle, SecretAndMcpErrors) {
  const std::string head = "policies: []\n";
  EXPECT_NE(error_of(head + "secrets:\n  X: { provider: nope, ref: a }\n").find("secrets.X.provider: unknown provider"),
            std::string::npos);
  EXPECT_NE(error_of(head + "secrets:\n  X: { provider: env }\n").find("secrets.X needs provider and ref"), std::string::npos);
  EXPECT_NE(error_of(head + "secrets:\n  X: { provider: env, ref: a, hosts: [\"*\"] }\n").find("secrets.X.hosts"),
            std::string::npos);
  EXPECT_NE(error_of(head + "secrets:\n  X: { provider: env, ref: a, methods: [get] }\n").find("upper-case"),
            std::string::npos);
  EXPECT_NE(error_of(head + "mcp:\n  fetch:\n    allow_addresses: [intranet]\n").find("mcp.fetch.allow_addresses"),
            std::string::npos);
  const std::string unknown = error_of(head + "mcp:\n  fetch:\n    retries: 3\n");
  EXPECT_NE(unknown.find("/etc/kz/bundle.yaml:4:"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("known: allow_addresses, ca_file, max_body, timeout, max_redirects"), std::string::npos) << unknown;
  EXPECT_NE(error_of(head + "mcp:\n  token_ttl: 2d\n").find("mcp.token_ttl must be a duration"), std::string::npos);
  EXPECT_NE(error_of(head + "mcp:\n  fetch: { max_body: 12 }\n").find("mcp.fetch.max_body"), std::string::npos);
}

}  // namespace kz::policy
