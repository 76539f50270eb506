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
                "effect must be allow or deny"),
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
}  // namespace kz::policy
