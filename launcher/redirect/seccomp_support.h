// Pure pieces of the seccomp redirector (no system calls on a target process), kept apart
// so that they can be unit-tested without a seccomp filter: address mapping, the key under
// which the proxy finds a redirected connection, /proc parsing and the bounded table of
// original destinations.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>

#include "redirect/redirector.h"

namespace kz::seccomp_redirect {

struct SockAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

bool is_v4_mapped(const sockaddr_in6& a);

// A connect() destination worth looking at: AF_INET with a whole sockaddr_in, or AF_INET6
// with at least the RFC 2133 part of sockaddr_in6 (what the kernel itself accepts). A
// shorter address is left to the kernel, which fails it with EINVAL.
bool is_inet_destination(const sockaddr_storage& a, socklen_t len);

// Where a redirected connect goes: IPv4 → proxy4, IPv6 → proxy6, and a v4-mapped IPv6
// destination → ::ffff:<proxy4 address> with proxy4's port (the connection is IPv4 on the
// wire, so it reaches the IPv4 listener). nullopt when that listener is not configured.
std::optional<SockAddr> proxy_address_for(const sockaddr_storage& dest, const sockaddr_in& proxy4,
                                          const sockaddr_in6& proxy6);

// The loopback address (port 0) an unbound socket is bound to before it is connected to
// the proxy: 127.0.0.1, ::1, or ::ffff:127.0.0.1 for a v4-mapped destination.
SockAddr loopback_bind_address_for(const sockaddr_storage& dest);

// True when a getsockname() result has no port yet and no specific address: the socket is
// unbound (connect would pick both).
bool is_unbound(const sockaddr_storage& local);

// The proxy finds a redirected connection by the client's family and port as accept()
// shows them. The family is the one on the wire: a v4-mapped IPv6 address is IPv4 traffic,
// accepted by the IPv4 listener as AF_INET (or as ::ffff:… by a dual-stack listener).
struct ConnKey {
  int family = 0;
  std::uint16_t port = 0;
  auto operator<=>(const ConnKey&) const = default;
};
// AF_INET for AF_INET and v4-mapped AF_INET6, AF_INET6 for other IPv6, 0 otherwise.
int wire_family(const sockaddr_storage& a);
// The key of a connection whose local port is `local_port` and whose peer is `peer`.
std::optional<ConnKey> key_for(const sockaddr_storage& peer, std::uint16_t local_port);
// The key of a client as the proxy's accept() saw it.
std::optional<ConnKey> key_of_client(const sockaddr_storage& client);

// "Tgid:" from the text of /proc/PID/status; 0 when absent or malformed.
pid_t parse_tgid(std::string_view status);

// Redirected connections waiting for the proxy to ask where they were going. Bounded:
// entries the proxy never asks for (the program closed the socket before the proxy
// accepted it) would otherwise accumulate for the whole run; the oldest go first.
// Thread-safe (the supervisor thread puts, the proxy's threads take).
class OriginalTable {
 public:
  explicit OriginalTable(std::size_t capacity = 4096) : capacity_(capacity ? capacity : 1) {}
  // A newer entry for the same key replaces the old one: the port was reused.
  void put(ConnKey k, const OriginalDestination& d);
  std::optional<OriginalDestination> take(ConnKey k);
  std::size_t size() const;

 private:
  struct Entry {
    std::uint64_t seq;
    OriginalDestination dest;
  };
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::uint64_t next_seq_ = 0;
  std::map<ConnKey, Entry> by_key_;
  std::map<std::uint64_t, ConnKey> by_age_;
};

}  // namespace kz::seccomp_redirect
