#include "server/pdp_approval.h"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

namespace kz {

namespace {

ApprovalEvent event_of(const PdpApprovalFacts& f, const std::string& hash, std::string decision) {
  ApprovalEvent e;
  e.secret = f.name.empty() ? f.ref : f.name;
  e.decision = std::move(decision);
  e.channel = "pdp";
  e.request_hash = hash;
  if (!f.host.empty()) e.host = f.host;
  if (!f.method.empty()) e.method = f.method;
  if (!f.path.empty()) e.path = f.path;
  e.sub = f.sub;
  e.ref = f.ref;
  if (!f.decision_id.empty()) e.decision_id = f.decision_id;
  return e;
}

}  // namespace

std::string issuer_of(const nlohmann::json& claims) {
  const auto it = claims.find("iss");
  return it != claims.end() && it->is_string() ? it->get<std::string>() : std::string();
}

PdpApprovalResult ask_pdp_approval(const policy::ApprovalsSpec& spec, const PdpApprovalFacts& facts,
                                   AuditRecorder& log) {
  PdpApprovalResult out;
  PdpApprovalFacts f = facts;
  // No decision id (the MCP tools): a fresh one per ask, so an approver that remembers
  // answers by request_hash never answers a later request with the same facts.
  if (f.decision_id.empty()) {
    unsigned char id[16];
    if (RAND_bytes(id, sizeof id) != 1) {
      out.verdict = ApprovalVerdict::Denied;
      out.by = "no random bytes for the ask's id";
      return out;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    f.decision_id = "ask-";
    for (unsigned char c : id) {
      f.decision_id.push_back(kHex[c >> 4]);
      f.decision_id.push_back(kHex[c & 15]);
    }
  }
  const std::string& target = f.target.empty() ? f.path : f.target;
  // The hash names the secret by its ref (what the policy decides on), whose request it
  // is (iss, sub) and which decision: an approval (a webhook's stored answer, say) for one
  // identity or one decision never answers another.
  std::string scope;
  for (const std::string* part : {&f.ref, &f.iss, &f.sub, &f.decision_id})
    scope += std::to_string(part->size()) + ":" + *part + ";";
  out.request_hash = approval_request_hash(scope, f.method, f.host, target, f.body_sha256);
  log.record(event_of(f, out.request_hash, "asked"));
  auto finish = [&](ApprovalVerdict v, std::string by) {
    out.verdict = v;
    out.by = std::move(by);
    ApprovalEvent e = event_of(f, out.request_hash, verdict_name(v));
    e.by = out.by;
    log.record(std::move(e));
    return out;
  };
  if (spec.webhook.empty())
    return finish(ApprovalVerdict::Denied, "the bundle has no approvals: webhook to ask");
  nlohmann::json body = {{"sub", f.sub},   {"name", f.name},     {"provider", f.provider}, {"ref", f.ref},
                         {"host", f.host}, {"method", f.method}, {"path", f.path},         {"source", f.source},
                         {"target", target},                     {"body_sha256", f.body_sha256},
                         {"decision_id", f.decision_id},         {"request_hash", out.request_hash},
                         {"expires_in_ms", spec.timeout.count()}};
  const WebhookAnswer w = ask_approval_webhook(spec.webhook, spec.ca_file, body.dump(), out.request_hash,
                                               std::chrono::steady_clock::now() + spec.timeout);
  return finish(w.verdict, w.by);
}

}  // namespace kz
