// A decision that an `effect: approve` rule made (policy_engine.h) waits for a person:
// the PDP POSTs the request's facts to the bundle's approvals.webhook and takes the
// answer from the response, {"decision": "approve"|"deny", "request_hash": "<the same>",
// "by": "..."}, within approvals.timeout. Anything else denies: no webhook configured,
// an error status, an answer naming another request, no answer in time (fail closed).
// Each ask is two "approve" records (asked, then approved/denied/timeout). Used by the
// decision API (/v1/decide, /v1/resolve) and the MCP tools (resolve, fetch), which wait.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "audit/audit_recorder.h"
#include "policy/bundle.h"
#include "secrets/approval.h"

namespace kz {

struct PdpApprovalFacts {
  std::string sub, name, provider, ref;   // who asks, for which secret
  std::string host, method, path;         // the use ("" for a resolution)
  std::string source, decision_id;
  std::string iss;                        // the identity's issuer (with sub: whose request)
  // What the approval covers besides the path (MCP fetch has the whole request): the
  // target as sent, with its query ("": the path), and the body's SHA-256 (hex; "": none
  // known). Both go into the request hash and the webhook's facts.
  std::string target, body_sha256;
};

struct PdpApprovalResult {
  ApprovalVerdict verdict = ApprovalVerdict::Timeout;
  std::string by;             // the approver's "by", or why it was denied
  std::string request_hash;   // approval_request_hash of the facts: the secret field is
                              // ref, iss, sub and the decision id (length-prefixed), so an
                              // answer for one identity's (or one decision's) ask serves no other;
                              // without a decision id (the MCP tools) each ask gets a fresh one

  bool approved() const { return verdict == ApprovalVerdict::Approved; }
};

// Asks and waits (the calling thread blocks up to approvals.timeout).
// The identity's issuer from its claims ("" when it has no string `iss`): with sub, whose
// request an approval answers.
std::string issuer_of(const nlohmann::json& claims);

PdpApprovalResult ask_pdp_approval(const policy::ApprovalsSpec& spec, const PdpApprovalFacts& facts,
                                   AuditRecorder& log);

}  // namespace kz
