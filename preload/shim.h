// Shared bits of the shim proper (not the pure core): export macro, the re-entrancy
// guard, and the load-time configuration.
#pragma once

#include <cerrno>
#include <cstddef>

#define KZ_EXPORT extern "C" __attribute__((visibility("default")))

namespace kz::preload {

// Set while the shim's own code runs on this thread, so hooks reached from inside it
// (the broker socket's calls, the real SSL_write calling write()) pass straight
// through. initial-exec: no __tls_get_addr call, no allocation on first use.
extern thread_local bool t_in_shim __attribute__((tls_model("initial-exec")));

// The TLS object whose handshake runs on this thread (set by the handshake hooks), so
// the send hooks can note which socket it uses (session_facts.h).
extern thread_local const void* t_handshake __attribute__((tls_model("initial-exec")));

class HandshakeScope {
 public:
  explicit HandshakeScope(const void* session) : prev_(t_handshake) { t_handshake = session; }
  ~HandshakeScope() { t_handshake = prev_; }
  HandshakeScope(const HandshakeScope&) = delete;
  HandshakeScope& operator=(const HandshakeScope&) = delete;
 private:
  const void* prev_;
};

class Guard {
 public:
  Guard() : entered_(!t_in_shim) { t_in_shim = true; }
  ~Guard() { if (entered_) t_in_shim = false; }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  bool entered() const { return entered_; }   // false: we were already inside the shim
 private:
  bool entered_;
};

// Captured once at load time (constructor), kept in static buffers: the exec hooks must
// not allocate, and the agent may unsetenv() these later.
struct Config {
  bool enabled = false;          // KZ_BROKER set, not AT_SECURE
  bool fixup_lengths = false;    // KZ_FIXUP_LENGTHS=1
  bool http2 = true;             // KZ_HTTP2 != "0": h2 stays in ALPN offers (h2.h)
  char broker_path[4096] = {};
  char preload_path[4096] = {};
  char broker_entry[4200] = {};  // "KZ_BROKER=..."
  char preload_entry[4200] = {}; // "KZ_PRELOAD=..."
};
const Config& config();
// Hooks check this first: enabled, and not re-entered.
inline bool shim_active() { return !t_in_shim && config().enabled; }

// A libc hook whose real function is missing (it never is in practice): fail the call.
inline int no_real_function() {
  errno = ENOSYS;
  return -1;
}

// One line "kz: <msg>" on stderr, once per process (never a value or a token).
void log_once(const char* msg);

}  // namespace kz::preload
