// The MCP tools kz offers an agent:
//
//   resolve {name | ref}   an opaque token for a secret (its bound hosts and expiry); the
//                          value itself only when the deciding rule says reveal: true
//   fetch {url, method, headers, body, sign, timeout_ms}
//                          kz makes the HTTPS request, swapping tokens for values where
//                          their secrets are bound, and returns the response with any
//                          value replaced by its token; with sign {secret, service,
//                          region}, kz signs it (AWS SigV4) with that secret's key
//                          (sigv4_fetch.h)
//
// Every call is decided by policy (when there is a bundle) and is one audit record.
// Transport-independent: the protocol layer (mcp_protocol.h) calls it.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "audit/audit_recorder.h"
#include "config/config.h"
#include "mcp/fetch_engine.h"
#include "mcp/replicas.h"
#include "mcp/sigv4_fetch.h"
#include "kz/result.h"
#include "secrets/token_table.h"
#include "server/bearer_identity.h"
#include "server/pdp_state.h"

namespace kz::mcp {

// Who calls, over what, under which bundle.
struct CallContext {
  std::shared_ptr<const PdpState> state;       // bundle: secrets, mcp settings, policies; providers
  bool enforce_policy = true;                  // false: kz mcp --config (no bundle; the user's own secrets)
  std::shared_ptr<const VerifiedIdentity> identity;
  std::string transport;                       // "stdio" | "http"
  std::string source;                          // the client's address ("" for stdio)
  std::string session;                         // the MCP session id ("" for stdio)
};

class McpTools {
 public:
  // `audit` (thread-safe) outlives the tools. With `replicas`, tokens are sealed
  // (replica_seal.h): any replica with the same key verifies and serves them.
  McpTools(TokenTable& tokens, AuditRecorder& audit, const Replicas* replicas = nullptr);

  // tools/list's "tools": name, title, description, inputSchema, annotations.
  static const nlohmann::json& definitions();
  static bool known(std::string_view name);

  // A CallToolResult ({"content": [...], "structuredContent": {...}, "isError": bool});
  // refusals and failures are results with isError. Arguments that do not fit the
  // tool's schema are ErrorKind::Usage naming the field (the protocol layer reports
  // them as the negotiated version wants).
  Result<nlohmann::json> call(const CallContext& ctx, std::string_view name, const nlohmann::json& args);

  // What on_canary = "kill" means for an MCP server (--on-canary=kill): there is no run
  // to end, so the identity that used a canary (sent its token in a fetch, or asked to
  // sign with it) is revoked in this server: the "canary" record says decision "kill",
  // and every later call of that identity (its `sub` and issuer, whichever session or
  // transport) is refused, so every token it holds is useless from then on. Until the
  // server restarts; other replicas learn it through the deny list only (mcp.md).
  void set_revoke_on_canary(bool on) { revoke_on_canary_ = on; }

 private:
  Result<nlohmann::json> resolve(const CallContext& ctx, const nlohmann::json& args);
  Result<nlohmann::json> fetch(const CallContext& ctx, const nlohmann::json& args);
  // The key, id and session token of a sign = "sigv4" secret, for fetch's `sign`, once
  // `policy` (its refusal, or "") allows it.
  Result<SigningCredentials> signing_credentials(const CallContext& ctx, const std::string& name,
                                                 const std::function<std::string(const SigningCredentials&)>& policy);
  Result<nlohmann::json> resolve_canary(const CallContext& ctx, const SecretSpec& canary, McpCall& rec);
  // A new token for `e` (its owner, secret and expiry set): minted here, or sealed.
  Result<Minted> issue(const CallContext& ctx, TokenEntry e);
  // Replicas: every sealed token in the request verified (seal, expiry, deny list) and,
  // when another replica issued it, its secret resolved here. "" or why not.
  std::string admit_sealed(const CallContext& ctx, const FetchRequest& req, std::int64_t now);

  // Records a canary sight (its decision set here) and, with revoke_on_canary_,
  // revokes the caller's identity.
  void canary_seen(const CallContext& ctx, CanarySeen seen);
  bool revoked(const CallContext& ctx) const;

  TokenTable& tokens_;
  AuditRecorder& audit_;
  const Replicas* replicas_;
  bool revoke_on_canary_ = false;
  mutable std::mutex revoked_mu_;
  std::set<std::string> revoked_;   // identity keys
};

}  // namespace kz::mcp
