// Socket hooks: connect() remembers each TCP socket's peer (the audit record's "peer",
// and the host when a TLS connection has no SNI); close() forgets it. The send family
// reports tokens written in the clear on a TCP socket that never carried TLS: they go
// out unchanged (nothing is ever swapped into plaintext), and the broker records the
// refusal, so an attempt to send a credential over plain HTTP is visible in the audit.
//
// Fast path of every send/write: one relaxed atomic load of the fd's flags; only a
// tracked TCP socket without TLS is scanned (one memmem-class pass).
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "broker_socket.h"
#include "fd_table.h"
#include "kz/wire/scanner.h"
#include "kz/wire/token.h"
#include "session_facts.h"
#include "shim.h"
#include "symbols.h"
#include "tls_common.h"

using namespace kz::preload;

namespace {

// Tokens reported per call at most: a buffer full of tokens must not flood the broker.
constexpr int kMaxReportsPerCall = 16;

void plain_fill(ConnFacts* info) {
  const int fd = static_cast<int>(reinterpret_cast<long>(info->ctx));
  fill_host_and_peer(info, fd, nullptr, 0);
}

// Only plain TCP: tracked by connect() and never seen by a TLS hook.
inline bool is_plain_tcp(int fd) { return fd_flags(fd) == kFdTcp; }

// Reports every complete token in [p, p+n); returns how many were reported so far.
int report_tokens(ConnFacts* info, const char* p, std::size_t n, int reported) {
  SwapClient client(broker_socket(), *info);
  std::size_t pos = 0;
  while (pos < n && reported < kMaxReportsPerCall) {
    const std::size_t off = kz::wire::find_token_prefix(p + pos, n - pos);
    if (off == n - pos) break;
    const std::size_t t = pos + off;
    const std::size_t ext = kz::wire::token_extent(p + t, n - t);
    pos = t + ext;
    if (ext <= kz::wire::marker_at(p + t, n - t)) continue;
    client.report(nullptr, p + t, ext);
    ++reported;
  }
  return reported;
}

void scan_plain(int fd, const void* buf, std::size_t n) {
  if (buf == nullptr || n == 0) return;
  const char* p = static_cast<const char*>(buf);
  if (kz::wire::find_token_prefix(p, n) == n) return;
  Guard g;
  ConnFacts info;
  init_facts(&info, kz::wire::Channel::Plain, reinterpret_cast<void*>(static_cast<long>(fd)), plain_fill, nullptr);
  report_tokens(&info, p, n, 0);
}

void scan_plain_iov(int fd, const iovec* iov, std::size_t cnt) {
  if (iov == nullptr) return;
  bool any = false;
  for (std::size_t i = 0; i < cnt && !any; ++i)
    any = iov[i].iov_base != nullptr &&
          kz::wire::find_token_prefix(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len) != iov[i].iov_len;
  if (!any) return;
  Guard g;
  ConnFacts info;
  init_facts(&info, kz::wire::Channel::Plain, reinterpret_cast<void*>(static_cast<long>(fd)), plain_fill, nullptr);
  int reported = 0;
  for (std::size_t i = 0; i < cnt; ++i)
    if (iov[i].iov_base != nullptr)
      reported = report_tokens(&info, static_cast<const char*>(iov[i].iov_base), iov[i].iov_len, reported);
}

// Inside a handshake hook: this socket carries that TLS object's records.
// The socket is then also known to carry TLS (no plain-text scan of its records).
inline void note_handshake_fd(int fd) {
  if (t_handshake == nullptr || !(fd_flags(fd) & kFdTcp)) return;
  session_fd_set(t_handshake, fd);
  fd_mark_tls(fd);
}

bool is_stream_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

}  // namespace

KZ_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  auto real = KZ_REAL(Libc, connect);
  if (real == nullptr) return no_real_function();
  const int rc = real(fd, addr, len);
  if (!shim_active() || addr == nullptr) return rc;
  const int saved = errno;
  if ((rc == 0 || errno == EINPROGRESS) && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
    if (is_stream_socket(fd)) fd_track_tcp(fd, addr, static_cast<unsigned>(len));
    else fd_forget(fd);
  }
  errno = saved;
  return rc;
}

KZ_EXPORT int close(int fd) {
  auto real = KZ_REAL(Libc, close);
  if (real == nullptr) return no_real_function();
  fd_forget(fd);
  return real(fd);
}

KZ_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  auto real = KZ_REAL(Libc, send);
  if (real == nullptr) return no_real_function();
  note_handshake_fd(fd);
  if (is_plain_tcp(fd) && shim_active()) scan_plain(fd, buf, n);
  return real(fd, buf, n, flags);
}

KZ_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t tolen) {
  auto real = KZ_REAL(Libc, sendto);
  if (real == nullptr) return no_real_function();
  note_handshake_fd(fd);
  if (is_plain_tcp(fd) && shim_active()) scan_plain(fd, buf, n);
  return real(fd, buf, n, flags, to, tolen);
}

KZ_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  auto real = KZ_REAL(Libc, write);
  if (real == nullptr) return no_real_function();
  note_handshake_fd(fd);
  if (is_plain_tcp(fd) && shim_active()) scan_plain(fd, buf, n);
  return real(fd, buf, n);
}

KZ_EXPORT ssize_t writev(int fd, const iovec* iov, int cnt) {
  auto real = KZ_REAL(Libc, writev);
  if (real == nullptr) return no_real_function();
  note_handshake_fd(fd);
  if (is_plain_tcp(fd) && shim_active() && cnt > 0) scan_plain_iov(fd, iov, static_cast<std::size_t>(cnt));
  return real(fd, iov, cnt);
}

KZ_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  auto real = KZ_REAL(Libc, sendmsg);
  if (real == nullptr) return no_real_function();
  note_handshake_fd(fd);
  if (is_plain_tcp(fd) && shim_active() && msg != nullptr) scan_plain_iov(fd, msg->msg_iov, msg->msg_iovlen);
  return real(fd, msg, flags);
}
