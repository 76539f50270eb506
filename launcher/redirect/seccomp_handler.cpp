// Why the program's own socket is connected to the proxy (through a pidfd_getfd
// duplicate) rather than a new socket being made here and installed over the program's fd
// with SECCOMP_IOCTL_NOTIF_ADDFD (SETFD), as the issue first described:
//   - the duplicate is the same open file description, so everything the program set on
//     its socket stays: O_NONBLOCK, SO_KEEPALIVE, TCP_NODELAY, timeouts, buffer sizes,
//     marks. A replacement socket would silently drop them all (copying each option is a
//     list that is never complete);
//   - the program's connect() keeps its own semantics: a non-blocking socket gets
//     EINPROGRESS and completes later (answered with our connect's result), a blocking
//     one returns when the connection is up;
//   - no fd number is swapped under a running program (another thread of it may be using
//     the number between our ADDFD and the response; epoll registrations made on the old
//     file before connect() would still point at the old file).
#include "redirect/seccomp_handler.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/unique_fd.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL  // linux/pidfd.h, kernel 6.9
#endif

namespace kz::seccomp_redirect {
namespace {

// process_vm_readv needs the same ptrace access as /proc/PID/mem, but some kernels are
// built without it (CONFIG_CROSS_MEMORY_ATTACH); the file is the fallback.
bool read_target_memory(pid_t tid, std::uint64_t remote, void* buf, std::size_t len) {
  iovec local{buf, len};
  iovec rem{reinterpret_cast<void*>(remote), len};
  if (process_vm_readv(tid, &local, 1, &rem, 1, 0) == static_cast<ssize_t>(len)) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/mem", static_cast<int>(tid));
  UniqueFd mem(::open(path, O_RDONLY | O_CLOEXEC));
  if (!mem) return false;
  return ::pread(mem.get(), buf, len, static_cast<off_t>(remote)) == static_cast<ssize_t>(len);
}

// A non-dumpable process: its /proc entries belong to root. The shim makes the agent's
// processes so at their first swap (their TLS goes through the shim, not the proxy), and
// setuid programs are so too; neither is worth a warning.
bool non_dumpable(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d", static_cast<int>(tid));
  struct stat st {};
  return ::stat(path, &st) == 0 && st.st_uid == 0 && ::geteuid() != 0;
}

// The notification names a thread; routing, the pidfd fallback and the answer to the
// proxy want its process.
pid_t tgid_of(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  UniqueFd f(::open(path, O_RDONLY | O_CLOEXEC));
  if (!f) return 0;
  char buf[4096];  // Tgid: is on the fourth line
  const ssize_t n = ::read(f.get(), buf, sizeof buf);
  if (n <= 0) return 0;
  return parse_tgid(std::string_view(buf, static_cast<std::size_t>(n)));
}

// Still the same, still waiting target? Guards against the pid being reused by another
// process between the notification and our access to "its" memory or fds.
bool still_valid(int listener, std::uint64_t id) {
  return ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

// A pidfd for the notifying thread itself (its fd table may differ from the leader's
// after unshare(CLONE_FILES)); kernels before 6.9 only do process pidfds.
UniqueFd open_pidfd(pid_t tid, pid_t tgid) {
  long fd = ::syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
  if (fd < 0 && errno == EINVAL) fd = ::syscall(SYS_pidfd_open, tgid, 0);
  return UniqueFd(static_cast<int>(fd));
}

int int_option(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

bool getsockname_of(int fd, sockaddr_storage& out) {
  out = {};
  socklen_t len = sizeof out;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&out), &len) == 0;
}

}  // namespace

bool NotificationHandler::port_wanted(std::uint16_t port) const {
  return std::find(s_.ports.begin(), s_.ports.end(), port) != s_.ports.end();
}

Verdict NotificationHandler::handle(int listener, const seccomp_notif& n) {
  // The filter notifies only the native connect(); anything else is not ours to judge.
  if (n.data.nr != SYS_connect) return Verdict::let_through();
  const auto tid = static_cast<pid_t>(n.pid);
  // connect(int fd, const struct sockaddr* addr, int addrlen): the kernel reads the ints
  // from the low 32 bits of the registers.
  const int target_fd = static_cast<int>(n.data.args[0]);
  const std::uint64_t addr_ptr = n.data.args[1];
  const int addr_len = static_cast<int>(n.data.args[2]);
  // Out-of-range lengths and null pointers: the kernel fails them itself (EINVAL/EFAULT).
  if (addr_ptr == 0 || addr_len <= 0 || addr_len > static_cast<int>(sizeof(sockaddr_storage)))
    return Verdict::let_through();

  sockaddr_storage dest{};
  if (!read_target_memory(tid, addr_ptr, &dest, static_cast<std::size_t>(addr_len))) {
    const int err = errno;
    if (err == EPERM || err == EACCES) {
      if (non_dumpable(tid))
        spdlog::debug("seccomp redirect: pid {} is non-dumpable; its connections are left to the shim", tid);
      else if (!warned_mem_.exchange(true))
        spdlog::warn("seccomp redirect: cannot read the memory of pid {} ({}); its connections "
                     "are not redirected to the proxy", tid, std::strerror(err));
    }
    return Verdict::let_through();
  }
  if (!still_valid(listener, n.id)) return Verdict::let_through();  // gone: answer is moot
  // The kernel re-reads the address when it runs a CONTINUEd call: a program that changes
  // it in between can only escape the redirect, which costs it the substitution (tokens
  // go out as tokens), never exposes a secret.
  if (!is_inet_destination(dest, static_cast<socklen_t>(addr_len))) return Verdict::let_through();
  if (!port_wanted(port_of(dest))) return Verdict::let_through();
  if (dest.ss_family == AF_INET6) {
    auto& d6 = reinterpret_cast<sockaddr_in6&>(dest);
    if (addr_len < static_cast<int>(sizeof d6)) d6.sin6_scope_id = 0;
  }

  const pid_t tgid = tgid_of(tid);
  if (tgid <= 0) return Verdict::let_through();
  UniqueFd pidfd = open_pidfd(tid, tgid);
  if (!pidfd || !still_valid(listener, n.id)) return Verdict::let_through();
  UniqueFd sock(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), target_fd, 0)));
  if (!sock) {
    // EPERM: ptrace access refused (Yama ptrace_scope 2, a non-dumpable program). EBADF:
    // the program passed a bad fd, which the kernel will tell it.
    if (errno == EPERM && !warned_getfd_.exchange(true))
      spdlog::warn("seccomp redirect: pidfd_getfd on pid {} is not permitted (Yama ptrace_scope, "
                   "or a non-dumpable program); its connections are not redirected to the proxy",
                   tgid);
    return Verdict::let_through();
  }
  // Only a TCP stream socket of the destination's family: anything else is left to the
  // kernel, which connects it or fails it as it would without us.
  if (int_option(sock.get(), SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
      int_option(sock.get(), SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
      int_option(sock.get(), SOL_SOCKET, SO_DOMAIN) != dest.ss_family)
    return Verdict::let_through();
  // Connected, connecting or listening: the kernel answers EISCONN/EALREADY/EINVAL.
  tcp_info ti{};
  socklen_t til = sizeof ti;
  if (::getsockopt(sock.get(), IPPROTO_TCP, TCP_INFO, &ti, &til) != 0 || ti.tcpi_state != TCP_CLOSE)
    return Verdict::let_through();
  // A v6-only socket cannot reach a v4-mapped address; the kernel says ENETUNREACH.
  if (dest.ss_family == AF_INET6 && is_v4_mapped(reinterpret_cast<const sockaddr_in6&>(dest)) &&
      int_option(sock.get(), IPPROTO_IPV6, IPV6_V6ONLY) == 1)
    return Verdict::let_through();
  // The shim serves this program: its TLS writes are rewritten in-process.
  if (!s_.all_programs && s_.route && s_.route(tgid) == Route::Shim) return Verdict::let_through();
  return redirect(sock.get(), dest, tgid);
}

Verdict NotificationHandler::redirect(int sock, const sockaddr_storage& dest, pid_t tgid) {
  const auto proxy = proxy_address_for(dest, s_.proxy4, s_.proxy6);
  if (!proxy) {
    if (!warned_proxy_.exchange(true))
      spdlog::warn("seccomp redirect: no proxy listener for the family of {}; not redirected",
                   format_address(dest));
    return Verdict::let_through();
  }
  // The proxy finds the connection by its client port, so the port must be known (and the
  // entry recorded) before the connection can be accepted: bind first if the program
  // did not. A program's IP_BIND_ADDRESS_NO_PORT would defer the port to connect(); it
  // is lifted for our bind and put back.
  sockaddr_storage local{};
  if (!getsockname_of(sock, local)) return Verdict::result(-errno);
  if (is_unbound(local)) {
    const int no_port = int_option(sock, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT);
    const int zero = 0, one = 1;
    if (no_port == 1) ::setsockopt(sock, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &zero, sizeof zero);
    const SockAddr lo = loopback_bind_address_for(dest);
    const int rc = ::bind(sock, reinterpret_cast<const sockaddr*>(&lo.addr), lo.len);
    const int bind_errno = errno;
    if (no_port == 1) ::setsockopt(sock, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (rc != 0) return Verdict::result(-bind_errno);  // e.g. EADDRNOTAVAIL: no free port
    if (!getsockname_of(sock, local)) return Verdict::result(-errno);
  }
  const auto key = key_for(proxy->addr, port_of(local));
  if (!key) {
    // Bound to an address by the program, port deferred: we cannot learn the port before
    // the proxy could accept. Rare (IP_BIND_ADDRESS_NO_PORT with an explicit address).
    spdlog::debug("seccomp redirect: pid {}: socket bound without a port; {} not redirected", tgid,
                  format_address(dest));
    return Verdict::let_through();
  }
  OriginalDestination orig;
  orig.addr = dest;
  orig.len = dest.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  orig.pid = tgid;
  table_.put(*key, orig);
  // Blocks only for a blocking socket, and then for a local handshake (the proxy's
  // backlog answers it; the accept itself is not awaited).
  const int rc = ::connect(sock, reinterpret_cast<const sockaddr*>(&proxy->addr), proxy->len);
  const int err = rc == 0 ? 0 : -errno;
  if (err != 0 && err != -EINPROGRESS) (void)table_.take(*key);  // nothing for the proxy to find
  spdlog::debug("seccomp redirect: pid {} connect to {} → proxy {} ({})", tgid, format_address(dest),
                format_address(proxy->addr), err == 0 ? "connected" : std::strerror(-err));
  return Verdict::result(err);
}

}  // namespace kz::seccomp_redirect
