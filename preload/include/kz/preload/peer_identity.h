// Who a connection's grant was given for: a keyed digest of the host the client named
// (SNI, else the peer's IP literal) and the certificate chain the peer presented: the
// SHA-1 of each certificate where the TLS library keeps it (OpenSSL: a copy, where the
// DER chain costs an encoding per request), else the DER chain. Passing the recheck
// with another chain then takes a certificate with a bound peer's SHA-1 (a second
// preimage), or a SipHash collision under a key the agent does not know.
//
// A grant (swap_client.h) lives in the ConnState, which is keyed by the TLS object's
// address. An address can be reused: a program that frees its session through the TLS
// library's own symbol (past the shim's hook) and makes a new one may get the same
// pointer for a connection to another host. So a grant records the identity of the
// peer it was given for, and every reuse recomputes it from the live TLS object and
// compares: another host or another chain, and the grant is dropped and the broker
// asked again (which refuses an unbound host).
//
// The digest is SipHash-2-4 under a random key made once per process: the agent cannot
// compute it offline, so it cannot search for a chain it could serve whose digest
// collides with a bound host's. Allocation-free (the shim calls it on a write).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/wire/protocol.h"

namespace kz::preload {

// SipHash-2-4 over a byte stream, 64-bit output.
class SipHash24 {
 public:
  explicit SipHash24(const unsigned char key[16]);
  void update(const void* data, std::size_t n);
  std::uint64_t finish();

 private:
  void compress(std::uint64_t m);
  std::uint64_t v0_, v1_, v2_, v3_;
  std::uint64_t tail_ = 0;       // bytes not yet compressed, little-endian
  std::size_t tail_len_ = 0;
  std::uint64_t total_ = 0;
};

// The digest of (channel, host, chain) under this process's key. false when the
// process has no key (getrandom failed): then no grant may be reused.
bool peer_identity(wire::Channel channel, const char* host, std::size_t host_len, const unsigned char* chain,
                   std::size_t chain_len, std::uint64_t* out);

}  // namespace kz::preload
