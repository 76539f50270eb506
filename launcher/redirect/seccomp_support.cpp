#include "redirect/seccomp_support.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace kz::seccomp_redirect {

bool is_v4_mapped(const sockaddr_in6& a) { return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr); }

bool is_inet_destination(const sockaddr_storage& a, socklen_t len) {
  // 24 bytes: sockaddr_in6 without sin6_scope_id (SIN6_LEN_RFC2133), which the kernel accepts.
  constexpr socklen_t kMinIn6 = offsetof(sockaddr_in6, sin6_scope_id);
  if (a.ss_family == AF_INET) return len >= static_cast<socklen_t>(sizeof(sockaddr_in));
  if (a.ss_family == AF_INET6) return len >= kMinIn6;
  return false;
}

std::optional<SockAddr> proxy_address_for(const sockaddr_storage& dest, const sockaddr_in& proxy4,
                                          const sockaddr_in6& proxy6) {
  SockAddr out;
  if (dest.ss_family == AF_INET) {
    if (proxy4.sin_family != AF_INET) return std::nullopt;
    std::memcpy(&out.addr, &proxy4, sizeof proxy4);
    out.len = sizeof proxy4;
    return out;
  }
  if (dest.ss_family != AF_INET6) return std::nullopt;
  const auto& d6 = reinterpret_cast<const sockaddr_in6&>(dest);
  if (!is_v4_mapped(d6)) {
    if (proxy6.sin6_family != AF_INET6) return std::nullopt;
    std::memcpy(&out.addr, &proxy6, sizeof proxy6);
    out.len = sizeof proxy6;
    return out;
  }
  // An AF_INET6 socket reaches an IPv4 address only through its v4-mapped form.
  if (proxy4.sin_family != AF_INET) return std::nullopt;
  auto& m = reinterpret_cast<sockaddr_in6&>(out.addr);
  m.sin6_family = AF_INET6;
  m.sin6_port = proxy4.sin_port;
  m.sin6_addr.s6_addr[10] = 0xff;
  m.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&m.sin6_addr.s6_addr[12], &proxy4.sin_addr, 4);
  out.len = sizeof m;
  return out;
}

SockAddr loopback_bind_address_for(const sockaddr_storage& dest) {
  SockAddr out;
  if (dest.ss_family == AF_INET) {
    auto& a = reinterpret_cast<sockaddr_in&>(out.addr);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    out.len = sizeof a;
    return out;
  }
  auto& a = reinterpret_cast<sockaddr_in6&>(out.addr);
  a.sin6_family = AF_INET6;
  if (is_v4_mapped(reinterpret_cast<const sockaddr_in6&>(dest))) {
    a.sin6_addr.s6_addr[10] = 0xff;
    a.sin6_addr.s6_addr[11] = 0xff;
    const std::uint32_t lo = htonl(INADDR_LOOPBACK);
    std::memcpy(&a.sin6_addr.s6_addr[12], &lo, 4);
  } else {
    a.sin6_addr = in6addr_loopback;
  }
  out.len = sizeof a;
  return out;
}

bool is_unbound(const sockaddr_storage& local) {
  if (local.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(local);
    return a.sin_port == 0 && a.sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (local.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(local);
    return a.sin6_port == 0 && IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr);
  }
  return false;
}

int wire_family(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return AF_INET;
  if (a.ss_family == AF_INET6)
    return is_v4_mapped(reinterpret_cast<const sockaddr_in6&>(a)) ? AF_INET : AF_INET6;
  return 0;
}

std::optional<ConnKey> key_for(const sockaddr_storage& peer, std::uint16_t local_port) {
  const int f = wire_family(peer);
  if (f == 0 || local_port == 0) return std::nullopt;
  return ConnKey{f, local_port};
}

std::optional<ConnKey> key_of_client(const sockaddr_storage& client) {
  return key_for(client, port_of(client));
}

pid_t parse_tgid(std::string_view status) {
  constexpr std::string_view kField = "Tgid:";
  std::size_t at = 0;
  for (;;) {
    at = status.find(kField, at);
    if (at == std::string_view::npos) return 0;
    if (at == 0 || status[at - 1] == '\n') break;  // a field starts a line
    at += kField.size();
  }
  std::size_t i = at + kField.size();
  while (i < status.size() && (status[i] == ' ' || status[i] == '\t')) ++i;
  pid_t v = 0;
  const char* first = status.data() + i;
  const char* last = status.data() + status.size();
  auto [end, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || end == first || v <= 0) return 0;
  if (end != last && *end != '\n') return 0;
  return v;
}

void OriginalTable::put(ConnKey k, const OriginalDestination& d) {
  std::lock_guard lock(mu_);
  if (auto it = by_key_.find(k); it != by_key_.end()) {
    by_age_.erase(it->second.seq);
    by_key_.erase(it);
  }
  const std::uint64_t seq = next_seq_++;
  by_key_.emplace(k, Entry{seq, d});
  by_age_.emplace(seq, k);
  while (by_key_.size() > capacity_) {
    auto oldest = by_age_.begin();
    by_key_.erase(oldest->second);
    by_age_.erase(oldest);
  }
}

std::optional<OriginalDestination> OriginalTable::take(ConnKey k) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(k);
  if (it == by_key_.end()) return std::nullopt;
  OriginalDestination d = it->second.dest;
  by_age_.erase(it->second.seq);
  by_key_.erase(it);
  return d;
}

std::size_t OriginalTable::size() const {
  std::lock_guard lock(mu_);
  return by_key_.size();
}

}  // namespace kz::seccomp_redirect
