#include "witness.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "send_credentials.h"
#include "shim.h"
#include "symbols.h"

namespace kz::preload {

namespace {

using witness::Message;
using witness::Op;
using witness::Table;
using witness::Verdict;

// Filled once by the constructor, read-only afterwards.
Table g_table;
std::uint64_t g_filter[witness::kFilterWords];
bool g_on = false;
char g_path[108] = {};
char g_env_entry[sizeof "KZ_WITNESS=" + sizeof g_path] = {};

// The process's connection to kz (one for all threads: sightings are rare).
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
int g_fd = -1;
std::atomic<std::uint64_t> g_writes{0};   // inspected, not yet reported

// (secret, host) pairs kz said are bound: a use to them again is counted here and
// reported at exit, not asked per write (a keep-alive client sends the value in every
// request). Under g_mu. A pair that does not fit is asked each time.
struct BoundUse {
  std::uint16_t secret;
  std::uint64_t more;        // writes after the first
  char host[witness::kMaxHost];
};
constexpr std::size_t kBoundUses = 64;
BoundUse g_bound[kBoundUses];
std::size_t g_nbound = 0;

BoundUse* find_bound_locked(std::uint16_t secret, const char* host) {
  for (std::size_t i = 0; i < g_nbound; ++i)
    if (g_bound[i].secret == secret && std::strcmp(g_bound[i].host, host) == 0) return &g_bound[i];
  return nullptr;
}

void sys_close(int fd) { syscall(SYS_close, fd); }

// Raw system calls throughout: the shim's own socket hooks must not see these.
int connect_kz() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, g_path, sizeof g_path);
  const int fd = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd < 0) return -1;
  timeval tv{30, 0};   // a kz that stops answering must not hang the agent
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (syscall(SYS_connect, fd, &addr, sizeof addr) != 0) {
    sys_close(fd);
    return -1;
  }
  return fd;
}

bool send_message(int fd, const Message& m) {
  return send_with_credentials(fd, &m, sizeof m) == static_cast<long>(sizeof m);
}

long receive(int fd, void* buf, std::size_t len) {
  long got;
  do {
    got = syscall(SYS_recvfrom, fd, buf, len, MSG_TRUNC, nullptr, nullptr);
  } while (got < 0 && errno == EINTR);
  return got;
}

Message message(Op op) {
  Message m{};
  m.magic = witness::kMagic;
  m.op = op;
  return m;
}

// Caller holds g_mu.
bool connected_locked() {
  if (g_fd < 0) g_fd = connect_kz();
  return g_fd >= 0;
}

void report_counts() {
  pthread_mutex_lock(&g_mu);
  for (std::size_t i = 0; i < g_nbound; ++i) {
    if (g_bound[i].more == 0) continue;
    Message u = message(Op::Uses);
    u.secret = g_bound[i].secret;
    u.writes = g_bound[i].more;
    std::memcpy(u.host, g_bound[i].host, sizeof u.host);
    if (connected_locked() && send_message(g_fd, u)) g_bound[i].more = 0;
  }
  const std::uint64_t n = g_writes.exchange(0, std::memory_order_relaxed);
  if (n != 0) {
    Message m = message(Op::Counts);
    m.writes = n;
    if (connected_locked()) send_message(g_fd, m);
  }
  pthread_mutex_unlock(&g_mu);
}

void atfork_prepare() { pthread_mutex_lock(&g_mu); }
void atfork_parent() { pthread_mutex_unlock(&g_mu); }
// The child keeps the tables (same program, same run) and reconnects when it must: the
// parent's connection is the parent's. kz learns of the child from the process tree's
// fork event: a fork child of a process the witness serves is served by it too.
void atfork_child() {
  pthread_mutex_init(&g_mu, nullptr);
  if (g_fd >= 0) sys_close(g_fd);
  g_fd = -1;
  g_writes.store(0, std::memory_order_relaxed);
  for (std::size_t i = 0; i < g_nbound; ++i) g_bound[i].more = 0;   // the parent reports its own
}

bool hello() {
  const int fd = connect_kz();
  if (fd < 0) return false;
  const Message m = message(Op::Hello);
  const bool ok = send_message(fd, m) && receive(fd, &g_table, sizeof g_table) == static_cast<long>(sizeof g_table) &&
                  g_table.magic == witness::kMagic && g_table.accepted == 1;
  if (!ok) {
    sys_close(fd);
    return false;
  }
  g_fd = fd;
  witness::build_filter(g_table, g_filter);
  return true;
}

__attribute__((constructor)) void witness_init() {
  if (getauxval(AT_SECURE) != 0) return;
  const char* path = std::getenv(witness::kEnvWitness);
  if (path == nullptr || *path == '\0' || std::strlen(path) >= sizeof g_path) return;
  std::memcpy(g_path, path, std::strlen(path) + 1);
  std::memcpy(g_env_entry, "KZ_WITNESS=", 11);
  std::memcpy(g_env_entry + 11, g_path, std::strlen(g_path) + 1);
  if (!hello()) {
    log_once("sensors: cannot reach kz's witness socket; this process's TLS writes are left to the kernel's probes");
    return;
  }
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  g_on = true;
}

__attribute__((destructor)) void witness_fini() {
  if (g_on) report_counts();
}

// Where the connection goes: the server name the program set, else the socket's peer.
void fill_peer(int fd, Message* m) {
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return;
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  } else {
    return;
  }
  std::snprintf(m->peer, sizeof m->peer, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
  if (m->host[0] == '\0') std::snprintf(m->host, sizeof m->host, "%s", ip);
}

// Where a connection goes, in two steps: the server name the program set (no system
// call), then the socket's peer. A keep-alive client sends a bound value in every
// request: its sightings are counted on the name alone.
struct Where {
  void (*name)(const void* conn, Message* m);
  void (*peer)(const void* conn, Message* m);
};

void name_ossl(const void* conn, Message* m) {
  auto servername = KZ_REAL(Ssl, SSL_get_servername);
  const char* sni = servername != nullptr
                        ? servername(const_cast<SSL*>(static_cast<const SSL*>(conn)), TLSEXT_NAMETYPE_host_name)
                        : nullptr;
  if (sni == nullptr) return;
  const std::size_t n = strnlen(sni, sizeof m->host - 1);
  std::memcpy(m->host, sni, n);
  m->host[n] = '\0';
}

void peer_ossl(const void* conn, Message* m) {
  auto get_fd = KZ_REAL(Ssl, SSL_get_fd);
  fill_peer(get_fd != nullptr ? get_fd(const_cast<SSL*>(static_cast<const SSL*>(conn))) : -1, m);
}

void name_none(const void*, Message*) {}

void peer_gnutls(const void* conn, Message* m) {
  auto s = static_cast<gnutls_session_t>(const_cast<void*>(conn));
  auto get_int = KZ_REAL(Gnutls, gnutls_transport_get_int);
  fill_peer(get_int != nullptr ? get_int(s) : -1, m);
}

constexpr Where kWhereOssl{name_ossl, peer_ossl};
constexpr Where kWhereGnutls{name_none, peer_gnutls};

// A use of a (secret, host) pair kz said is bound: counted, nothing asked. Caller holds g_mu.
bool counted_locked(std::uint16_t secret, const char* host) {
  BoundUse* b = find_bound_locked(secret, host);
  if (b == nullptr) return false;
  ++b->more;
  return true;
}

// The write path. Only a write holding a sighting leaves the first two lines.
bool inspect(witness::Fn fn, const void* conn, const void* buf, std::size_t len, const Where& where) {
  if (!g_on || t_in_shim || buf == nullptr || len == 0) return false;
  g_writes.fetch_add(1, std::memory_order_relaxed);
  if (g_table.block == 0) return false;
  std::uint16_t seen[8];
  const std::size_t n = witness::scan(g_table, g_filter, static_cast<const unsigned char*>(buf), len, seen, 8);
  if (n == 0) return false;
  Guard guard;   // the library calls below must not come back here
  bool refuse = false;
  for (std::size_t i = 0; i < n; ++i) {
    Message m = message(Op::Sighting);
    m.fn = fn;
    m.secret = seen[i];
    m.wait = 1;
    where.name(conn, &m);
    if (m.host[0] != '\0') {
      pthread_mutex_lock(&g_mu);
      const bool counted = counted_locked(m.secret, m.host);
      pthread_mutex_unlock(&g_mu);
      if (counted) continue;
    }
    where.peer(conn, &m);   // the host is the peer's address when no name was set
    pthread_mutex_lock(&g_mu);
    if (counted_locked(m.secret, m.host)) {
      pthread_mutex_unlock(&g_mu);
      continue;
    }
    m.writes = g_writes.exchange(0, std::memory_order_relaxed);
    Verdict v{};
    const bool answered = connected_locked() && send_message(g_fd, m) &&
                          receive(g_fd, &v, sizeof v) == static_cast<long>(sizeof v) && v.magic == witness::kMagic;
    if (!answered) {
      if (g_fd >= 0) sys_close(g_fd);
      g_fd = -1;
      refuse = refuse || g_table.refuse != 0;   // kill mode fails closed
    } else {
      refuse = refuse || v.refuse != 0;
      if (v.bound != 0 && g_nbound < kBoundUses) {
        BoundUse& b = g_bound[g_nbound++];
        b.secret = m.secret;
        b.more = 0;
        std::memcpy(b.host, m.host, sizeof b.host);
      }
    }
    pthread_mutex_unlock(&g_mu);
  }
  if (refuse) errno = EACCES;
  return refuse;
}

}  // namespace

bool witness_on() { return g_on; }

const char* witness_env_entry() { return g_env_entry[0] != '\0' ? g_env_entry : nullptr; }

bool witness_refuses_ossl(const void* ssl, const void* buf, std::size_t len, witness::Fn fn) {
  return inspect(fn, ssl, buf, len, kWhereOssl);
}

bool witness_refuses_gnutls(const void* session, const void* buf, std::size_t len) {
  return inspect(witness::kGnutlsRecordSend, session, buf, len, kWhereGnutls);
}

}  // namespace kz::preload
