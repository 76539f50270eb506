#include "mcp/mcp_http.h"

#include <openssl/rand.h>

#include "secrets/binding.h"
#include "kz/digest.h"

namespace kz::mcp {

namespace {

using nlohmann::json;

HttpReply json_reply(int status, const json& j, std::vector<std::pair<std::string, std::string>> headers = {}) {
  return {status, "application/json", j.dump(-1, ' ', false, json::error_handler_t::replace), std::move(headers)};
}

HttpReply http_error(int status, int code, const std::string& message,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
  return json_reply(status, rpc_error(nullptr, code, message), std::move(headers));
}

std::string random_hex(std::size_t bytes) {
  unsigned char b[24];
  RAND_bytes(b, static_cast<int>(bytes));
  return hex_lower(std::string_view(reinterpret_cast<const char*>(b), bytes));
}
std::string new_session_id() { return random_hex(24); }

// "example.com:8080" → "example.com"; "[::1]:80" → "::1"; "http://x:1/path" → "x".
std::string host_of(std::string_view v) {
  if (const auto scheme = v.find("://"); scheme != std::string_view::npos) {
    v.remove_prefix(scheme + 3);
    v = v.substr(0, v.find('/'));
  }
  if (!v.empty() && v[0] == '[') {
    const auto close = v.find(']');
    return close == std::string_view::npos ? std::string() : std::string(v.substr(1, close - 1));
  }
  return std::string(v.substr(0, v.find(':')));
}

bool accepts_json(std::string_view accept) {
  return accept.empty() || accept.find("application/json") != std::string_view::npos ||
         accept.find("*/*") != std::string_view::npos;
}

}  // namespace

McpHttpEndpoint::McpHttpEndpoint(McpProtocol& protocol, McpHttpOptions opts) : protocol_(protocol), opts_(std::move(opts)) {}

bool McpHttpEndpoint::serves(const HttpRequestView& req) {
  return req.target == "/mcp" || req.target.rfind("/mcp?", 0) == 0;
}

HttpReply McpHttpEndpoint::too_large() {
  return http_error(413, kInvalidRequest, "Invalid Request: message too large");
}

bool McpHttpEndpoint::host_allowed(std::string_view header, const PdpState& st) const {
  const std::string h = host_of(header);
  if (h == "localhost" || h == "127.0.0.1" || h == "::1") return true;
  if (!opts_.listen_host.empty() && h == opts_.listen_host && opts_.listen_host != "0.0.0.0" && opts_.listen_host != "::")
    return true;
  for (const auto& pattern : st.bundle.mcp.allowed_hosts)
    if (host_pattern_matches(pattern, h)) return true;
  return false;
}

std::shared_ptr<McpHttpEndpoint::Session> McpHttpEndpoint::find_session(const std::string& id, const std::string& owner) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  // Another identity's session is "not found": its existence is not confirmed.
  if (it == sessions_.end() || it->second->owner != owner) return nullptr;
  it->second->used = std::chrono::steady_clock::now();
  return it->second;
}

Result<SessionClaims> McpHttpEndpoint::open_sealed(const std::string& id, const std::string& owner) {
  auto c = opts_.replicas->seal->open_session(id, unix_now());
  if (!c) return c.take_error();
  // Another identity's session is "not found", as in memory.
  if (c->owner != owner) return make_error(ErrorKind::Denied, "belongs to another identity");
  if (opts_.replicas->revoked(c->id)) return make_error(ErrorKind::Denied, "was revoked (deny list)");
  std::lock_guard lock(mu_);
  if (ended_.count(c->id) != 0) return make_error(ErrorKind::Denied, "was ended (DELETE)");
  return c;
}

HttpReply McpHttpEndpoint::initialize_sealed(const nlohmann::json& msg, CallContext& ctx) {
  SessionClaims c;
  c.owner = ctx.identity->key;
  c.id = random_hex(8);
  ctx.session = c.id;
  SessionState state;
  auto r = protocol_.handle(msg, state, ctx);
  if (!r || r->contains("error")) return json_reply(r && r->contains("error") ? 400 : 202, r ? *r : json());
  c.protocol_version = state.protocol_version;
  c.expires_at = unix_now() + ctx.state->bundle.mcp.replicas.session_ttl.count();
  auto sealed = opts_.replicas->seal->seal_session(c);
  if (!sealed) return http_error(500, kInternalError, "Internal error: " + sealed.error().message);
  return json_reply(200, *r, {{"Mcp-Session-Id", *sealed}});
}

HttpReply McpHttpEndpoint::handle(const HttpRequestView& req) {
  const auto st = opts_.state();
  CallContext ctx;
  ctx.state = st;
  ctx.transport = "http";
  ctx.source = req.source;
  auto audit = [&](McpRefusalKind kind, const std::string& reason) {
    McpRefusal rec;
    rec.kind = kind;
    rec.transport = "http";
    rec.source = req.source;
    rec.reason = reason;
    opts_.audit->record(std::move(rec));
  };

  // DNS rebinding: a browser tricked into posting here carries a foreign Host or Origin.
  const std::string_view origin = req.header("origin");
  if (!host_allowed(req.header("host"), *st) || (!origin.empty() && !host_allowed(origin, *st))) {
    audit(McpRefusalKind::Refused, "Host or Origin not allowed: " + std::string(req.header("host")));
    return http_error(403, -32000, "Forbidden: the Host or Origin header names a host this server does not serve");
  }
  if (req.method != "POST" && req.method != "DELETE") {
    return {405, "application/json", rpc_error(nullptr, -32000, "Method not allowed: POST messages to /mcp (kz offers no SSE stream)").dump(),
            {{"Allow", "POST, DELETE"}}};
  }
  auto who = opts_.identities->verify(st, req.authorization, unix_now());
  if (!who) {
    audit(McpRefusalKind::Auth, who.error().message);
    return http_error(401, -32001, "Unauthorized: " + who.error().message,
                      {{"WWW-Authenticate", "Bearer realm=\"kz\", error=\"invalid_token\""}});
  }
  ctx.identity = *who;

  const std::string session_id(req.header("mcp-session-id"));
  if (opts_.replicas != nullptr && req.method == "DELETE") {
    if (session_id.empty()) return http_error(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    auto c = open_sealed(session_id, ctx.identity->key);
    if (!c) return http_error(404, -32001, "Session not found");
    std::lock_guard lock(mu_);
    ended_.insert(c->id);
    return {200, "application/json", "", {}};
  }
  if (req.method == "DELETE") {
    if (session_id.empty()) return http_error(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    if (!find_session(session_id, ctx.identity->key)) return http_error(404, -32001, "Session not found");
    std::lock_guard lock(mu_);
    sessions_.erase(session_id);
    return {200, "application/json", "", {}};
  }
  if (!accepts_json(req.header("accept")))
    return http_error(406, -32000, "Not Acceptable: the client must accept application/json");
  if (req.content_type.find("application/json") == std::string::npos)
    return http_error(415, -32000, "Unsupported Media Type: the body must be application/json");
  const std::string_view version = req.header("mcp-protocol-version");
  if (!version.empty() && !is_supported_version(version))
    return http_error(400, -32000, "Bad Request: unsupported MCP-Protocol-Version " + std::string(version));

  json msg = json::parse(req.body, nullptr, false);
  if (msg.is_discarded()) {
    SessionState none;
    auto r = protocol_.handle_text(req.body, none, ctx);
    return json_reply(400, *r);
  }

  if (McpProtocol::is_initialize(msg) && opts_.replicas != nullptr) return initialize_sealed(msg, ctx);
  if (McpProtocol::is_initialize(msg)) {
    auto session = std::make_shared<Session>();
    session->owner = ctx.identity->key;
    session->used = std::chrono::steady_clock::now();
    const std::string id = new_session_id();
    ctx.session = id;
    auto r = protocol_.handle(msg, session->state, ctx);
    if (!r || r->contains("error")) return json_reply(r && r->contains("error") ? 400 : 202, r ? *r : json());
    {
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        if (now - it->second->used > opts_.session_idle) it = sessions_.erase(it);
        else ++it;
      }
      if (sessions_.size() >= opts_.max_sessions)
        return http_error(503, -32000, "Service Unavailable: too many MCP sessions");
      sessions_[id] = session;
    }
    return json_reply(200, *r, {{"Mcp-Session-Id", id}});
  }

  if (session_id.empty()) {
    audit(McpRefusalKind::Refused, "no Mcp-Session-Id");
    return http_error(400, -32000, "Bad Request: Mcp-Session-Id header is required (send initialize first)");
  }
  if (opts_.replicas != nullptr) {
    auto c = open_sealed(session_id, ctx.identity->key);
    if (!c) {
      audit(McpRefusalKind::Refused, "session " + c.error().message);
      return http_error(404, -32001, "Session not found: initialize again");
    }
    // The handshake is over once initialize answered: a sealed session cannot record the
    // initialized notification, which may reach another replica.
    SessionState state;
    state.protocol_version = c->protocol_version;
    state.initialized = true;
    ctx.session = c->id;
    auto r = protocol_.handle(msg, state, ctx);
    if (!r) return {202, "application/json", "", {}};
    return json_reply(200, *r);
  }
  auto session = find_session(session_id, ctx.identity->key);
  if (!session) return http_error(404, -32001, "Session not found: initialize again");
  ctx.session = session_id;
  // Messages of one session may run concurrently (a ping while a fetch waits): each works
  // on a copy of the session's state, and only the handshake's flag is merged back.
  SessionState state;
  {
    std::lock_guard lock(session->mu);
    state = session->state;
  }
  auto r = protocol_.handle(msg, state, ctx);
  {
    std::lock_guard lock(session->mu);
    session->state.initialized = session->state.initialized || state.initialized;
  }
  if (!r) return {202, "application/json", "", {}};
  return json_reply(200, *r);
}

}  // namespace kz::mcp
