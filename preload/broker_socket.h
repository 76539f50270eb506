// The shim's SwapTransport (kz/preload/swap_client.h): SOCK_SEQPACKET connections to
// $KZ_BROKER, one per thread, opened lazily on the thread's first request, so no lock
// is held across a broker round trip and one thread's slow answer never delays
// another's. Each thread's request and reply buffers are mmap'd DONTDUMP and wiped after
// every exchange (the reply carries a value); a thread's connection and buffers go when
// the thread exits. Any failure (no broker, short or malformed reply, timeout) is fail
// closed: the caller sends the token unchanged, and one "kz: ..." line goes to stderr
// once per process.
#pragma once

#include <cstdint>

#include "kz/preload/swap_client.h"

namespace kz::preload {

class BrokerSocket final : public SwapTransport {
 public:
  wire::Request* request() override;
  wire::Reply* exchange() override;
  void warn(const char* msg) override;
  // The calling thread's broker connection is up (a poll with no wait: the broker
  // closes every connection when the run ends); a thread without one connects.
  bool broker_alive() override;
};

// The process's transport (stateless itself: the state is per thread).
BrokerSocket& broker_socket();

// getpid(), kept: the hooks stamp it into their ConnFacts without a system call.
// Set at load time and in a fork child.
extern std::uint32_t g_shim_pid;
inline std::uint32_t shim_pid() { return g_shim_pid; }

// At load time, from the constructor: the thread-exit cleanup and the process id.
void broker_socket_init();

// fork(): prepare/parent hold the list of thread links steady; in the child (one thread
// left) every inherited broker connection is closed without a word on it (the parent
// still talks over them) and the other threads' buffers are wiped and freed. The
// child's thread reconnects on its next request.
void broker_socket_lock_for_fork();
void broker_socket_unlock_after_fork();
void broker_socket_reset_after_fork();

}  // namespace kz::preload
