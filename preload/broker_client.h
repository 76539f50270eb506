// The shim's side of the broker protocol (kz/wire/protocol.h): one SOCK_SEQPACKET
// connection per process to $KZ_BROKER, opened lazily, one fixed-size Request → one
// fixed-size Reply under a mutex. The request and reply buffers are mmap'd DONTDUMP and
// wiped after each exchange (the reply carries a value). Any failure (no broker, short
// or malformed reply, timeout) is fail closed: the caller sends the token unchanged, and
// one "kz: ..." line goes to stderr once per process.
#pragma once

#include <cstddef>

#include "kz/wire/protocol.h"
#include "outbound.h"

namespace kz::preload {

// What the broker needs to know about the connection; filled lazily (once per hook
// call) because SNI and the certificate chain cost something to fetch.
struct ConnInfo {
  wire::Channel channel = wire::Channel::Plain;
  void* ctx = nullptr;             // the hook's context (SSL*, session, fd)
  // Fills host/peer (and may complete a pending handshake). Called once.
  void (*fill)(ConnInfo* self) = nullptr;
  // Writes the peer's DER chain, leaf first; returns its length (0: none).
  std::size_t (*fill_chain)(void* ctx, unsigned char* out, std::size_t cap) = nullptr;
  bool filled = false;
  char host[wire::kMaxHost];
  std::size_t host_len = 0;
  char peer[wire::kMaxPeer];
  std::size_t peer_len = 0;
};

// BrokerOps whose ctx is a ConnInfo.
BrokerOps broker_ops(ConnInfo* info);

void broker_install_fork_handlers();

}  // namespace kz::preload
