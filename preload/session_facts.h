// What the shim learns about a TLS object (SSL* / gnutls_session_t) that its library
// will not tell: the SNI host name a GnuTLS client set (gnutls_server_name_get answers
// only on the server side), and the socket behind a session whose I/O goes through the
// program's own callbacks (curl's BIO, GnuTLS push functions), so SSL_get_fd is -1.
// The socket is learnt during the handshake: while a handshake hook runs on a thread,
// the send hooks note the TCP socket it writes to (see HandshakeScope in shim.h).
//
// Fixed-size and allocation-free: lookups are lock-free, updates take a mutex.
#pragma once

#include <cstddef>

namespace kz::preload {

// Remembers `name` for `session` (replacing an earlier one). Names longer than the
// broker's host field are not kept (the connection then uses the peer IP as its host).
void session_name_set(const void* session, const char* name, std::size_t len);
// Copies the name into out (cap bytes) and returns its length; 0 when unknown.
std::size_t session_name_get(const void* session, char* out, std::size_t cap);
// The TCP socket under the session; -1 when unknown.
void session_fd_set(const void* session, int fd);
int session_fd_get(const void* session);
void session_forget(const void* session);
// fork(): the child must not inherit a held mutex.
void session_facts_lock_for_fork();
void session_facts_unlock_after_fork();
void session_facts_reset_after_fork();

}  // namespace kz::preload
