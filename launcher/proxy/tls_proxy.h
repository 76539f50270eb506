// The fallback TLS proxy (Boost.Asio): where the redirector sends the connections of
// programs the shim cannot serve. For each accepted connection it asks where it was
// going (OriginalDestination), reads the client's ClientHello for its SNI, and then
//   - plain TCP splice to the destination when no secret is bound to that host, when the
//     upstream's certificate does not verify (the client then sees the real certificate
//     and decides for itself), or when the program turns out to be one the shim serves;
//   - otherwise opens a verified TLS connection to the destination offering the
//     client's own ALPN protocols that the proxy can relay (http/1.1, and h2 unless
//     [blind] http2 = false), then terminates the client's TLS with a leaf from the
//     run's EphemeralCa answering with the protocol the destination selected, and swaps
//     tokens in the requests with the shim's own rewrite (preload/outbound.h for
//     HTTP/1.1, the HTTP/2 drivers for h2) and the broker's decisions (blind/decide.h):
//     host binding, Basic auth, Content-Length, inbound redaction, one audit record per
//     decision.
// Plain (non-TLS) connections are spliced; tokens seen in them are reported (audited as
// refusals) and sent unchanged.
#pragma once

#include <sys/types.h>
#include <netinet/in.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "audit/audit_recorder.h"
#include "secrets/decide.h"
#include "kz/result.h"
#include "proxy/ephemeral_ca.h"
#include "redirect/redirector.h"

namespace kz {

struct ProxyOptions {
  DecideContext decide;                        // token table, peer verifier, grants
  EphemeralCa* ca = nullptr;
  AuditRecorder* audit = nullptr;              // thread-safe; null: nothing recorded
  // Where an accepted connection (client = its peer address) was going; nullopt: unknown
  // (the connection is closed and the refusal audited).
  std::function<std::optional<OriginalDestination>(const sockaddr_storage& client)> original;
  // Which route the connecting process's program takes; Route::Shim → splice, and
  // shim_served(pid) is called so the redirector stops sending it here. Empty: Proxy.
  std::function<Route(pid_t)> route;
  std::function<void(pid_t)> shim_served;
  unsigned threads = 0;                        // 0: one per core, at most 4
  bool http2 = true;                           // [blind] http2: h2 may be offered upstream
};

// This build's proxy can relay HTTP/2 (rewrite h2 streams): it then offers h2 to a
// destination when the client offers it and [blind] http2 is not false.
bool proxy_relays_h2();

// The ex_data slot of a client-side SSL that points at the protocol (std::string) the
// destination selected, read by the proxy's ALPN select callback.
int upstream_alpn_index();

class TlsProxy {
 public:
  // Listens on 127.0.0.1:0 and [::1]:0 (IPv6 skipped with a debug line when unavailable).
  static Result<std::unique_ptr<TlsProxy>> start(ProxyOptions opts);
  ~TlsProxy();   // stop()
  TlsProxy(const TlsProxy&) = delete;
  TlsProxy& operator=(const TlsProxy&) = delete;

  sockaddr_in listen4() const;
  sockaddr_in6 listen6() const;   // sin6_port 0 when there is no IPv6 listener
  // Closes the listeners and every connection, joins the threads, reports grant uses.
  void stop();

  struct Impl;
 private:
  explicit TlsProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kz
