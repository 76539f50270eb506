// kz server start: the policy decision point (server/pdp_service.h) on HTTP(S).
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "audit/audit_trail.h"
#include "commands/commands.h"
#include "core/log.h"
#include "mcp/mcp_http.h"
#include "mcp/replicas.h"
#include "server/http_server.h"
#include "server/pdp_service.h"
#include "server/pdp_state.h"

namespace kz {

namespace {

// "127.0.0.1:8787", "[::1]:8787", ":8787" (loopback), "8787".
bool parse_listen(const std::string& s, std::string& host, std::uint16_t& port) {
  std::string h = "127.0.0.1", p = s;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else if (const auto colon = s.rfind(':'); colon != std::string::npos) {
    if (colon > 0) h = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  const unsigned long n = std::stoul(p);
  if (n > 65535) return false;
  host = h;
  port = static_cast<std::uint16_t>(n);
  return true;
}

// Identity of the bundle file for change detection (editors often replace the file).
struct FileStamp {
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator!=(const FileStamp& o) const {
    return ino != o.ino || size != o.size || mtime.tv_sec != o.mtime.tv_sec || mtime.tv_nsec != o.mtime.tv_nsec;
  }
};
FileStamp stamp(const std::string& path) {
  struct stat st{};
  FileStamp f;
  if (::stat(path.c_str(), &st) == 0) {
    f.ino = st.st_ino;
    f.size = st.st_size;
    f.mtime = st.st_mtim;
  }
  return f;
}

// A replica's default name: this host and process.
std::string replica_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace

int cmd_server(const GlobalOptions&, const ServerOptions& o) {
  std::string host;
  std::uint16_t port = 0;
  if (!parse_listen(o.listen, host, port)) {
    spdlog::error("--listen {}: expected HOST:PORT, e.g. 127.0.0.1:8787 or [::1]:8787", o.listen);
    return kExitConfig;
  }
  // The signals this process answers are blocked before any thread starts, so that
  // only the loop below receives them (sigtimedwait).
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto state = load_pdp_state(o.bundle);
  if (!state) {
    spdlog::error("{}", state.error().message);
    return kExitConfig;
  }
  // The decision log: batched (thousands of decisions a second), the same chain as kz run's.
  AuditTrailOptions to;
  to.path = o.audit_log;
  to.open_hint = " (use --audit-log FILE)";
  to.batched = true;
  to.replica = o.replica_id;
  // Replicas share nothing but the bundle and the key: each writes its own chain, and
  // names itself in every record so that the logs can be merged.
  auto replicas = o.mcp ? mcp::open_replicas(**state) : Result<std::unique_ptr<mcp::Replicas>>(std::unique_ptr<mcp::Replicas>());
  if (!replicas) {
    spdlog::error("{}", replicas.error().message);
    return kExitConfig;
  }
  if (*replicas && to.replica.empty()) to.replica = replica_name();
  const std::string replica_label = to.replica;
  auto trail = AuditTrail::open(std::move(to));
  if (!trail) {
    spdlog::error("{}", trail.error().message);
    return kExitConfig;
  }
  AuditTrail& log = **trail;
  PdpMetrics metrics;
  PdpServiceOptions so;
  so.log = &log;
  so.metrics = &metrics;
  PdpService service(so, *state);

  // MCP at /mcp (--mcp): the same bundle (reloaded with the PDP's), its own sessions.
  TokenTable tokens;
  mcp::McpTools tools(tokens, log, replicas->get());
  tools.set_revoke_on_canary(o.on_canary == "kill");
  mcp::McpProtocol protocol(tools, kKzVersion, log);
  BearerIdentities mcp_identities;
  mcp::McpHttpOptions mo;
  mo.state = [&service] { return service.state(); };
  mo.identities = &mcp_identities;
  mo.audit = &log;
  mo.listen_host = host;
  mo.replicas = replicas->get();
  mcp::McpHttpEndpoint mcp_endpoint(protocol, mo);

  HttpServerOptions ho;
  ho.host = host;
  ho.port = port;
  ho.tls_cert = o.tls_cert;
  ho.tls_key = o.tls_key;
  ho.threads = o.threads;
  const bool with_mcp = o.mcp;
  ho.handler = [&service, &mcp_endpoint, with_mcp](const HttpRequestView& r) {
    if (with_mcp && mcp::McpHttpEndpoint::serves(r)) return mcp_endpoint.handle(r);
    return service.handle(r);
  };
  if (with_mcp) {
    ho.all_headers = true;
    // A tool call may wait on a remote server for its whole timeout: not on an I/O thread.
    ho.blocking = [](const HttpRequestView& r) { return r.method == "POST" && mcp::McpHttpEndpoint::serves(r); };
    ho.too_large = [](const std::string& target) -> std::optional<HttpReply> {
      if (target == "/mcp" || target.rfind("/mcp?", 0) == 0) return mcp::McpHttpEndpoint::too_large();
      return std::nullopt;
    };
  }
  auto server = HttpServer::start(std::move(ho));
  if (!server) {
    spdlog::error("{}", server.error().message);
    return kExitConfig;
  }
  const std::string url = std::string((*server)->tls() ? "https" : "http") + "://" +
                          (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                          std::to_string((*server)->port());
  log.begin(PdpStart{url, (*state)->bundle.path, (*state)->bundle.revision});
  std::printf("kz server: listening on %s (bundle %s, revision %.12s)\n", url.c_str(), (*state)->bundle.path.c_str(),
              (*state)->bundle.revision.c_str());
  if (with_mcp) std::printf("kz server: MCP (Streamable HTTP) at %s/mcp%s\n", url.c_str(),
                            *replicas ? (" (replica " + replica_label + "; sealed tokens and sessions)").c_str() : "");
  std::fflush(stdout);

  auto reload = [&](const char* why) {
    auto next = load_pdp_state(o.bundle);
    if (!next) {
      metrics.reload(false);
      spdlog::error("reload ({}): {}; still serving revision {:.12}", why, next.error().message,
                    service.state()->bundle.revision);
      log.record(PdpReload{"error", why, service.state()->bundle.revision, next.error().message});
      return;
    }
    metrics.reload(true);
    spdlog::info("reload ({}): now serving revision {:.12}", why, (*next)->bundle.revision);
    log.record(PdpReload{"ok", why, (*next)->bundle.revision, std::nullopt});
    service.set_state(*next);
  };

  FileStamp seen = stamp(o.bundle);
  for (;;) {
    const timespec tick{1, 0};
    const int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig == SIGHUP) {
      seen = stamp(o.bundle);
      reload("SIGHUP");
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) break;
    const FileStamp now = stamp(o.bundle);
    if (now != seen) {
      seen = now;
      reload("file changed");
    }
  }
  spdlog::info("stopping: finishing requests in progress");
  (*server)->stop(5000);
  log.end(PdpStop{});
  log.close();
  return kExitOk;
}

}  // namespace kz
