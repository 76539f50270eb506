// The decision semantics of bundle.yaml policies: deny wins, allow allows, default deny,
// fail closed on errors, shadow rules never enforced, the deciding rule named.
#include "policy/policy_engine.h"

#include <gtest/gtest.h>

#include "policy/bundle.h"

namespace kz::policy {
namespace {

Bundle bundle(const std::string& yaml) {
  auto b = parse_bundle(yaml, "/tmp/bundle.yaml");
  EXPECT_TRUE(b) << (b ? "" : b.error().message);
  return b ? std::move(*b) : Bundle{};
}

// The seed's example, as in the issue.
const char* kSeed = R"Y(
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
)Y";

Decision ask(const Bundle& b, nlohmann::json claims, const std::string& ref) {
  return decide(b, claims, {"DB", "vault", ref}, {1764115200, "127.0.0.1", "", "", ""});
}

TEST(PolicyEngine, SeedExample) {
  const Bundle b = bundle(kSeed);
  auto d = ask(b, {{"service", "data-pipeline-agent"}}, "secret/data/prod/db#password");
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rule_id, "policies[0].rules[0]");
  d = ask(b, {{"service", "support-agent"}}, "secret/data/prod/db#password");
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule_id, "policies[0].rules[1]");
  d = ask(b, {{"service", "data-pipeline-agent"}}, "secret/data/staging/db");
  EXPECT_FALSE(d.allow) << "staging wants env == staging";
  EXPECT_TRUE(d.rule_id.empty());
  d = ask(b, {{"service", "x"}, {"env", "staging"}}, "secret/data/staging/db");
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.policy_id, "policies[1]");
  d = ask(b, {{"env", "staging"}}, "secret/data/other/db");
  EXPECT_FALSE(d.allow);
  EXPECT_NE(d.reason.find("no policy matches"), std::string::npos);
}

TEST(PolicyEngine, DenyWinsOverAllowAcrossPolicies) {
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "true", effect: allow }
- match: "secret/**"
  rules:
  - { cel: "identity.blocked == true", effect: deny }
)Y");
  EXPECT_TRUE(ask(b, {{"blocked", false}}, "secret/x").allow);
  auto d = ask(b, {{"blocked", true}}, "secret/x");
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule_id, "policies[1].rules[0]");
}

TEST(PolicyEngine, AnErroringDenyDeniesEvenWhenAnAllowIsTrue) {
  // The public tool this replaces skips erroring rules, so a later allow lets the
  // request through: here it must not.
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "identity.team.name == 'red'", effect: deny }
  - { cel: "true", effect: allow }
)Y");
  auto d = ask(b, {{"service", "a"}}, "x");   // no identity.team: the deny errors
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule_id, "policies[0].rules[0]");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.reason.find("failing closed"), std::string::npos);
}

TEST(PolicyEngine, ANonBoolDenyDeniesAndANonBoolAllowDoesNotAllow) {
  const Bundle deny = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "identity.service", effect: deny }
  - { cel: "true", effect: allow }
)Y");
  EXPECT_FALSE(ask(deny, {{"service", "a"}}, "x").allow);
  const Bundle allow = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "identity.service", effect: allow }
)Y");
  auto d = ask(allow, {{"service", "a"}}, "x");
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].error, "the expression did not yield a bool");
}

TEST(PolicyEngine, AnErroringAllowDoesNotAllowButAnotherCan) {
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "identity.missing.field == 1", effect: allow }
  - { cel: "identity.service == 'a'", effect: allow }
)Y");
  auto d = ask(b, {{"service", "a"}}, "x");
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rule_id, "policies[0].rules[1]");
  EXPECT_EQ(d.errors.size(), 1u);
  EXPECT_FALSE(ask(b, {{"service", "b"}}, "x").allow);
}

TEST(PolicyEngine, ShadowRulesAreReportedNeverEnforced) {
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "true", effect: deny, mode: shadow }
  - { cel: "identity.service == 'a'", effect: allow }
  - { cel: "true", effect: allow, mode: shadow }
)Y");
  auto d = ask(b, {{"service", "a"}}, "x");
  EXPECT_TRUE(d.allow);
  ASSERT_EQ(d.shadow.size(), 2u);
  EXPECT_EQ(d.shadow[0].result, RuleResult::True);
  EXPECT_FALSE(ask(b, {{"service", "b"}}, "x").allow) << "a shadow allow does not allow";
}

TEST(PolicyEngine, SecretAndRequestVariables) {
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - cel: "secret.provider == 'vault' && secret.name == 'DB' && request.time > 0 && request.source == '127.0.0.1'"
    effect: allow
  - cel: "has(request.host) && !request.host.endsWith('.example.com')"
    effect: deny
)Y");
  EXPECT_TRUE(ask(b, nlohmann::json::object(), "x").allow);
  auto use = decide(b, nlohmann::json::object(), {"DB", "vault", "x"}, {1, "127.0.0.1", "evil.test", "GET", "/"});
  EXPECT_FALSE(use.allow);
  use = decide(b, nlohmann::json::object(), {"DB", "vault", "x"}, {1, "127.0.0.1", "api.example.com", "GET", "/"});
  EXPECT_TRUE(use.allow);
}

TEST(PolicyEngine, RevealComesFromTheDecidingRule) {
  const Bundle b = bundle(R"Y(
policies:
- match: "**"
  rules:
  - { cel: "identity.human == true", effect: allow, reveal: true }
  - { cel: "true", effect: allow }
)Y");
  EXPECT_TRUE(ask(b, {{"human", true}}, "x").reveal);
  EXPECT_FALSE(ask(b, {{"human", false}}, "x").reveal);
}

TEST(PolicyEngine, DecisionJsonNamesTheRule) {
  const Bundle b = bundle(kSeed);
  auto j = decision_json(ask(b, {{"service", "support-agent"}}, "secret/data/prod/db"));
  EXPECT_EQ(j["allow"], false);
  EXPECT_EQ(j["rule"], "policies[0].rules[1]");
  EXPECT_EQ(j["policy"], "policies[0]");
}

}  // namespace
}  // namespace kz::policy
