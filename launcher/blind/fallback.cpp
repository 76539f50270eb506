#include "blind/fallback.h"

#include <arpa/inet.h>

#include <cstring>

#include "core/log.h"

namespace kz {

Result<std::unique_ptr<Fallback>> Fallback::start(const FallbackOptions& o, DecideContext decide, AuditRecorder& audit,
                                                  char** parent_env) {
  std::unique_ptr<Fallback> f(new Fallback());
  auto dir = PrivateDir::create("kz-proxy-");
  if (!dir) return dir.take_error();
  f->dir_.emplace(std::move(*dir));
  auto ca = EphemeralCa::create();
  if (!ca) return ca.take_error();
  f->ca_ = std::move(*ca);
  auto bundles = TrustBundles::write(f->dir_->path(), f->ca_->cert_pem(), parent_env);
  if (!bundles) return bundles.take_error();
  f->bundles_.emplace(std::move(*bundles));

  // One record per program of the run: which way its TLS goes, and why.
  f->router_ = std::make_unique<ProgramRouter>(
      o.all_programs, [&audit](pid_t pid, const std::string& exe, const ProgramClass& c) {
        const char* route = c.route == Route::Shim ? "shim" : "proxy";
        spdlog::info("blind: pid {} {} → {} ({})", static_cast<long>(pid), exe, route, c.reason);
        audit.record(ProgramRouted{static_cast<long>(pid), exe, route, c.reason});
      });

  ProxyOptions po;
  po.decide = decide;
  po.ca = f->ca_.get();
  po.http2 = o.http2;
  po.audit = &audit;
  Fallback* self = f.get();
  // The redirector is made after the proxy (it needs the proxy's addresses); the proxy
  // only accepts connections once a redirected program exists, after both are up.
  po.original = [self](const sockaddr_storage& client) -> std::optional<OriginalDestination> {
    return self->redirector_ ? self->redirector_->take_original(client) : std::nullopt;
  };
  po.route = [self](pid_t pid) { return self->router_->route(pid); };
  po.shim_served = [self](pid_t pid) {
    if (self->redirector_) self->redirector_->mark_shim_served(pid);
  };
  auto proxy = TlsProxy::start(std::move(po));
  if (!proxy) return proxy.take_error();
  f->proxy_ = std::move(*proxy);

  RedirectSettings rs;
  rs.proxy4 = f->proxy_->listen4();
  rs.proxy6 = f->proxy_->listen6();
  rs.ports = o.ports;
  rs.all_programs = o.all_programs;
  rs.route = [self](pid_t pid) { return self->router_->route(pid); };
  RedirectChoice choice = o.redirector;
  auto red = make_redirector(choice, rs);
  if (!red) return red.take_error();
  f->redirector_ = std::move(*red);
  std::string ports;
  for (auto p : o.ports) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  sockaddr_storage listen{};
  std::memcpy(&listen, &rs.proxy4, sizeof rs.proxy4);
  spdlog::info("blind: {} go to the TLS proxy on {} (ports {}); redirect: {} ({})",
               o.all_programs ? "all programs" : "programs the shim cannot serve", format_address(listen), ports,
               f->redirector_->describe(), choice.why);
  audit.record(FallbackStarted{choice.name, o.all_programs, o.ports});
  return f;
}

std::string Fallback::describe() const { return redirector_ ? redirector_->describe() : "off"; }

std::vector<std::pair<std::string, int>> Fallback::listen_endpoints() const {
  std::vector<std::pair<std::string, int>> out;
  if (!proxy_) return out;
  char ip[INET6_ADDRSTRLEN];
  const sockaddr_in l4 = proxy_->listen4();
  if (l4.sin_port != 0 && inet_ntop(AF_INET, &l4.sin_addr, ip, sizeof ip) != nullptr)
    out.emplace_back(ip, ntohs(l4.sin_port));
  const sockaddr_in6 l6 = proxy_->listen6();
  if (l6.sin6_port != 0 && inet_ntop(AF_INET6, &l6.sin6_addr, ip, sizeof ip) != nullptr)
    out.emplace_back(ip, ntohs(l6.sin6_port));
  return out;
}

void Fallback::stop() {
  // Redirect first (no new connections reach the proxy), then the proxy, then the files.
  if (redirector_) redirector_->stop();
  if (proxy_) proxy_->stop();
  if (dir_) dir_->remove();
}

}  // namespace kz
