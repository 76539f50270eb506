// What the shim knows about file descriptors: TCP sockets (from connect()) with their
// peer address, and whether a TLS library has been seen on them. Plain-TCP reporting
// scans only tracked TCP sockets that never carried TLS; TLS hooks use the peer for the
// audit record and as the host when there is no SNI. Lock-free, fixed size.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::preload {

inline constexpr int kMaxTrackedFd = 65536;
inline constexpr std::uint8_t kFdTcp = 1, kFdTls = 2;

void fd_track_tcp(int fd, const void* sockaddr, unsigned len);
void fd_mark_tls(int fd);
void fd_forget(int fd);
std::uint8_t fd_flags(int fd);   // one relaxed atomic load
// Peer as "ip:port" / "[ip6]:port" and the bare IP literal; false when unknown.
bool fd_peer(int fd, char* peer, std::size_t peer_cap, std::size_t* peer_len, char* ip, std::size_t ip_cap,
             std::size_t* ip_len);

}  // namespace kz::preload
