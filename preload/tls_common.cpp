#include "tls_common.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "fd_table.h"

namespace kz::preload {

bool wait_fd(int fd, short events) {
  if (fd >= 0 && (fd_flags(fd) & kFdTcp)) {
    pollfd p{fd, events, 0};
    const long rc = syscall(SYS_poll, &p, 1, 120000);
    return rc > 0 || (rc < 0 && errno == EINTR);
  }
  pollfd none{-1, 0, 0};
  syscall(SYS_poll, &none, 0, 1);
  return true;
}

namespace {
std::atomic<bool> g_keylog_env{false};
}

bool keylog_env_seen() {
  if (g_keylog_env.load(std::memory_order_relaxed)) return true;
  const char* v = getenv("SSLKEYLOGFILE");   // no allocation; a pointer into environ
  if (v == nullptr || *v == '\0') return false;
  g_keylog_env.store(true, std::memory_order_relaxed);
  return true;
}

bool fill_host_from_sni(ConnFacts* info, const char* sni, std::size_t sni_len) {
  if (sni == nullptr || sni_len == 0 || sni_len > sizeof info->host) return false;
  std::memcpy(info->host, sni, sni_len);
  info->host_len = sni_len;
  return true;
}

void fill_host_and_peer(ConnFacts* info, int fd, const char* sni, std::size_t sni_len) {
  char ip[64];
  std::size_t ip_len = 0;
  const bool have_peer = fd_peer(fd, info->peer, sizeof info->peer, &info->peer_len, ip, sizeof ip, &ip_len);
  // The name the client asked for, else the peer's IP literal.
  if (!fill_host_from_sni(info, sni, sni_len) && have_peer) {
    std::memcpy(info->host, ip, ip_len);
    info->host_len = ip_len;
  }
}

}  // namespace kz::preload
