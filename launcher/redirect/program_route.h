// Can the shim serve this program, or must its connections go to the fallback proxy?
// Decided from the executable itself (ELF headers, dynamic section, symbols, build notes):
//   shim   dynamically linked, and any TLS it does goes through a shared libssl/GnuTLS
//          (linked, or dlopen'ed later as Python does) that the preloaded shim hooks
//   proxy  statically linked; a Go program (own TLS); Java (JSSE); a program that carries
//          its own copy of OpenSSL/BoringSSL/GnuTLS (defines SSL_write, or holds an
//          OpenSSL version banner without linking libssl); not an x86-64 ELF the shim loads in
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "redirect/redirector.h"

namespace kz {

struct ProgramClass {
  Route route = Route::Shim;
  std::string reason;   // "dynamically linked against libssl.so.3", "Go program (own TLS)", ...
};

// Inspects the file at `path` (a script's "#!" interpreter is followed, one level).
ProgramClass classify_executable(const std::string& path);

// True when the ELF file at `path` defines SSL_write, SSL_write_ex or gnutls_record_send
// itself (node, a static binary): TLS taps must be placed on it, not only on the
// system's shared libraries.
bool executable_defines_tls_write(const std::string& path);

// Per-run routing: classifies /proc/PID/exe (cached by device, inode and mtime), and
// reports each (pid, program) decision once through `on_decision` (audit record and a
// verbose log line). Thread-safe.
class ProgramRouter {
 public:
  using DecisionSink = std::function<void(pid_t pid, const std::string& exe, const ProgramClass& c)>;
  ProgramRouter(bool all_programs, DecisionSink on_decision)
      : all_(all_programs), sink_(std::move(on_decision)) {}
  Route route(pid_t pid);

 private:
  bool all_;
  DecisionSink sink_;
  std::mutex mu_;
  std::map<std::tuple<dev_t, ino_t, long>, ProgramClass> by_file_;
  std::map<pid_t, std::tuple<dev_t, ino_t, long>> reported_;
};

}  // namespace kz
