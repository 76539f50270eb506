// kz policy check | test: the PDP's bundle, offline.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "core/log.h"
#include "policy/bundle.h"
#include "policy/policy_engine.h"

namespace kz {

namespace {

const char* result_word(policy::RuleResult r) {
  switch (r) {
    case policy::RuleResult::True: return "true";
    case policy::RuleResult::False: return "false";
    default: return "ERROR";
  }
}

int check(const policy::Bundle& b) {
  std::size_t rules = 0, shadow = 0;
  for (const auto& p : b.policies)
    for (const auto& r : p.rules) {
      ++rules;
      if (r.mode == policy::RuleMode::Shadow) ++shadow;
    }
  std::printf("OK: %s\n", b.path.c_str());
  std::printf("  revision   %s\n", b.revision.c_str());
  std::printf("  issuers    %zu\n", b.issuers.size());
  for (const auto& i : b.issuers) std::printf("             %s (audience %s)\n", i.issuer.c_str(), i.audience.c_str());
  std::printf("  providers  %zu\n", b.providers.size());
  std::printf("  policies   %zu, rules %zu (%zu shadow)\n", b.policies.size(), rules, shadow);
  return kExitOk;
}

int test(const policy::Bundle& b, const PolicyOptions& o) {
  if (o.ref.empty()) {
    spdlog::error("kz policy test needs --ref REF (the secret's reference)");
    return kExitConfig;
  }
  nlohmann::json claims = nlohmann::json::object();
  if (!o.claims_file.empty()) {
    std::ifstream f(o.claims_file);
    if (!f) {
      spdlog::error("cannot read the claims file {}", o.claims_file);
      return kExitConfig;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    claims = nlohmann::json::parse(ss.str(), nullptr, false);
    if (claims.is_discarded() || !claims.is_object()) {
      spdlog::error("{}: the claims must be one JSON object (a JWT's payload)", o.claims_file);
      return kExitConfig;
    }
  }
  policy::RequestInput req;
  req.time = static_cast<std::int64_t>(std::time(nullptr));
  req.source = o.source;
  req.host = o.host;
  req.method = o.method;
  req.path = o.path;
  const auto d = policy::decide(b, claims, {o.name, o.provider, o.ref}, req, true);
  if (o.json) {
    nlohmann::json j = policy::decision_json(d);
    j["revision"] = b.revision;
    j["trace"] = nlohmann::json::array();
    for (const auto& t : d.trace) {
      nlohmann::json e = {{"policy", t.policy_id}, {"rule", t.rule_id},
                          {"result", t.result == policy::RuleResult::Error ? "error" : result_word(t.result)}};
      if (!t.error.empty()) e["error"] = t.error;
      j["trace"].push_back(std::move(e));
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const auto& t : d.trace) {
      const policy::Rule* rule = nullptr;
      for (const auto& p : b.policies)
        for (const auto& r : p.rules)
          if (r.id == t.rule_id) rule = &r;
      std::printf("%-24s %-5s %-8s %s%s%s\n", t.rule_id.c_str(), t.effect == policy::Effect::Allow     ? "allow"
                                                             : t.effect == policy::Effect::Approve ? "approve"
                                                                                                   : "deny",
                  result_word(t.result), rule != nullptr ? rule->cel.c_str() : "",
                  rule != nullptr && rule->mode == policy::RuleMode::Shadow ? "  [shadow]" : "",
                  t.error.empty() ? "" : ("  -- " + t.error).c_str());
    }
    std::printf("%s: %s\n", d.allow ? "ALLOW" : d.approve ? "APPROVE" : "DENY", d.reason.c_str());
  }
  return d.allow ? kExitOk : kExitInternal;
}

}  // namespace

int cmd_policy(const GlobalOptions&, const PolicyOptions& o) {
  auto b = policy::load_bundle(o.bundle);
  if (!b) {
    spdlog::error("{}", b.error().message);
    return kExitConfig;
  }
  if (o.action == "check") return check(*b);
  return test(*b, o);
}

}  // namespace kz
