// AWS SigV4 re-signing in the shim and the fallback proxy (issue 17).
//
// In blind mode the agent's AWS SDK holds a token as its secret access key, so the
// signature it writes is useless. For every request head of a write that carries an
// AWS4-HMAC-SHA256 signature (an Authorization header or a presigned X-Amz-Signature
// query), the shim sends the head as it will be sent, and the body's SHA-256 when the
// body is in hand, to the broker (wire::Op::Sign). The broker, which holds the key,
// checks the request against the secret's binding, rebuilds the canonical request and
// returns only the 64-hex signature and where it goes; the shim writes it over the
// token's signature, same length, so no framing changes. Anything else leaves the
// token's signature in place (the server refuses it; the broker audited why).
//
// Pure and allocation-free: the caller passes its own copy of the write (the bytes that
// will be sent), which is edited in place.
#pragma once

#include <cstddef>

#include "kz/preload/conn_table.h"
#include "kz/preload/outbound.h"

namespace kz::preload {

struct TrackResult;

// Does this head (or this write) look like a SigV4 request? One memmem.
bool may_be_sigv4(const char* p, std::size_t n);

struct ResignResult {
  // A signed request whose body is needed (no x-amz-content-sha256 header) and not all
  // in the buffer: hold the buffer until it is (nothing was changed).
  bool hold = false;
  std::size_t signed_count = 0, refused = 0;
};

// Re-signs each SigV4 request whose head is in buf[0, n) (tr: its requests, from the
// tracker; opt: allow_hold, hold_limit and the request lookup). b.sign must be set.
ResignResult resign_sigv4(char* buf, std::size_t n, const TrackResult& tr, const OutboundOptions& opt,
                          const BrokerOps& b, ConnState* st);

}  // namespace kz::preload
