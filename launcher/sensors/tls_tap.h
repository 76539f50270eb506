// The TLS plaintext tap (bpf/tlstap.bpf.h): what a run's processes hand to their TLS
// library, seen from the kernel. Uprobes on SSL_write, SSL_write_ex and
// gnutls_record_send of the system's libssl.so.3 and libgnutls.so.30, and of programs
// that carry their own copy (node, a static binary), copy the first KZ_TAP_CAPTURE
// bytes of each write of a run process into a ring buffer; this class hands them to
// `on_write` with the connection's server name and peer. Which processes get probes is
// the caller's choice (run_sensors.h: those the shim does not witness), or every one
// (--sensors=full).
//
// Which processes count is the process sensor's members map: the tap cannot run
// without that sensor. Needs what it needs (root, BTF, a kz built with eBPF).
//
// With stop_on_write, the kernel stops the writing process (SIGSTOP) before the library
// encrypts; `on_write` then decides, and the tap continues or kills the process.
#pragma once

#include <sys/types.h>

#include <chrono>
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

// Processes the kernel stopped at exec until their probes were in (a program with its own
// TLS library: bpf/proctree.bpf.h), and how long they waited.
struct ExecHolds {
  std::uint64_t processes = 0;
  std::uint64_t max_us = 0, total_us = 0;
};

struct TlsTapOptions {
  // --sensors=full: the probes sit in the system's TLS libraries for every process on
  // the host from the start (filtered in the kernel by the run's members), and in each
  // run program with its own copy when it execs. Otherwise a process gets probes only
  // when cover() asks for it, installed into that process alone.
  bool everyone = false;
  // Called on the tap's thread for every captured write, in order.
  std::function<TapVerdict(const TapWrite&)> on_write;
  // A kill the tap carried out (pid, the verdict's write) for the caller's records.
  std::function<void(const TapWrite&, int kill_errno)> on_killed;
  // A process passed to exited() is gone and every write it made has been through
  // on_write (called on the tap's thread).
  std::function<void(pid_t)> on_exited;
};

class SensorObject;

class TlsTap {
 public:
  // From the run's sensors object (its members map, its --on-leak mode).
  static Result<std::unique_ptr<TlsTap>> start(std::shared_ptr<SensorObject> obj, TlsTapOptions opts);
  virtual ~TlsTap() = default;

  // Probes for process `pid`, which runs `exe`, and for it alone (a uprobe_multi link
  // with a pid filter: the kernel installs the breakpoints into that process's memory
  // only, so no other process pays a trap): in the program itself when it carries its
  // own TLS library (defines SSL_write or gnutls_record_send), and, with `libraries`,
  // in the system's libssl and libgnutls, after `delay` (a later cover() or uncover()
  // of the same process before then replaces this one). Without `libraries` the
  // process's probes in those libraries are removed. Returns at once: the tap's thread
  // attaches. A program known to carry its own TLS library was stopped by the kernel at
  // its exec; the tap continues it once its own probes are in (so none of its writes is
  // missed). Library probes for a process the shim does not serve may miss its first
  // milliseconds (documented).
  // With `everyone`, only a program's own TLS library is probed (the libraries are).
  virtual void cover(pid_t pid, const std::string& exe, bool libraries,
                     std::chrono::milliseconds delay = std::chrono::milliseconds(0)) = 0;
  // The process is gone, or another witness covers it: its probes go (their removal
  // waits for the kernel, off the run's path).
  virtual void uncover(pid_t pid) = 0;
  // The process exited. Its last writes may still wait in the ring (the tap drains on a
  // tick, the process sensor reports at once): on_exited(pid) comes after them, so state
  // kept per process (HTTP/2 tables) is not dropped before its last write is read.
  virtual void exited(pid_t pid) = 0;
  // "libssl.so.3 (/usr/lib/x86_64-linux-gnu/libssl.so.3)", ... what the probes are on.
  virtual std::vector<std::string> attached() const = 0;
  // Writes of run processes the kernel could not report (ring buffer full).
  virtual std::uint64_t lost() const = 0;
  // The exec holds so far.
  virtual ExecHolds holds() const = 0;
  // Processes every write already reported, then detaches (the removal of the probes is
  // left to a detached process, so the run's end does not wait for it). Idempotent.
  virtual void stop() = 0;
};

// "" when the tap can run here, else why not.
std::string tls_tap_unavailable_reason();

}  // namespace kz
