// Load-time configuration and process-level setup (fork handlers).
#include <dlfcn.h>
#include <sys/auxv.h>

#include <cstdlib>
#include <cstring>

#include "broker_socket.h"
#include "kz/wire/protocol.h"
#include "shim.h"
#include "tls_common.h"
#include "shim_lifecycle.h"

namespace kz::preload {

thread_local bool t_in_shim __attribute__((tls_model("initial-exec"))) = false;
thread_local const void* t_handshake __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

constinit Config g_config;

bool copy(char* dst, std::size_t cap, const char* a, const char* b) {
  const std::size_t la = std::strlen(a), lb = std::strlen(b);
  if (la + lb + 1 > cap) return false;
  std::memcpy(dst, a, la);
  std::memcpy(dst + la, b, lb + 1);
  return true;
}

__attribute__((constructor)) void kz_preload_init() {
  Config& c = g_config;
  // setuid/setgid/capability-raising exec: stay inert (the loader already ignores
  // LD_PRELOAD for most such programs; this covers the rest).
  if (getauxval(AT_SECURE) != 0) return;
  const char* broker = std::getenv(wire::kEnvBroker);
  if (broker == nullptr || *broker == '\0') return;   // not under kz run --blind: inert
  const char* preload = std::getenv(wire::kEnvPreload);
  Dl_info info{};
  if ((preload == nullptr || *preload == '\0') &&
      dladdr(reinterpret_cast<void*>(&kz_preload_init), &info) != 0 && info.dli_fname != nullptr)
    preload = info.dli_fname;
  if (preload == nullptr) preload = "";
  if (!copy(c.broker_path, sizeof c.broker_path, broker, "") ||
      !copy(c.preload_path, sizeof c.preload_path, preload, "") ||
      !copy(c.broker_entry, sizeof c.broker_entry, "KZ_BROKER=", broker) ||
      !copy(c.preload_entry, sizeof c.preload_entry, "KZ_PRELOAD=", preload)) {
    log_once("blind mode: KZ_BROKER/KZ_PRELOAD too long; tokens go out unchanged");
    return;
  }
  const char* fix = std::getenv(wire::kEnvFixupLengths);
  c.fixup_lengths = fix != nullptr && std::strcmp(fix, "1") == 0;
  const char* h2 = std::getenv(wire::kEnvHttp2);
  c.http2 = h2 == nullptr || std::strcmp(h2, "0") != 0;
  broker_socket_init();
  install_fork_handlers();
  (void)keylog_env_seen();   // the environment the TLS libraries initialise from
  c.enabled = true;
}

}  // namespace

const Config& config() { return g_config; }

}  // namespace kz::preload
