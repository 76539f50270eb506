// MCP's Streamable HTTP transport at /mcp on the server's listener (kz server start
// --mcp). Each POST carries one JSON-RPC message and gets one JSON reply (no SSE: kz
// sends no server-initiated messages, so GET answers 405). In order:
//
//   Host / Origin   must name localhost, 127.0.0.1, [::1], the listen address or a host
//                   in mcp.allowed_hosts, else 403 (DNS rebinding)
//   Authorization   Bearer JWT verified against the bundle's issuers, else 401
//   session         initialize creates one (Mcp-Session-Id in the reply); later
//                   messages must carry it: missing 400, unknown or another identity's 404;
//                   DELETE ends it
//   MCP-Protocol-Version  when present, a version kz speaks, else 400
//
// Sessions live in memory: a restarted server forgets them and clients re-initialize.
// With mcp.replicas (replicas.h) a session id is sealed instead: any replica with the
// same key accepts it until it expires or its id is on the deny list; DELETE ends it on
// the replica that receives it (the deny list ends it everywhere).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <set>

#include "mcp/mcp_protocol.h"
#include "mcp/replicas.h"
#include "server/bearer_identity.h"
#include "server/http_server.h"

namespace kz::mcp {

struct McpHttpOptions {
  std::function<std::shared_ptr<const PdpState>()> state;   // the bundle served now
  BearerIdentities* identities = nullptr;
  AuditRecorder* audit = nullptr;                            // required, thread-safe
  std::string listen_host;                                   // also accepted in Host
  std::size_t max_sessions = 10000;
  std::chrono::seconds session_idle{3600};
  const Replicas* replicas = nullptr;                        // sealed sessions (null: in memory)
};

class McpHttpEndpoint {
 public:
  McpHttpEndpoint(McpProtocol& protocol, McpHttpOptions opts);
  static bool serves(const HttpRequestView& req);     // the request is for /mcp
  HttpReply handle(const HttpRequestView& req);
  // The reply to a message over the size limit.
  static HttpReply too_large();

 private:
  struct Session {
    SessionState state;
    std::string owner;                                // the identity's key
    std::chrono::steady_clock::time_point used;
    std::mutex mu;                                    // guards state
  };
  bool host_allowed(std::string_view host_header, const PdpState& st) const;
  std::shared_ptr<Session> find_session(const std::string& id, const std::string& owner);
  // Replicas: the sealed session's claims, or why it is refused.
  Result<SessionClaims> open_sealed(const std::string& id, const std::string& owner);
  HttpReply initialize_sealed(const nlohmann::json& msg, CallContext& ctx);

  McpProtocol& protocol_;
  McpHttpOptions opts_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  std::set<std::string, std::less<>> ended_;   // replicas: sealed sessions DELETEd here
};

}  // namespace kz::mcp
