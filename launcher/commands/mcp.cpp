// kz mcp: the MCP server over stdio, for clients that spawn their servers (Claude
// Desktop, IDE agents, the SDKs' stdio transports). With --bundle, the identity token
// given at start (KZ_IDENTITY_TOKEN or --identity-token-file) is checked against the
// bundle's issuers and policy decides every call; with a .keyzero.toml instead, the
// config's [secrets] are the user's own and there is no policy beyond their hosts.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "audit/audit_trail.h"
#include "commands/commands.h"
#include "commands/load.h"
#include "core/log.h"
#include "mcp/mcp_protocol.h"
#include "mcp/mcp_stdio.h"
#include "resolve/pdp_client.h"
#include "server/bearer_identity.h"
#include "server/pdp_state.h"

namespace kz {

namespace {

std::string user_name() {
  if (const passwd* pw = getpwuid(getuid()); pw != nullptr) return pw->pw_name;
  return std::to_string(getuid());
}

}  // namespace

int cmd_mcp(const GlobalOptions& g, const McpOptions& o) {
  // A client that goes away closes the pipe: writes then fail instead of killing kz
  // before the audit log is flushed.
  signal(SIGPIPE, SIG_IGN);
  std::shared_ptr<const PdpState> state;
  std::shared_ptr<const VerifiedIdentity> identity;
  std::optional<std::int64_t> identity_exp;
  bool enforce = true;
  bool canary_kills = o.on_canary == "kill";
  std::string audit_path = o.audit_log;
  if (!o.bundle.empty()) {
    auto st = load_pdp_state(o.bundle);
    if (!st) {
      spdlog::error("{}", st.error().message);
      return kExitConfig;
    }
    state = *st;
    auto token = identity_token(Config{}, o.identity_token_file);
    if (!token) {
      spdlog::error("kz mcp --bundle needs the agent's identity token: set {} or pass --identity-token-file FILE",
                    kEnvIdentityToken);
      return kExitConfig;
    }
    if (!state->verifier) {
      spdlog::error("{}: identity: the bundle configures no issuers, so no identity can be verified", state->bundle.path);
      return kExitConfig;
    }
    auto jwt = state->verifier->verify(*token);
    wipe(*token);
    if (!jwt) {
      spdlog::error("identity token refused: {}: {}", jwt::to_string(jwt.error().reason), jwt.error().message);
      return kExitConfig;
    }
    if (jwt->claims.contains("exp") && jwt->claims["exp"].is_number_integer()) identity_exp = jwt->claims["exp"].get<std::int64_t>();
    identity = make_identity(std::move(jwt->claims));
  } else {
    auto cfg = load_config_for(g);
    if (!cfg) return kExitConfig;
    auto st = std::make_shared<PdpState>();
    st->bundle.path = cfg->path;
    st->bundle.dir = cfg->dir;
    st->bundle.secrets = cfg->secrets;
    st->bundle.canaries = cfg->canaries;
    if (o.on_canary.empty()) canary_kills = cfg->canary.kill;
    st->bundle.mcp = cfg->mcp;
    st->providers = *cfg;
    st->providers.secrets.clear();
    if (audit_path.empty()) audit_path = cfg->audit.path;
    state = std::move(st);
    identity = make_identity({{"iss", "local"}, {"sub", user_name()}});
    enforce = false;
  }
  AuditTrailOptions to;
  to.path = audit_path;
  to.open_hint = " (use --audit-log FILE)";
  to.batched = true;
  auto trail = AuditTrail::open(std::move(to));
  if (!trail) {
    spdlog::error("{}", trail.error().message);
    return kExitConfig;
  }
  AuditTrail& log = **trail;
  TokenTable store;
  mcp::McpTools tools(store, log);
  tools.set_revoke_on_canary(canary_kills);
  mcp::McpProtocol protocol(tools, kKzVersion, log);
  mcp::CallContext ctx;
  ctx.state = state;
  ctx.enforce_policy = enforce;
  ctx.identity = identity;
  ctx.transport = "stdio";
  mcp::StdioOptions so;
  if (identity_exp) {
    so.identity_still_valid = [exp = *identity_exp]() -> Status {
      if (unix_now() < exp) return ok_status();
      return make_error(ErrorKind::Denied, "the identity token has expired: restart kz mcp with a fresh one");
    };
  }
  log.begin(McpStart{"stdio", identity->sub, state->bundle.path, enforce});
  spdlog::info("kz mcp: serving MCP on stdin/stdout ({} secrets from {})", state->bundle.secrets.size(), state->bundle.path);
  if (isatty(STDIN_FILENO))
    std::fprintf(stderr, "kz mcp: waiting for an MCP client's JSON-RPC on stdin (an MCP client starts kz mcp "
                         "itself: see kz mcp --help); Ctrl-D ends\n");
  auto st = mcp::serve_stdio(protocol, ctx, STDIN_FILENO, STDOUT_FILENO, so);
  log.end(McpStop{"stdio"});
  log.close();
  if (!st) {
    spdlog::error("{}", st.error().message);
    return kExitInternal;
  }
  return kExitOk;
}

}  // namespace kz
