// The TLS plaintext tap (bpf/tlstap.bpf.c): what the run's processes hand to their TLS
// library, seen independently of the shim. Uprobes on SSL_write, SSL_write_ex and
// gnutls_record_send of the system's libssl.so.3 and libgnutls.so.30, and of every
// program of the run that carries its own copy (node, a static binary), copy the first
// KZ_TAP_CAPTURE bytes of each write of a run process into a ring buffer; this class
// hands them to `on_write` with the connection's server name and peer.
//
// Which processes count is the process sensor's members map: the tap cannot run
// without that sensor. Needs what it needs (root, BTF, a kz built with eBPF).
//
// With stop_on_write, the kernel stops the writing process (SIGSTOP) before the library
// encrypts; `on_write` then decides, and the tap continues or kills the process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kz/result.h"

namespace kz {

struct TapWrite {
  pid_t pid = 0;
  pid_t tid = 0;
  std::string_view function;   // "SSL_write", "SSL_write_ex", "gnutls_record_send"
  std::uint64_t conn = 0;      // the library's connection object (SSL* / gnutls_session_t)
  std::uint64_t len = 0;       // bytes the program wrote; data holds at most KZ_TAP_CAPTURE of them
  std::string_view data;       // the plaintext prefix; valid during the callback only
  std::string sni;             // the server name the program set, or ""
  std::string peer_ip;         // the socket's peer, when the library was given the fd, or ""
  int peer_port = 0;
  // Where it goes, as binding rules name hosts: the server name, else the peer address.
  const std::string& host() const { return sni.empty() ? peer_ip : sni; }
};

enum class TapVerdict { Continue, Kill };

struct TlsTapOptions {
  int members_fd = -1;          // the process sensor's members map
  bool stop_on_write = false;   // --on-leak=kill
  // Called on the tap's thread for every captured write, in order.
  std::function<TapVerdict(const TapWrite&)> on_write;
  // A kill the tap carried out (pid, the verdict's write) for the caller's records.
  std::function<void(const TapWrite&, int kill_errno)> on_killed;
};

// A tap whose BPF programs are verified and loaded but attached nowhere. Loading is the
// costly part (the kernel's BTF, the verifier): kz run does it on a thread while the
// providers resolve, and attaches once it knows what to watch.
class LoadedTlsTap;
struct LoadedTlsTapDeleter {
  void operator()(LoadedTlsTap* p) const;
};
using LoadedTlsTapPtr = std::unique_ptr<LoadedTlsTap, LoadedTlsTapDeleter>;

class TlsTap {
 public:
  // load() then start(): members_fd and stop_on_write are fixed at load.
  static Result<LoadedTlsTapPtr> load(int members_fd, bool stop_on_write);
  static Result<std::unique_ptr<TlsTap>> start(LoadedTlsTapPtr loaded, TlsTapOptions opts);
  static Result<std::unique_ptr<TlsTap>> start(TlsTapOptions opts);
  virtual ~TlsTap() = default;
  // A run process executed `exe`: if that program carries its own TLS library (defines
  // SSL_write or gnutls_record_send), the tap attaches to it too. Returns at once; the
  // attach happens on the tap's thread, so the first writes of a program that starts
  // talking within milliseconds may be missed (documented in the README).
  virtual void watch_program(pid_t pid, const std::string& exe) = 0;
  // "libssl.so.3 (/usr/lib/x86_64-linux-gnu/libssl.so.3)", ... what the probes are on.
  virtual std::vector<std::string> attached() const = 0;
  // Writes of run processes the kernel could not report (ring buffer full).
  virtual std::uint64_t lost() const = 0;
  // Processes every write already reported, then detaches. Idempotent.
  virtual void stop() = 0;
};

// "" when the tap can run here, else why not.
std::string tls_tap_unavailable_reason();

}  // namespace kz
