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
#include "server/decision_log.h"
#include "server/http_server.h"
#include "server/pdp_metrics.h"
#include "server/pdp_state.h"

namespace kz {

struct PdpServiceOptions {
  DecisionLog* log = nullptr;                 // required
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
  // Verified claims of tokens seen recently: an agent shows the same token on every
  // request, and an RS256 verification costs more than the rest of a decision. An entry
  // lives until the token's exp or a minute, whichever is first, and the cache empties
  // when the bundle (its issuers and keys) is replaced.
  struct Identity {
    nlohmann::json claims;
    cel::Value value;   // the claims as CEL's `identity`, converted once
  };
  std::shared_ptr<const Identity> cached_claims(const std::string& token, std::int64_t now);
  void cache_claims(const std::string& token, std::shared_ptr<const Identity> id, std::int64_t until);

  PdpServiceOptions opts_;
  mutable std::mutex mu_;   // guards state_ (a shared_ptr copy per request) and the cache
  std::shared_ptr<const PdpState> state_;
  struct Cached {
    std::shared_ptr<const Identity> claims;
    std::int64_t until = 0;
  };
  std::unordered_map<std::string, Cached> verified_;
};

}  // namespace kz
