#include "mcp/mcp_protocol.h"

#include "core/log.h"

namespace kz::mcp {

namespace {

using nlohmann::json;

constexpr const char* kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};

json rpc_result(const json& id, json result) { return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}}; }

bool valid_id(const json& id) { return id.is_string() || id.is_number_integer() || id.is_number_unsigned(); }

}  // namespace

bool is_supported_version(std::string_view v) {
  for (const char* s : kVersions)
    if (v == s) return true;
  return false;
}

json rpc_error(const json& id, int code, const std::string& message, const json& data) {
  json e = {{"code", code}, {"message", message}};
  if (!data.is_null()) e["data"] = data;
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(e)}};
}

McpProtocol::McpProtocol(McpTools& tools, std::string server_version, AuditRecorder& audit)
    : tools_(tools), version_(std::move(server_version)), audit_(audit) {}

void McpProtocol::audit_refusal(const CallContext& ctx, const std::string& method, int code, const std::string& message) {
  McpRefusal rec;
  rec.transport = ctx.transport;
  rec.code = code;
  rec.reason = message;
  if (!method.empty()) rec.method = method;
  if (ctx.identity) rec.sub = ctx.identity->sub;
  if (!ctx.source.empty()) rec.source = ctx.source;
  if (!ctx.session.empty()) rec.session = ctx.session;
  audit_.record(std::move(rec));
}

bool McpProtocol::is_initialize(const json& msg) {
  return msg.is_object() && msg.contains("method") && msg["method"] == "initialize" && msg.contains("id");
}

bool McpProtocol::is_request(const json& msg) {
  return msg.is_object() && msg.contains("method") && msg.contains("id");
}

std::optional<json> McpProtocol::handle_text(std::string_view text, SessionState& s, const CallContext& ctx) {
  json msg = json::parse(text, nullptr, false);
  if (msg.is_discarded()) {
    audit_refusal(ctx, "", kParseError, "not valid JSON");
    return rpc_error(nullptr, kParseError, "Parse error: not valid JSON");
  }
  return handle(msg, s, ctx);
}

std::optional<json> McpProtocol::handle(const json& msg, SessionState& s, const CallContext& ctx) {
  bool answered = true;
  json r = dispatch(msg, s, ctx, answered);
  if (!answered) return std::nullopt;
  if (r.contains("error")) {
    const std::string method = msg.is_object() && msg.contains("method") && msg["method"].is_string() ? msg["method"].get<std::string>() : "";
    audit_refusal(ctx, method, r["error"]["code"].get<int>(), r["error"]["message"].get<std::string>());
  }
  return r;
}

json McpProtocol::dispatch(const json& msg, SessionState& s, const CallContext& ctx, bool& answered) {
  if (msg.is_array()) return rpc_error(nullptr, kInvalidRequest, "Invalid Request: batches are not supported (MCP 2025-06-18 removed them)");
  if (!msg.is_object()) return rpc_error(nullptr, kInvalidRequest, "Invalid Request: a message is a JSON object");
  const json id = msg.contains("id") ? msg["id"] : json(nullptr);
  if (!msg.contains("jsonrpc") || msg["jsonrpc"] != "2.0")
    return rpc_error(valid_id(id) ? id : json(nullptr), kInvalidRequest, "Invalid Request: jsonrpc must be \"2.0\"");
  if (!msg.contains("method")) {
    // A response from the client (kz sends no requests, so there is nothing to match).
    if (msg.contains("result") || msg.contains("error")) {
      answered = false;
      return nullptr;
    }
    return rpc_error(valid_id(id) ? id : json(nullptr), kInvalidRequest, "Invalid Request: no method");
  }
  if (!msg["method"].is_string()) return rpc_error(valid_id(id) ? id : json(nullptr), kInvalidRequest, "Invalid Request: method must be a string");
  const std::string method = msg["method"].get<std::string>();
  const json params = msg.contains("params") ? msg["params"] : json::object();

  if (!msg.contains("id")) {   // a notification: never answered
    if (method == "notifications/initialized") s.initialized = !s.protocol_version.empty();
    {
      answered = false;
      return nullptr;
    }
  }
  if (!valid_id(id)) return rpc_error(nullptr, kInvalidRequest, "Invalid Request: id must be a string or an integer");
  if (!params.is_object()) return rpc_error(id, kInvalidParams, "Invalid params: params must be an object");

  if (method == "initialize") return initialize(id, params, s);
  if (method == "ping") return rpc_result(id, json::object());
  if (s.protocol_version.empty())
    return rpc_error(id, kInvalidRequest, "Invalid Request: send initialize first");
  if (method == "tools/list") return rpc_result(id, {{"tools", McpTools::definitions()}});
  if (method == "tools/call") return call_tool(id, params, s, ctx);
  if (method == "logging/setLevel") {
    static const char* const kLevels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
    const json level = params.contains("level") ? params["level"] : json(nullptr);
    for (const char* l : kLevels)
      if (level == l) return rpc_result(id, json::object());
    return rpc_error(id, kInvalidParams, "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency");
  }
  return rpc_error(id, kMethodNotFound, "Method not found: " + method);
}

json McpProtocol::initialize(const json& id, const json& params, SessionState& s) {
  if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string())
    return rpc_error(id, kInvalidParams, "Invalid params: protocolVersion (a string) is required");
  if (!s.protocol_version.empty()) return rpc_error(id, kInvalidRequest, "Invalid Request: already initialized");
  const std::string asked = params["protocolVersion"].get<std::string>();
  // The spec's negotiation: the client's version when kz speaks it, else kz's latest (the
  // client decides whether it can use that).
  s.protocol_version = is_supported_version(asked) ? asked : kLatestVersion;
  return rpc_result(
      id, {{"protocolVersion", s.protocol_version},
           {"capabilities", {{"tools", {{"listChanged", false}}}, {"logging", json::object()}}},
           {"serverInfo", {{"name", "keyzero"}, {"title", "KeyZero credential broker"}, {"version", version_}}},
           {"instructions",
            "Use resolve to get a token (KZ_TOK_...) for a named secret, then fetch with the token where the "
            "credential goes (for example an Authorization header). kz sends the real credential only to the hosts "
            "the secret is bound to; you never see its value."}});
}

json McpProtocol::call_tool(const json& id, const json& params, const SessionState& s, const CallContext& ctx) {
  if (!params.contains("name") || !params["name"].is_string())
    return rpc_error(id, kInvalidParams, "Invalid params: name (a string) is required");
  const std::string name = params["name"].get<std::string>();
  if (!McpTools::known(name)) return rpc_error(id, kInvalidParams, "Unknown tool: " + name);
  const json args = params.contains("arguments") && !params["arguments"].is_null() ? params["arguments"] : json::object();
  const bool validation_as_result = s.protocol_version >= std::string("2025-11-25");
  if (!args.is_object()) {
    const std::string why = "Invalid arguments for " + name + ": arguments must be an object";
    if (validation_as_result) return rpc_result(id, {{"content", json::array({{{"type", "text"}, {"text", why}}})}, {"isError", true}});
    return rpc_error(id, kInvalidParams, why);
  }
  auto r = tools_.call(ctx, name, args);
  if (r) return rpc_result(id, std::move(*r));
  const std::string why = "Invalid arguments for " + name + ": " + r.error().message;
  if (r.error().kind != ErrorKind::Usage) return rpc_error(id, kInternalError, r.error().message);
  if (validation_as_result) {
    audit_refusal(ctx, "tools/call", kInvalidParams, why);
    return rpc_result(id, {{"content", json::array({{{"type", "text"}, {"text", why}}})}, {"isError", true}});
  }
  return rpc_error(id, kInvalidParams, why);
}

}  // namespace kz::mcp
