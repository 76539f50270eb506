// The broker, in-process, for the fallback proxy: a preload::SwapTransport whose round
// trip is a call to kz::decide() instead of a message over the broker socket. The shim's
// own swap client (kz/preload/swap_client.h) drives it, so requests are built, grants
// kept and replies applied exactly as in the shim. Every decide() record goes to the
// audit sink with the connection id and the connecting process's pid and executable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audit/audit_recorder.h"
#include "kz/preload/swap_client.h"
#include "kz/wire/protocol.h"
#include "secrets/decide.h"

namespace kz {

// What decide() needs to know about one proxied connection. Owned by the connection;
// complete before its first swap or report (the relay and the plain scan start after
// the host, channel and chain are known).
struct SwapContext {
  const DecideContext* decide = nullptr;
  AuditRecorder* audit = nullptr;
  wire::Channel channel = wire::Channel::OpenSSL;
  pid_t pid = 0;
  std::string exe;          // /proc/PID/exe, read on the first decision
  bool exe_known = false;
  std::vector<std::string> lineage;   // from the process sensor, read with exe
  std::string host;         // SNI, else the destination's IP literal
  std::string peer;         // the original destination, "1.2.3.4:443" / "[::1]:443"
  std::string chain;        // the upstream's DER certificates, leaf first, concatenated
  std::uint64_t conn_id = 0;
  // Runs `wait` (which blocks until a person answers an approval) on this thread while
  // the connections that share it are served elsewhere; empty: `wait` just runs.
  std::function<void(const std::function<void()>& wait)> while_held{};
};

// decide() on the calling thread's request (one buffer pair per I/O thread). Nothing
// propagates into the shim's core, built without exceptions: any exception (allocation,
// the audit sink) is "no answer", which the client treats as a refusal.
class DecideTransport final : public preload::SwapTransport {
 public:
  explicit DecideTransport(SwapContext& c) : c_(c) {}
  wire::Request* request() noexcept override;
  wire::Reply* exchange() noexcept override;

 private:
  SwapContext& c_;
};

// The swap client of one proxied connection: its facts, its transport, its client.
// Thread-compatible (one connection's calls come from one strand at a time); not
// movable, the client points at the other two.
class ProxySwapClient {
 public:
  explicit ProxySwapClient(SwapContext& c);
  ProxySwapClient(const ProxySwapClient&) = delete;
  ProxySwapClient& operator=(const ProxySwapClient&) = delete;

  // BrokerOps for the shim's rewrite drivers.
  preload::BrokerOps ops() { return client_.ops(); }
  // One Op::Report (a token sent unchanged where it could not be swapped) outside the
  // rewrite, e.g. a token seen on a plain TCP connection.
  void report_token(const char* tok, std::size_t len) { client_.report(nullptr, tok, len); }

 private:
  preload::ConnFacts facts_;
  DecideTransport transport_;
  preload::SwapClient client_;
};

}  // namespace kz
