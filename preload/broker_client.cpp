#include "broker_client.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "conn_table.h"
#include "scratch.h"
#include "session_facts.h"
#include "shim.h"

namespace kz::preload {

namespace {

using wire::Decision;
using wire::Op;
using wire::Reply;
using wire::Request;

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
int g_fd = -1;
Request* g_req = nullptr;
Reply* g_rep = nullptr;

// Raw system calls: our own socket must not go through the shim's hooks.
long sys_close(int fd) { return syscall(SYS_close, fd); }

bool ensure_connected() {
  if (g_fd >= 0) return true;
  if (g_req == nullptr) {
    g_req = static_cast<Request*>(scratch_alloc(sizeof(Request)));
    g_rep = static_cast<Reply*>(scratch_alloc(sizeof(Reply)));
    if (g_req == nullptr || g_rep == nullptr) {
      log_once("blind mode: out of memory for the broker client; tokens go out unchanged");
      return false;
    }
  }
  const char* path = config().broker_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) {
    log_once("blind mode: broker socket path too long; tokens go out unchanged");
    return false;
  }
  std::strcpy(addr.sun_path, path);
  const int fd = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd < 0) {
    log_once("blind mode: cannot create the broker socket; tokens go out unchanged");
    return false;
  }
  // A broker that stops answering must not hang the agent forever.
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (syscall(SYS_connect, fd, &addr, sizeof addr) != 0) {
    sys_close(fd);
    log_once("blind mode: cannot reach the broker; tokens go out unchanged");
    return false;
  }
  g_fd = fd;
  return true;
}

void drop_connection() {
  if (g_fd >= 0) sys_close(g_fd);
  g_fd = -1;
}

void copy_field(char* dst, std::uint16_t* dst_len, std::size_t cap, const char* src, std::size_t n) {
  if (n > cap) n = cap;
  std::memcpy(dst, src, n);
  *dst_len = static_cast<std::uint16_t>(n);
}

// Fills the common part of g_req. Caller holds g_mu.
void fill_request(Op op, ConnInfo* info, ConnState* st, const void* data, std::size_t n, bool at_end) {
  if (!info->filled) {
    info->filled = true;
    if (info->fill) info->fill(info);
  }
  Request& r = *g_req;
  std::memset(&r, 0, offsetof(Request, data));   // header and text fields; data/chain set below
  r.version = wire::kProtocolVersion;
  r.op = op;
  r.channel = info->channel;
  r.flags = at_end ? wire::kFlagTokenAtEnd : 0;
  r.pid = static_cast<std::uint32_t>(getpid());
  r.conn_id = st != nullptr ? st->conn_id : 0;
  // Host names are printable ASCII without spaces (the broker checks); drop anything else.
  std::size_t hl = 0;
  for (std::size_t i = 0; i < info->host_len && hl < wire::kMaxHost; ++i) {
    const unsigned char c = static_cast<unsigned char>(info->host[i]);
    if (c > 0x20 && c < 0x7f) r.host[hl++] = static_cast<char>(c);
  }
  r.host_len = static_cast<std::uint16_t>(hl);
  if (st != nullptr) {
    copy_field(r.method, &r.method_len, wire::kMaxMethod, st->method, st->method_len);
    copy_field(r.path, &r.path_len, wire::kMaxPath, st->path, st->path_len);
  }
  copy_field(r.peer, &r.peer_len, wire::kMaxPeer, info->peer, info->peer_len);
  if (n > wire::kMaxData) n = wire::kMaxData;
  std::memcpy(r.data, data, n);
  r.data_len = static_cast<std::uint32_t>(n);
  r.chain_len = 0;
  if (info->channel != wire::Channel::Plain && info->fill_chain != nullptr) {
    const std::size_t cl = info->fill_chain(info->ctx, r.chain, wire::kMaxChain);
    if (cl > 0 && cl <= wire::kMaxChain) {
      r.chain_len = static_cast<std::uint32_t>(cl);
      r.flags |= wire::kFlagPeerHasChain;
    }
  }
}

// One exchange. Caller holds g_mu and has filled g_req. true: g_rep is a valid reply.
bool exchange(Op op) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ensure_connected()) return false;
    const long s = syscall(SYS_sendto, g_fd, g_req, sizeof(Request), MSG_NOSIGNAL, nullptr, 0);
    if (s != static_cast<long>(sizeof(Request))) {
      drop_connection();   // the broker restarted or closed us: one reconnect
      continue;
    }
    // MSG_TRUNC: the return value is the real message size, so an oversized reply is
    // detected instead of silently cut.
    long got;
    do {
      got = syscall(SYS_recvfrom, g_fd, g_rep, sizeof(Reply), MSG_TRUNC, nullptr, nullptr);
    } while (got < 0 && errno == EINTR);
    if (got < 0 || !wire::reply_is_valid(*g_rep, static_cast<std::size_t>(got), op)) {
      drop_connection();   // a late or malformed reply must not be paired with the next request
      explicit_bzero(g_rep, sizeof(Reply));
      log_once(got < 0 ? "blind mode: no answer from the broker; tokens go out unchanged"
                       : "blind mode: malformed broker reply; tokens go out unchanged");
      return false;
    }
    return true;
  }
  log_once("blind mode: lost the broker connection; tokens go out unchanged");
  return false;
}

void wipe_exchange() {
  explicit_bzero(g_req->data, sizeof g_req->data);
  explicit_bzero(g_rep, sizeof(Reply));
}

// Reports the unreported uses of one grant. Caller holds g_mu and st's lock. Uses the
// host and peer kept in st: the TLS object may be gone (process exit).
void report_uses_locked(ConnState* st, Grant& g) {
  if (g.unreported == 0 || !ensure_connected()) return;
  ConnInfo info;
  info.channel = st->channel;
  info.filled = true;
  std::memcpy(info.host, st->host, st->host_len);
  info.host_len = st->host_len;
  std::memcpy(info.peer, st->peer, st->peer_len);
  info.peer_len = st->peer_len;
  fill_request(Op::Report, &info, st, g.token, g.token_len, false);
  g_req->uses = g.unreported;
  exchange(Op::Report);
  wipe_exchange();
  g.unreported = 0;
}

// A swap the broker already granted on this connection: no round trip.
bool swap_from_grant(ConnState* st, const char* tok, std::size_t len, char* value_out, std::size_t cap,
                     std::size_t* value_len) {
  for (std::size_t i = 0; i < st->ngrants; ++i) {
    Grant& g = st->grants[i];
    if (g.token_len != len || std::memcmp(g.token, tok, len) != 0 || g.value_len > cap) continue;
    std::memcpy(value_out, g.value, g.value_len);
    *value_len = g.value_len;
    if (++g.unreported >= wire::kReuseReportEvery) {
      pthread_mutex_lock(&g_mu);
      report_uses_locked(st, g);
      pthread_mutex_unlock(&g_mu);
    }
    return true;
  }
  return false;
}

void remember_grant(ConnState* st, const ConnInfo* info, const char* tok, std::size_t len, const Reply& rep) {
  if (st->ngrants == kMaxGrants || len > kMaxGrantLen || rep.data_len > kMaxGrantLen) return;
  Grant& g = st->grants[st->ngrants++];
  std::memcpy(g.token, tok, len);
  g.token_len = static_cast<std::uint16_t>(len);
  std::memcpy(g.value, rep.data, rep.data_len);
  g.value_len = static_cast<std::uint16_t>(rep.data_len);
  g.unreported = 0;
  st->channel = info->channel;
  std::memcpy(st->host, info->host, info->host_len);
  st->host_len = info->host_len;
  std::memcpy(st->peer, info->peer, info->peer_len);
  st->peer_len = info->peer_len;
}

Decision do_swap(void* ctx, ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                 std::size_t cap, std::size_t* value_len, std::size_t* token_len) {
  auto* info = static_cast<ConnInfo*>(ctx);
  if (st != nullptr && st->ngrants > 0 && swap_from_grant(st, tok, len, value_out, cap, value_len))
    return Decision::Allow;
  Decision d = Decision::Refuse;
  pthread_mutex_lock(&g_mu);
  if (ensure_connected()) {
    fill_request(Op::Swap, info, st, tok, len, at_end);
    if (exchange(Op::Swap)) {
      d = g_rep->decision;
      if (d == Decision::Allow) {
        if (g_rep->data_len > cap) {
          d = Decision::Refuse;   // a value never grows past its token; refuse to overflow
          log_once("blind mode: broker value longer than its token; sent unchanged");
        } else {
          std::memcpy(value_out, g_rep->data, g_rep->data_len);
          *value_len = g_rep->data_len;
          if (st != nullptr && (g_rep->flags & wire::kReplyReuseOnConnection) != 0)
            remember_grant(st, info, tok, len, *g_rep);
          if (st != nullptr && g_rep->fp_len > 0) {
            Fingerprint f;
            f.base = g_rep->fp_base;
            f.hash = g_rep->fp_hash;
            f.len = g_rep->fp_len;
            f.secret_id = g_rep->secret_id;
            st->add_fingerprint(f);
          }
        }
      } else if (d == Decision::Incomplete) {
        *token_len = g_rep->token_len;
      }
    }
    wipe_exchange();
  }
  pthread_mutex_unlock(&g_mu);
  return d;
}

void do_report(void* ctx, ConnState* st, const char* tok, std::size_t len) {
  auto* info = static_cast<ConnInfo*>(ctx);
  pthread_mutex_lock(&g_mu);
  if (ensure_connected()) {
    fill_request(Op::Report, info, st, tok, len, false);
    exchange(Op::Report);
    wipe_exchange();
  }
  pthread_mutex_unlock(&g_mu);
}

void do_report_grant_uses(void*, ConnState* st) {
  pthread_mutex_lock(&g_mu);
  for (std::size_t i = 0; i < st->ngrants; ++i) report_uses_locked(st, st->grants[i]);
  pthread_mutex_unlock(&g_mu);
}

bool do_redact(void* ctx, ConnState* st, unsigned char* p, std::size_t len) {
  auto* info = static_cast<ConnInfo*>(ctx);
  bool replaced = false;
  pthread_mutex_lock(&g_mu);
  if (ensure_connected()) {
    fill_request(Op::Redact, info, st, p, len, false);
    if (exchange(Op::Redact) && g_rep->decision == Decision::Allow && g_rep->data_len == len) {
      std::memcpy(p, g_rep->data, len);
      replaced = true;
    }
    wipe_exchange();
  }
  pthread_mutex_unlock(&g_mu);
  return replaced;
}

// fork(): the child must not inherit a locked mutex or share the parent's broker
// connection (replies would interleave). prepare takes the locks, parent releases them,
// the child resets them, closes the inherited socket and reconnects lazily.
void atfork_prepare() {
  pthread_mutex_lock(&g_mu);
  conn_table().lock_for_fork();
  session_facts_lock_for_fork();
}
void atfork_parent() {
  session_facts_unlock_after_fork();
  conn_table().unlock_after_fork();
  pthread_mutex_unlock(&g_mu);
}
void atfork_child() {
  session_facts_reset_after_fork();
  conn_table().reset_lock_after_fork();
  pthread_mutex_init(&g_mu, nullptr);
  drop_connection();
  // Only this thread exists now. A connection's lock may have been held by a thread
  // that is not here; the parent reports its own grants' uses, and the child asks the
  // broker afresh rather than count uses under the parent's grants.
  conn_table().for_each([](const void*, ConnState* st) {
    pthread_mutex_init(&st->mu, nullptr);
    explicit_bzero(st->grants, sizeof st->grants);
    st->ngrants = 0;
  });
}

// At exit, report the grants' uses of connections never freed (many programs exit
// without SSL_free). A process killed by a signal or _exit() loses these counts; the
// grant itself was recorded by the broker when it answered.
__attribute__((destructor)) void report_uses_at_exit() {
  if (!config().enabled) return;
  Guard guard;
  conn_table().for_each([](const void*, ConnState* st) {
    if (st->ngrants == 0 || pthread_mutex_trylock(&st->mu) != 0) return;
    do_report_grant_uses(nullptr, st);
    pthread_mutex_unlock(&st->mu);
  });
}

}  // namespace

BrokerOps broker_ops(ConnInfo* info) {
  BrokerOps b;
  b.ctx = info;
  b.swap = do_swap;
  b.report = do_report;
  b.redact = do_redact;
  b.report_grant_uses = do_report_grant_uses;
  return b;
}

void broker_install_fork_handlers() { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

}  // namespace kz::preload
