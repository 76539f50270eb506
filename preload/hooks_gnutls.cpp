// GnuTLS hooks (wget, git's libcurl-gnutls, ...). Same drivers as the OpenSSL hooks;
// every real function through dlsym, the shim never links GnuTLS.
#include <gnutls/gnutls.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "kz/preload/alpn.h"
#include "broker_socket.h"
#include "kz/preload/conn_table.h"
#include "fd_table.h"
#include "kz/preload/inbound.h"
#include "kz/preload/outbound.h"
#include "session_facts.h"
#include "shim.h"
#include "symbols.h"
#include "tls_common.h"
#include "witness.h"

using namespace kz::preload;

namespace {

// The socket behind the session when the program gave GnuTLS an fd
// (gnutls_transport_set_int); -1 otherwise (custom push functions, as in libcurl).
// The socket the program gave GnuTLS (gnutls_transport_set_int), if it is one we track.
int gtls_own_fd(gnutls_session_t s) {
  auto get_int = KZ_REAL(Gnutls, gnutls_transport_get_int);
  const int fd = get_int != nullptr ? get_int(s) : -1;
  return fd >= 0 && (fd_flags(fd) & kFdTcp) ? fd : -1;
}

// Also behind a push function: the socket the handshake was seen writing to (a table
// lookup: not for the per-write path).
int gtls_fd(gnutls_session_t s) {
  const int fd = gtls_own_fd(s);
  return fd >= 0 ? fd : session_fd_get(s);
}

void gtls_fill(ConnFacts* info) {
  auto s = static_cast<gnutls_session_t>(info->ctx);
  char name[kz::wire::kMaxHost];
  const std::size_t len = session_name_get(s, name, sizeof name);
  fill_host_and_peer(info, gtls_fd(s), len > 0 ? name : nullptr, len);
}

// ConnFacts::gather_host: the server name the shim kept for the session, when there is one.
bool gtls_fill_host(ConnFacts* info) {
  char name[kz::wire::kMaxHost];
  const std::size_t len = session_name_get(static_cast<gnutls_session_t>(info->ctx), name, sizeof name);
  return fill_host_from_sni(info, name, len);
}

std::size_t gtls_chain(void* ctx, unsigned char* out, std::size_t cap) {
  auto s = static_cast<gnutls_session_t>(ctx);
  auto peers = KZ_REAL(Gnutls, gnutls_certificate_get_peers);
  if (peers == nullptr) return 0;
  unsigned n = 0;
  const gnutls_datum_t* list = peers(s, &n);   // DER, leaf first
  std::size_t used = 0;
  for (unsigned i = 0; list != nullptr && i < n; ++i) {
    if (used + list[i].size > cap) break;
    std::memcpy(out + used, list[i].data, list[i].size);
    used += list[i].size;
  }
  return used;
}

// The key-log function GnuTLS gives a new session (learnt from the first session the
// gnutls_init hook sees); a session with another one had it replaced by the program.
std::atomic<gnutls_keylog_func> g_default_keylog{nullptr};
std::atomic<bool> g_default_keylog_known{false};

// What makes a swap on the session unsafe at this write (see ConnFacts::unsafe).
std::uint8_t gtls_unsafe(void* ctx) {
  auto s = static_cast<gnutls_session_t>(ctx);
  std::uint8_t f = 0;
  // Key logging: SSLKEYLOGFILE (GnuTLS writes every session's secrets there), or a
  // key-log function other than the library's default (gnutls_init itself installs the
  // default through gnutls_session_set_keylog_function, so a hook on that function could
  // not tell; comparing catches a function set through any symbol).
  bool keylog = keylog_env_seen();
  auto get_keylog = KZ_REAL(Gnutls, gnutls_session_get_keylog_function);
  if (!keylog && get_keylog != nullptr && g_default_keylog_known.load(std::memory_order_acquire) &&
      get_keylog(s) != g_default_keylog.load(std::memory_order_relaxed))
    keylog = true;
  if (keylog) f |= kz::wire::kFlagKeyLog;
  // Transport: the fd GnuTLS writes to is a tracked TCP socket, or the handshake was seen
  // writing to one (push functions, as in libcurl). Neither: records go elsewhere.
  // (A push function over a real socket cannot be told from GnuTLS's own: no getter.)
  const int own = gtls_own_fd(s);
  const int seen = own >= 0 ? own : session_fd_get(s);
  if (seen < 0 || (fd_flags(seen) & kFdTcp) == 0) f |= kz::wire::kFlagNotSocketBio;
  auto alpn = KZ_REAL(Gnutls, gnutls_alpn_get_selected_protocol);
  gnutls_datum_t proto{nullptr, 0};
  if (alpn == nullptr) f |= kz::wire::kFlagAlpnNotHttp1;
  else if (alpn(s, &proto) == GNUTLS_E_SUCCESS &&
           !alpn_allows_swap(proto.data, proto.data ? proto.size : 0, conn_is_h2(s)))
    f |= kz::wire::kFlagAlpnNotHttp1;
  return f;
}

struct Gtls {
  gnutls_session_t s;
  ssize_t last_ret = GNUTLS_E_INTERNAL_ERROR;
};

// Sends all of [p, p+n), retrying E_AGAIN/E_INTERRUPTED with the same pointer and length
// as GnuTLS requires.
bool gtls_write_all(void* ctx, const char* p, std::size_t n) {
  auto* g = static_cast<Gtls*>(ctx);
  auto real = KZ_REAL(Gnutls, gnutls_record_send);
  auto direction = KZ_REAL(Gnutls, gnutls_record_get_direction);
  if (real == nullptr) return false;
  std::size_t off = 0;
  while (off < n) {
    const ssize_t rc = real(g->s, p + off, n - off);
    if (rc > 0) {
      off += static_cast<std::size_t>(rc);
      continue;
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
      const short ev = direction != nullptr && direction(g->s) == 0 ? POLLIN : POLLOUT;
      if (wait_fd(gtls_fd(g->s), ev)) {
        // The retry must repeat the same data (GnuTLS keeps the pending record).
        continue;
      }
    }
    g->last_ret = rc;
    return false;
  }
  return true;
}

long gtls_stream_read(void* ctx, unsigned char* p, std::size_t cap) {
  auto real = KZ_REAL(Gnutls, gnutls_record_recv);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  return static_cast<long>(real(static_cast<gnutls_session_t>(ctx), p, cap));
}

// The peer is gone (a close without close_notify, or any fatal error), not "try again".
bool gtls_stream_ended(void*, long rc) {
  auto fatal = KZ_REAL(Gnutls, gnutls_error_is_fatal);
  return rc == GNUTLS_E_PREMATURE_TERMINATION || (fatal != nullptr && fatal(static_cast<int>(rc)) != 0);
}

struct Ctx {
  Gtls g;
  ConnFacts facts;
  SwapClient client;
  BrokerOps b;
  WriteOps w;
  explicit Ctx(gnutls_session_t s) : g{s}, client(broker_socket(), facts) {
    init_facts(&facts, kz::wire::Channel::GnuTLS, s, gtls_fill, gtls_chain);
    facts.gather_host = gtls_fill_host;
    facts.unsafe = gtls_unsafe;
    b = client.ops();
    w.ctx = &g;
    w.write_all = gtls_write_all;
  }
};

}  // namespace

KZ_EXPORT ssize_t gnutls_record_send(gnutls_session_t s, const void* data, size_t n) {
  auto real = KZ_REAL(Gnutls, gnutls_record_send);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  if (witness_refuses_gnutls(s, data, n)) return GNUTLS_E_PUSH_ERROR;
  if (!shim_active() || data == nullptr || n == 0) return real(s, data, n);
  Guard guard;
  fd_mark_tls(gtls_own_fd(s));   // push-function sockets were marked at the handshake
  Ctx c(s);
  switch (outbound_write(conn_table(), s, static_cast<const char*>(data), n, config().fixup_lengths, c.b, c.w)) {
    case WriteOutcome::PassThrough: return real(s, data, n);
    case WriteOutcome::Consumed: return static_cast<ssize_t>(n);
    case WriteOutcome::Failed: return c.g.last_ret;
  }
  return GNUTLS_E_INTERNAL_ERROR;
}

KZ_EXPORT ssize_t gnutls_record_recv(gnutls_session_t s, void* data, size_t n) {
  auto real = KZ_REAL(Gnutls, gnutls_record_recv);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  if (!shim_active()) return real(s, data, n);
  ReadOps r;
  r.ctx = s;
  r.read = gtls_stream_read;
  r.ended = gtls_stream_ended;
  std::size_t got = 0;
  long lib = 0;
  InboundRead how = InboundRead::PassThrough;
  if (conn_table().count() > 0) {
    Guard guard;
    Ctx c(s);
    outbound_flush(conn_table(), s, c.b, c.w);
    // A connection that carries a value reads through its inbound stream (inbound.h).
    if (data != nullptr && n > 0)
      how = inbound_read(conn_table(), s, static_cast<unsigned char*>(data), n, false, c.b, r, &got, &lib);
  }
  if (how == InboundRead::PassThrough) {
    const ssize_t rc = real(s, data, n);
    // A value may have gone out on the connection while this read waited: its bytes
    // then go through the stream (inbound_after_passthrough).
    if (rc <= 0 || data == nullptr || conn_table().count() == 0) return rc;
    Guard guard;
    Ctx c(s);
    how = inbound_after_passthrough(conn_table(), s, static_cast<unsigned char*>(data), static_cast<std::size_t>(rc), n,
                                    false, c.b, r, &got, &lib);
    if (how == InboundRead::PassThrough) return rc;
  }
  switch (how) {
    case InboundRead::PassThrough: break;
    case InboundRead::Delivered: return static_cast<ssize_t>(got);
    case InboundRead::Library: return static_cast<ssize_t>(lib);
    case InboundRead::Failed: break;
  }
  errno = EPROTO;
  return GNUTLS_E_PULL_ERROR;
}

// Bytes the inbound stream holds count as pending (wget asks before it polls).
KZ_EXPORT size_t gnutls_record_check_pending(gnutls_session_t s) {
  auto real = KZ_REAL(Gnutls, gnutls_record_check_pending);
  const size_t n = real != nullptr ? real(s) : 0;
  if (!shim_active() || conn_table().count() == 0) return n;
  return n + inbound_pending(conn_table(), s);
}

KZ_EXPORT int gnutls_bye(gnutls_session_t s, gnutls_close_request_t how) {
  auto real = KZ_REAL(Gnutls, gnutls_bye);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  if (shim_active() && conn_table().count() > 0) {
    Guard guard;
    Ctx c(s);
    outbound_flush(conn_table(), s, c.b, c.w);
  }
  return real(s, how);
}

// Handshake: note the socket the records go to (see session_facts.h).
KZ_EXPORT int gnutls_handshake(gnutls_session_t s) {
  auto real = KZ_REAL(Gnutls, gnutls_handshake);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  if (!config().enabled) return real(s);
  (void)keylog_env_seen();
  HandshakeScope scope(s);
  return real(s);
}

// A new session. GnuTLS has no free callback, and a program may free a session with the
// library's own gnutls_deinit (past the hook below): the new session can then sit at the
// old one's address, so nothing kept for that address carries over (its SNI, its
// grants). A new session made past this hook too is caught by the grant's peer check
// (peer_identity.h). Also learns the library's default key-log function.
KZ_EXPORT int gnutls_init(gnutls_session_t* s, unsigned int flags) {
  auto real = KZ_REAL(Gnutls, gnutls_init);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  const int rc = real(s, flags);
  if (rc != GNUTLS_E_SUCCESS || s == nullptr || !config().enabled) return rc;
  session_forget(*s);
  if (conn_table().count() > 0) {
    Guard guard;
    Ctx c(*s);
    c.facts.gathered = true;   // a new session: nothing to learn from it yet
    c.facts.fill_chain = nullptr;
    conn_drop(conn_table(), *s, c.b);
  }
  if (!g_default_keylog_known.load(std::memory_order_acquire)) {
    // Every new session gets the same default, so racing threads store the same value.
    auto get_keylog = KZ_REAL(Gnutls, gnutls_session_get_keylog_function);
    if (get_keylog != nullptr) {
      g_default_keylog.store(get_keylog(*s), std::memory_order_relaxed);
      g_default_keylog_known.store(true, std::memory_order_release);
    }
  }
  return rc;
}

// The client's SNI, remembered for the broker's host check (see session_facts.h).
KZ_EXPORT int gnutls_server_name_set(gnutls_session_t s, gnutls_server_name_type_t type, const void* name,
                                     size_t len) {
  auto real = KZ_REAL(Gnutls, gnutls_server_name_set);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  const int rc = real(s, type, name, len);
  if (rc == GNUTLS_E_SUCCESS && config().enabled && type == GNUTLS_NAME_DNS && name != nullptr) {
    // Some callers count a terminating NUL in len.
    const std::size_t n = strnlen(static_cast<const char*>(name), len);
    session_name_set(s, static_cast<const char*>(name), n);
  }
  return rc;
}

KZ_EXPORT void gnutls_deinit(gnutls_session_t s) {
  auto real = KZ_REAL(Gnutls, gnutls_deinit);
  if (s != nullptr && config().enabled) session_forget(s);
  if (s != nullptr && config().enabled) {
    Guard guard;
    Ctx c(s);
    conn_drop(conn_table(), s, c.b);
  }
  if (real) real(s);
}

// ALPN: with [blind] http2 = false, drop "h2" (see alpn.h); an offer left empty becomes "http/1.1".
KZ_EXPORT int gnutls_alpn_set_protocols(gnutls_session_t s, const gnutls_datum_t* protos, unsigned n,
                                        unsigned flags) {
  auto real = KZ_REAL(Gnutls, gnutls_alpn_set_protocols);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  if (!shim_active() || config().http2 || protos == nullptr || n == 0 || n > 64) return real(s, protos, n, flags);
  gnutls_datum_t kept[64];
  unsigned k = 0;
  for (unsigned i = 0; i < n; ++i)
    if (!alpn_is_h2(protos[i].data, protos[i].size)) kept[k++] = protos[i];
  if (k == 0) {
    static unsigned char http11[] = "http/1.1";
    kept[k++] = gnutls_datum_t{http11, 8};
  }
  return real(s, kept, k, flags);
}
