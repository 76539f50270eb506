// The PDP's HTTP API, independent of the transport (server/http_server.h):
//
//   POST /v1/decide    Authorization: Bearer <JWT>
//                      {"secrets": [{"name": "DB", "provider": "vault", "ref": "secret/data/prod/db#password"}],
//                       "request": {"host": "...", "method": "...", "path": "..."}}   (request: optional)
//     → {"decision_id": "...", "revision": "...",
//        "results": [{"name", "provider", "ref", "allow", "policy", "rule", "reason"}]}
//   POST /v1/resolve   the same; allowed secrets also carry "value" (or "error" when the
//                      provider failed)
//   GET  /healthz      {"status": "ok", "revision": "..."}
//   GET  /metrics      Prometheus text
//
// Every decision request is one "decision" audit record (no token, no value): decision
// id, bundle revision, the input (verified claims, secrets asked for, request), and the
// result per secret; a refused identity is a "pdp.auth" record. Stateless: several
// replicas with the same bundle give the same answers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "policy/cel.h"
#include "server/bearer_identity.h"
#include "audit/audit_recorder.h"
#include "server/http_server.h"
#include "server/pdp_metrics.h"
#include "server/pdp_state.h"

namespace kz {

struct PdpServiceOptions {
  AuditRecorder* log = nullptr;               // required: the decision log (a batched AuditTrail)
  PdpMetrics* metrics = nullptr;              // required
  std::size_t max_secrets = 256;              // per request
};

class PdpService {
 public:
  PdpService(PdpServiceOptions opts, std::shared_ptr<const PdpState> initial);
  void set_state(std::shared_ptr<const PdpState> s);
  std::shared_ptr<const PdpState> state() const;
  HttpReply handle(const HttpRequestView& req);

 private:
  HttpReply api(const HttpRequestView& req, bool resolve);
  PdpServiceOptions opts_;
  mutable std::mutex mu_;   // guards state_ (a shared_ptr copy per request)
  std::shared_ptr<const PdpState> state_;
  BearerIdentities identities_;
};

}  // namespace kz
