#include "policy/policy_engine.h"

#include <cstdint>

#include "policy/ref_glob.h"

namespace kz::policy {

namespace {

nlohmann::json request_map(const RequestInput& r) {
  nlohmann::json j = {{"time", r.time}};
  if (!r.source.empty()) j["source"] = r.source;
  if (!r.host.empty()) j["host"] = r.host;
  if (!r.method.empty()) j["method"] = r.method;
  if (!r.path.empty()) j["path"] = r.path;
  return j;
}

RuleOutcome evaluate(const Policy& p, const Rule& rule, const cel::Activation& vars) {
  RuleOutcome o;
  o.policy_id = p.id;
  o.rule_id = rule.id;
  o.effect = rule.effect;
  const cel::Value v = rule.program->evaluate(vars);
  if (v.is_error()) {
    o.result = RuleResult::Error;
    o.error = v.error_message();
  } else if (!v.is_bool()) {
    o.result = RuleResult::Error;
    o.error = "the expression did not yield a bool";
  } else {
    o.result = v.as_bool() ? RuleResult::True : RuleResult::False;
  }
  return o;
}

const char* effect_name(Effect e) {
  return e == Effect::Allow ? "allow" : e == Effect::Approve ? "approve" : "deny";
}
const char* result_name(RuleResult r) {
  switch (r) {
    case RuleResult::True: return "true";
    case RuleResult::False: return "false";
    default: return "error";
  }
}

nlohmann::json outcome_json(const RuleOutcome& o) {
  nlohmann::json j = {{"policy", o.policy_id}, {"rule", o.rule_id}, {"effect", effect_name(o.effect)},
                      {"result", result_name(o.result)}};
  if (!o.error.empty()) j["error"] = o.error;
  return j;
}

}  // namespace

Decision decide(const Bundle& b, const nlohmann::json& identity, const SecretInput& secret,
                const RequestInput& request, bool trace) {
  return decide(b, cel::from_json(identity.is_object() ? identity : nlohmann::json::object()), secret, request, trace);
}

Decision decide(const Bundle& b, const cel::Value& identity, const SecretInput& secret,
                const RequestInput& request, bool trace) {
  cel::Activation vars;
  vars.bind("identity", identity);
  vars.bind("secret", cel::from_json({{"ref", secret.ref}, {"provider", secret.provider}, {"name", secret.name}}));
  vars.bind("request", cel::from_json(request_map(request)));

  Decision d;
  const Rule* deny = nullptr;
  const Policy* deny_policy = nullptr;
  const Rule* allow = nullptr;
  const Policy* allow_policy = nullptr;
  const Rule* approve = nullptr;
  const Policy* approve_policy = nullptr;
  std::size_t deny_error = SIZE_MAX;   // index into d.errors (which grows)
  bool selected = false;
  for (const Policy& p : b.policies) {
    if (!ref_glob_matches(p.match, secret.ref)) continue;
    selected = true;
    for (const Rule& rule : p.rules) {
      RuleOutcome o = evaluate(p, rule, vars);
      if (trace) d.trace.push_back(o);
      if (rule.mode == RuleMode::Shadow) {
        d.shadow.push_back(std::move(o));
        continue;
      }
      if (o.result == RuleResult::Error) {
        d.errors.push_back(std::move(o));
        // A deny that cannot be evaluated denies (the first such one is named).
        if (rule.effect == Effect::Deny && deny_error == SIZE_MAX) deny_error = d.errors.size() - 1;
        continue;
      }
      if (o.result != RuleResult::True) continue;
      if (rule.effect == Effect::Deny && deny == nullptr) {
        deny = &rule;
        deny_policy = &p;
      }
      if (rule.effect == Effect::Allow && allow == nullptr) {
        allow = &rule;
        allow_policy = &p;
      }
      if (rule.effect == Effect::Approve && approve == nullptr) {
        approve = &rule;
        approve_policy = &p;
      }
    }
  }
  if (deny != nullptr) {
    d.policy_id = deny_policy->id;
    d.rule_id = deny->id;
    d.reason = "denied by " + deny->id + " (" + deny->cel + ")";
  } else if (deny_error != SIZE_MAX) {
    const RuleOutcome& e = d.errors[deny_error];
    d.policy_id = e.policy_id;
    d.rule_id = e.rule_id;
    d.reason = "denied: " + e.rule_id + " is a deny rule and failed to evaluate (" + e.error + "); failing closed";
  } else if (approve != nullptr) {
    // Stricter than an allow: a person must say yes to this request first.
    d.approve = true;
    d.policy_id = approve_policy->id;
    d.rule_id = approve->id;
    d.reason = "needs a person's approval: " + approve->id + " (" + approve->cel + ")";
  } else if (allow != nullptr) {
    d.allow = true;
    d.reveal = allow->reveal;
    d.policy_id = allow_policy->id;
    d.rule_id = allow->id;
    d.reason = "allowed by " + allow->id + " (" + allow->cel + ")";
  } else if (!selected) {
    d.reason = "denied: no policy matches " + secret.ref + " (default deny)";
  } else {
    d.reason = "denied: no allow rule of the matching policies is true (default deny)";
  }
  return d;
}

nlohmann::json decision_json(const Decision& d) {
  nlohmann::json j = {{"allow", d.allow}, {"reason", d.reason}};
  if (!d.policy_id.empty()) j["policy"] = d.policy_id;
  if (!d.rule_id.empty()) j["rule"] = d.rule_id;
  if (d.reveal) j["reveal"] = true;
  if (d.approve) j["approval"] = {{"status", "required"}};
  if (!d.errors.empty()) {
    j["errors"] = nlohmann::json::array();
    for (const auto& o : d.errors) j["errors"].push_back(outcome_json(o));
  }
  if (!d.shadow.empty()) {
    j["shadow"] = nlohmann::json::array();
    for (const auto& o : d.shadow) j["shadow"].push_back(outcome_json(o));
  }
  return j;
}

}  // namespace kz::policy
