// MCP over JSON-RPC 2.0, independent of the transport: one message in, at most one
// message out. Versions 2025-11-25, 2025-06-18 and 2025-03-26 (the initialize
// handshake); batches (removed in 2025-06-18) are refused.
//
//   initialize                 version negotiation, capabilities {tools, logging}, serverInfo
//   notifications/initialized  (and any other notification: no reply)
//   ping                       {}
//   tools/list                 the tools of mcp_tools.h with their input schemas
//   tools/call                 resolve, fetch
//   logging/setLevel           {} (kz sends no log notifications; accepted for clients that ask)
//
// Errors: -32700 parse error, -32600 invalid request (also: not initialized, too large),
// -32601 unknown method, -32602 invalid params (unknown tool; arguments that do not
// fit the schema, except from 2025-11-25 on, where those are tool results with isError
// so that the model can correct itself).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "mcp/mcp_tools.h"

namespace kz::mcp {

inline constexpr const char* kLatestVersion = "2025-11-25";
bool is_supported_version(std::string_view v);

// What the protocol remembers about one client connection (stdio) or MCP session (HTTP).
struct SessionState {
  std::string protocol_version;   // "" until initialize
  bool initialized = false;       // notifications/initialized received
};

// JSON-RPC error codes.
inline constexpr int kParseError = -32700, kInvalidRequest = -32600, kMethodNotFound = -32601,
                     kInvalidParams = -32602, kInternalError = -32603;

nlohmann::json rpc_error(const nlohmann::json& id, int code, const std::string& message,
                         const nlohmann::json& data = nullptr);

class McpProtocol {
 public:
  // `audit` gets one record for each message refused with a JSON-RPC error and each
  // tool call refused for its arguments (the tools audit their own calls).
  McpProtocol(McpTools& tools, std::string server_version, AuditRecorder& audit);

  // A message as text: parsed here so that a parse error gets its JSON-RPC answer.
  std::optional<nlohmann::json> handle_text(std::string_view text, SessionState& s, const CallContext& ctx);
  // A parsed message. Returns the response for a request; nothing for a notification or
  // a response.
  std::optional<nlohmann::json> handle(const nlohmann::json& msg, SessionState& s, const CallContext& ctx);

  // One "mcp.refused" audit record, for refusals a transport makes itself (too large,
  // no session, ...).
  void audit_refusal(const CallContext& ctx, const std::string& method, int code, const std::string& message);

  // Is this parsed message an initialize request (the HTTP transport starts a session)?
  static bool is_initialize(const nlohmann::json& msg);
  // Is it a request (has an id and a method), as opposed to a notification or response?
  static bool is_request(const nlohmann::json& msg);

 private:
  nlohmann::json dispatch(const nlohmann::json& msg, SessionState& s, const CallContext& ctx, bool& answered);
  nlohmann::json initialize(const nlohmann::json& id, const nlohmann::json& params, SessionState& s);
  nlohmann::json call_tool(const nlohmann::json& id, const nlohmann::json& params, const SessionState& s,
                           const CallContext& ctx);

  McpTools& tools_;
  std::string version_;
  AuditRecorder& audit_;
};

}  // namespace kz::mcp
