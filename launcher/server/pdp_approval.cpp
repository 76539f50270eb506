#include "server/pdp_approval.h"

#include <nlohmann/json.hpp>

#include "kz/providers/http_client.h"

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

PdpApprovalResult ask_pdp_approval(const policy::ApprovalsSpec& spec, const PdpApprovalFacts& f, AuditRecorder& log) {
  PdpApprovalResult out;
  // The secret is named by its ref (what the policy decides on), so the hash says which
  // secret, for whom it does not (the approver gets sub in the facts).
  out.request_hash = approval_request_hash(f.ref, f.method, f.host, f.path);
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
                         {"decision_id", f.decision_id},         {"request_hash", out.request_hash},
                         {"expires_in_ms", spec.timeout.count()}};
  HttpRequest req;
  req.method = "POST";
  req.url = spec.webhook;
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = body.dump();
  req.ca_file = spec.ca_file;
  req.deadline = Clock::now() + spec.timeout;
  auto resp = http_send(std::move(req), "approval webhook");
  if (!resp) {
    if (resp.error().kind == ErrorKind::Timeout) return finish(ApprovalVerdict::Timeout, "no answer in time");
    return finish(ApprovalVerdict::Denied, "webhook error: " + resp.error().message.substr(0, 160));
  }
  const auto j = nlohmann::json::parse(resp->body.str(), nullptr, false);
  std::string decision, hash, by = "webhook";
  if (resp->status == 200 && j.is_object()) {
    if (j.contains("decision") && j["decision"].is_string()) decision = j["decision"].get<std::string>();
    if (j.contains("request_hash") && j["request_hash"].is_string()) hash = j["request_hash"].get<std::string>();
    if (j.contains("by") && j["by"].is_string()) by = "webhook: " + j["by"].get<std::string>().substr(0, 120);
  }
  if (decision == "approve" && hash == out.request_hash) return finish(ApprovalVerdict::Approved, by);
  if (decision == "approve") by += " (the answer named another request)";
  else if (resp->status != 200) by += " (HTTP " + std::to_string(resp->status) + ")";
  return finish(ApprovalVerdict::Denied, by);
}

}  // namespace kz
