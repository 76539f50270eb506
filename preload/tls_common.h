// Helpers shared by the OpenSSL and GnuTLS hooks.
#pragma once

#include <cstddef>

#include "broker_socket.h"
#include "kz/preload/conn_table.h"
#include "kz/preload/swap_client.h"

namespace kz::preload {

// Waits until fd is ready for `events` (POLLIN/POLLOUT) before retrying a TLS write on
// the same scratch buffer. fd < 0 or not a socket we know: a 1 ms pause instead (the
// transport is the application's own, e.g. curl's GnuTLS push function). false when
// the peer stalls for longer than the timeout.
bool wait_fd(int fd, short events);

// The facts of one hook call's connection: the channel, this process, and where the
// rest comes from when the broker is first asked (gather, chain may be null).
// Inline: every TLS write makes one (the fast path included).
inline void init_facts(ConnFacts* f, wire::Channel channel, void* ctx, void (*gather)(ConnFacts*),
                       std::size_t (*chain)(void* ctx, unsigned char* out, std::size_t cap)) {
  f->channel = channel;
  f->pid = shim_pid();
  f->ctx = ctx;
  f->gather = gather;
  f->fill_chain = chain;
}

// SSLKEYLOGFILE is (or was, at load or at a handshake) in this process's environment:
// GnuTLS (and OpenSSL >= 3.5 built with key logging) then write every session's keys to
// that file, which the agent can read. Sticky: unsetting it later does not unlog keys.
bool keylog_env_seen();

// host = sni when there is one that fits; false (host untouched) otherwise.
bool fill_host_from_sni(ConnFacts* info, const char* sni, std::size_t sni_len);

// Fills facts->host/peer from the socket's peer (host: IP literal) when sni is empty.
void fill_host_and_peer(ConnFacts* info, int fd, const char* sni, std::size_t sni_len);

// The connection keyed by the TLS object goes through the HTTP/2 engine (h2.h). Lock-free
// lookup; asked while the driver holds the connection's lock (SwapClient's unsafe check).
inline bool conn_is_h2(const void* key) {
  if (conn_table().count() == 0) return false;
  const ConnState* st = conn_table().find(key);
  return st != nullptr && st->h2 != nullptr;
}

}  // namespace kz::preload
