// One policy decision: may this identity have this secret (or use it here)?
//
// Semantics (README "Policy"): the policies whose `match` glob matches the secret's ref
// are selected; among all their enforced rules, any `deny` that is true wins; else any
// `approve` that is true makes the decision wait for a person (approve); else any
// `allow` that is true allows; else the request is denied (default deny). Fail closed:
// a deny rule that errors or yields a non-bool denies; an allow rule that errors does
// not allow; both are reported. Shadow rules are evaluated and reported, never
// enforced. The decision names the policy and rule that decided it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/bundle.h"

namespace kz::policy {

struct SecretInput {
  std::string name;       // the variable name the client asked for (may be "")
  std::string provider;
  std::string ref;
};

// CEL's `request`: when, from where, and, for a decision about a use (not a
// resolution), where to. Empty strings are left out of the map (has() is false).
struct RequestInput {
  std::int64_t time = 0;  // Unix seconds
  std::string source;     // the client's address
  std::string host, method, path;
};

enum class RuleResult { True, False, Error };

struct RuleOutcome {
  std::string policy_id, rule_id;
  Effect effect = Effect::Deny;
  RuleResult result = RuleResult::False;
  std::string error;      // for Error: why (a CEL error, or "yielded a string, not a bool")
};

struct Decision {
  bool allow = false;
  // The deciding rule is an `effect: approve` rule: allowed only once a person approves
  // this request (allow stays false until then; server/pdp_approval.h asks).
  bool approve = false;
  bool reveal = false;            // the deciding allow rule says reveal: true
  std::string policy_id, rule_id; // the deciding rule; both empty for the default deny
  std::string reason;             // one sentence, for errors shown to the client and logs
  std::vector<RuleOutcome> errors;   // enforced rules that failed to evaluate
  std::vector<RuleOutcome> shadow;   // every shadow rule of the selected policies
  std::vector<RuleOutcome> trace;    // with trace: every rule evaluated, in order
};

Decision decide(const Bundle& b, const nlohmann::json& identity, const SecretInput& secret,
                const RequestInput& request, bool trace = false);
// The same with the claims already converted (cel::from_json), for callers that decide
// many times for one identity.
Decision decide(const Bundle& b, const cel::Value& identity, const SecretInput& secret,
                const RequestInput& request, bool trace = false);

// {"allow":…, "policy":…, "rule":…, "reason":…, "errors":[…], "shadow":[…]}
nlohmann::json decision_json(const Decision& d);

}  // namespace kz::policy
