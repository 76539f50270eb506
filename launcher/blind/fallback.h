// Blind mode's fallback for programs the shim cannot serve: the run's ephemeral CA and
// trust bundles, the TLS proxy, the program router and the redirector that sends
// connections to the proxy. Started after the tokens exist; stopped when the run ends
// (proxy closed, redirect detached, CA key freed, bundle files removed).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit_recorder.h"
#include "secrets/decide.h"
#include "core/private_dir.h"
#include "proxy/ephemeral_ca.h"
#include "proxy/tls_proxy.h"
#include "proxy/trust_bundles.h"
#include "redirect/program_route.h"
#include "redirect/redirector.h"
#include "redirect/select.h"

namespace kz {

struct FallbackOptions {
  bool all_programs = false;            // --blind=proxy
  RedirectChoice redirector;            // not "off"
  std::vector<std::uint16_t> ports;     // 443 and [blind] proxy_ports
  bool http2 = true;                    // [blind] http2: the proxy may relay h2
};

class Fallback {
 public:
  // `audit` (thread-safe) outlives the Fallback.
  static Result<std::unique_ptr<Fallback>> start(const FallbackOptions& o, DecideContext decide, AuditRecorder& audit,
                                                 char** parent_env);
  ~Fallback() { stop(); }
  Fallback(const Fallback&) = delete;
  Fallback& operator=(const Fallback&) = delete;

  // SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
  // GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, JAVA_TOOL_OPTIONS.
  const std::vector<EnvVar>& child_vars() const { return bundles_->vars(); }
  // Between fork and exec in the child.
  int child_prepare() noexcept { return redirector_ ? redirector_->child_prepare() : 0; }
  Status after_fork(pid_t child) { return redirector_->after_fork(child); }
  std::string describe() const;
  // Where the proxy listens: ("127.0.0.1", port) and, when it has one, ("::1", port).
  std::vector<std::pair<std::string, int>> listen_endpoints() const;
  // The run routes this process's connections to the proxy (redirected ports).
  bool routes_to_proxy(pid_t pid) const { return router_ && router_->route(pid) == Route::Proxy; }
  std::string run_cgroup() const { return redirector_ ? redirector_->run_cgroup() : std::string(); }
  void stop();

 private:
  Fallback() = default;
  std::optional<PrivateDir> dir_;
  std::unique_ptr<EphemeralCa> ca_;
  std::optional<TrustBundles> bundles_;
  std::unique_ptr<ProgramRouter> router_;
  std::unique_ptr<TlsProxy> proxy_;
  std::unique_ptr<Redirector> redirector_;
};

}  // namespace kz
