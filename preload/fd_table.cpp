#include "fd_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace kz::preload {

namespace {

struct FdEntry {
  std::atomic<std::uint8_t> flags;
  std::uint8_t family;
  std::uint16_t port;
  unsigned char addr[16];
};

constinit FdEntry g_fds[kMaxTrackedFd] = {};

}  // namespace

void fd_track_tcp(int fd, const void* sa, unsigned len) {
  if (fd < 0 || fd >= kMaxTrackedFd || sa == nullptr) return;
  FdEntry& e = g_fds[fd];
  const auto* s = static_cast<const sockaddr*>(sa);
  if (s->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = static_cast<const sockaddr_in*>(sa);
    e.family = AF_INET;
    e.port = ntohs(in->sin_port);
    std::memcpy(e.addr, &in->sin_addr, 4);
  } else if (s->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = static_cast<const sockaddr_in6*>(sa);
    e.family = AF_INET6;
    e.port = ntohs(in6->sin6_port);
    std::memcpy(e.addr, &in6->sin6_addr, 16);
  } else {
    return;
  }
  e.flags.store(kFdTcp, std::memory_order_release);
}

void fd_mark_tls(int fd) {
  if (fd < 0 || fd >= kMaxTrackedFd) return;
  std::uint8_t f = g_fds[fd].flags.load(std::memory_order_relaxed);
  if ((f & kFdTcp) && !(f & kFdTls)) g_fds[fd].flags.store(f | kFdTls, std::memory_order_release);
}

void fd_forget(int fd) {
  if (fd < 0 || fd >= kMaxTrackedFd) return;
  if (g_fds[fd].flags.load(std::memory_order_relaxed) != 0) g_fds[fd].flags.store(0, std::memory_order_release);
}

std::uint8_t fd_flags(int fd) {
  if (fd < 0 || fd >= kMaxTrackedFd) return 0;
  return g_fds[fd].flags.load(std::memory_order_acquire);
}

bool fd_peer(int fd, char* peer, std::size_t peer_cap, std::size_t* peer_len, char* ip, std::size_t ip_cap,
             std::size_t* ip_len) {
  if (!(fd_flags(fd) & kFdTcp)) return false;
  const FdEntry& e = g_fds[fd];
  char addr[INET6_ADDRSTRLEN];
  if (inet_ntop(e.family, e.addr, addr, sizeof addr) == nullptr) return false;
  int n = e.family == AF_INET6 ? std::snprintf(peer, peer_cap, "[%s]:%u", addr, unsigned{e.port})
                               : std::snprintf(peer, peer_cap, "%s:%u", addr, unsigned{e.port});
  if (n < 0 || static_cast<std::size_t>(n) >= peer_cap) return false;
  *peer_len = static_cast<std::size_t>(n);
  const std::size_t al = std::strlen(addr);
  if (al >= ip_cap) return false;
  std::memcpy(ip, addr, al + 1);
  *ip_len = al;
  return true;
}

}  // namespace kz::preload
