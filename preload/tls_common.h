// Helpers shared by the OpenSSL and GnuTLS hooks.
#pragma once

#include <cstddef>

#include "broker_client.h"

namespace kz::preload {

// Waits until fd is ready for `events` (POLLIN/POLLOUT) before retrying a TLS write on
// the same scratch buffer. fd < 0 or not a socket we know: a 1 ms pause instead (the
// transport is the application's own, e.g. curl's GnuTLS push function). false when
// the peer stalls for longer than the timeout.
bool wait_fd(int fd, short events);

// Fills info->host/peer from the socket's peer (host: IP literal) when sni is empty.
void fill_host_and_peer(ConnInfo* info, int fd, const char* sni, std::size_t sni_len);

}  // namespace kz::preload
