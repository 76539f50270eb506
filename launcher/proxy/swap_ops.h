// The broker, in-process, for the fallback proxy: a preload::BrokerOps whose calls go
// straight to kz::decide() instead of over the broker socket. The shim's rewrite
// (preload/outbound.h) drives it exactly as it drives the shim's broker client, and
// this applies the answers the same way preload/broker_client.cpp does: connection
// grants (reused without asking, uses counted and reported), value fingerprints for
// inbound redaction, fail closed on anything unexpected. Every decide() record goes to
// the audit sink with the connecting process's pid and executable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audit/audit_recorder.h"
#include "secrets/decide.h"
#include "kz/wire/protocol.h"
#include "outbound.h"

namespace kz {

// What decide() needs to know about one proxied connection. Owned by the connection and
// alive until after conn_drop(): the BrokerOps point at it.
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
};

// BrokerOps with ctx = the SwapContext. Thread-compatible: one connection's calls come
// from one strand at a time.
preload::BrokerOps swap_ops(SwapContext* ctx);

// One Op::Report (a token sent unchanged where it could not be swapped) outside the
// rewrite, e.g. a token seen on a plain TCP connection.
void report_token(SwapContext& ctx, const char* tok, std::size_t len);

}  // namespace kz
