// kz doctor: what this host offers kz, and which kz features that makes active.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "blind/preload_path.h"
#include "commands/commands.h"
#include "config/config.h"
#include "core/host_facts.h"
#include "proxy/tls_proxy.h"
#include "redirect/select.h"
#include "sensors/process_sensor.h"
#include "sensors/sensor_object.h"
#include "sensors/tls_tap.h"
#include "sensors/witness_coverage.h"

namespace kz {

namespace {
void line(const char* key, const std::string& value) { std::printf("%-20s %s\n", key, value.c_str()); }
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "none" : s;
}

// The sensors as `kz run` would have them: the cheap checks first, then a real load and
// attach (the verifier or the kernel may still refuse), detached at once.
struct SensorStatus {
  std::string process, tap;
};
SensorStatus sensor_status() {
  SensorStatus st;
  if (auto why = process_sensor_unavailable_reason(); !why.empty()) {
    st.process = st.tap = "unavailable: " + why;
    return st;
  }
  auto obj = SensorObject::load(false);
  if (!obj) {
    st.process = st.tap = "unavailable: " + obj.error().message;
    return st;
  }
  auto s = ProcessSensor::start(getpid(), *obj);
  if (!s) {
    st.process = st.tap = "unavailable: " + s.error().message;
    return st;
  }
  st.process = "active (tracepoints sched_process_fork/exec/exit; exact membership and lineage in every record)";
  TlsTapOptions to;
  to.everyone = true;   // attached for real, so the kernel's answer is the one a run gets
  if (auto t = TlsTap::start(*obj, std::move(to)); !t) {
    st.tap = "unavailable: " + t.error().message;
  } else {
    std::string on;
    for (const auto& a : (*t)->attached()) on += (on.empty() ? "" : ", ") + a;
    st.tap = "active (uprobes on SSL_write/_ex, gnutls_record_send of " + on +
             ", and of run programs with their own copy, for the run's processes the shim does not serve; "
             "--sensors=full: for every write)";
    (*t)->stop();
  }
  (*s)->stop();
  return st;
}

}  // namespace

int cmd_doctor(const GlobalOptions& g) {
  const HostFacts f = gather_host_facts();
  line("kz", "0.1.0");
  line("kernel", f.kernel);
  line("BTF", f.btf ? "yes (/sys/kernel/btf/vmlinux)" : "no (eBPF CO-RE sensors unavailable)");
  line("cgroup v2", f.cgroup2_mounts.empty() ? "not mounted" : join(f.cgroup2_mounts));
  line("lockdown", f.lockdown);
  line("user", f.root ? "root" : "unprivileged");
  line("capabilities", join(f.capabilities));
  line("seccomp notify", f.seccomp_notify);
  line("libssl", f.libssl.empty() ? "not found" : f.libssl);
  line("GnuTLS", f.libgnutls.empty() ? "not found" : f.libgnutls);
  line("memlock limit", f.memlock_limit == ~0ULL ? "unlimited"
                        : std::to_string(f.memlock_limit / 1024) + " KiB (secrets are mlock'd; "
                              "when exhausted they stay dump-excluded but swappable)");
  line("core dumps", "kz is non-dumpable; children run with RLIMIT_CORE=0");
  if (f.ptrace_scope == "0" || f.ptrace_scope == "absent")
    line("ptrace (Yama)",
         "WARNING: " + std::string(f.ptrace_scope == "0" ? "kernel.yama.ptrace_scope is 0" : "Yama is not loaded") +
             ": any process of your user may read another's memory. The shim makes each agent process "
             "non-dumpable at its first swap, which shuts out other processes of the user; before that, and "
             "for programs that undo it, set kernel.yama.ptrace_scope=1 (or use --blind=proxy)");
  else
    line("ptrace (Yama)", "ptrace_scope " + f.ptrace_scope + " (only ancestors" +
                              std::string(f.ptrace_scope == "1" ? "" : ", or nobody without CAP_SYS_PTRACE,") +
                              " may read a process's memory)");
  std::string cfg = g.config;
  if (cfg.empty()) {
    auto found = find_config_file(std::filesystem::current_path().string());
    cfg = found ? *found : std::string("none found from ") + std::filesystem::current_path().string();
  }
  line("config", cfg);
  line("masking", "on by default (pseudo-terminal when stdout is a terminal)");
  // Blind mode: the shim and what it can hook here.
  auto shim = find_preload_library();
  line("blind: shim", shim ? *shim : "not found (looked in " + join(preload_candidates()) + ")");
  line("blind: hooks", std::string(f.libssl.empty() ? "" : "OpenSSL 3 (SSL_write/_ex, SSL_read/_ex, SSL_peek)") +
                           (f.libssl.empty() || f.libgnutls.empty() ? "" : "; ") +
                           (f.libgnutls.empty() ? "" : "GnuTLS (gnutls_record_send/recv)"));
  line("blind: HTTP/2", "swapped by the shim: h2 stays in ALPN offers; header blocks are decoded (HPACK) and "
                       "re-encoded per stream, DATA swapped at equal length or the stream reset; "
                       "[blind] http2 = false removes h2 from offers (HTTP/1.1)");
  const SensorStatus sensors = sensor_status();
  line("blind: process tree", sensors.process.rfind("active", 0) == 0
                                  ? "from the process sensor (eBPF)"
                                  : "from /proc (kz is a child subreaper, so daemonised descendants stay in the run)");
  line("blind: peer trust", "system store (SSL_CERT_FILE/SSL_CERT_DIR honoured) plus [blind] ca_file");
  line("blind: decisions", "secrets with methods/paths: every request; others: once per TLS connection, uses "
                           "reported in batches ([blind] reuse = \"request\" asks every time)");
  // The fallback: which redirect `kz run --blind` would use here, and why.
  const std::string no_ebpf = ebpf_redirect_unavailable_reason();
  const std::string no_seccomp = seccomp_redirect_unavailable_reason();
  line("redirect: ebpf", no_ebpf.empty() ? "available (cgroup/connect4+6 on a cgroup made for each run)"
                                         : "unavailable: " + no_ebpf);
  line("redirect: seccomp", no_seccomp.empty() ? "available (user notification on connect, no privileges needed)"
                                               : "unavailable: " + no_seccomp);
  if (auto c = choose_redirector("auto"); c)
    line("redirect: active", c->name == "off" ? "none: programs the shim cannot serve send tokens unchanged"
                                              : c->name + " (" + c->why + ")");
  line("blind: fallback", "static, Go, Java and bundled-OpenSSL programs → kz's TLS proxy (ports 443 and "
                          "[blind] proxy_ports); --blind=proxy: every program");
  line("sensor: process tree", sensors.process);
  line("sensor: TLS tap", sensors.tap);
  for (const auto& [program, witness] : witness_coverage_examples()) line(("witness: " + program).c_str(), witness);
  line("blind: proxy HTTP/2",
       proxy_relays_h2()
           ? "offered: the proxy offers the client's h2 to the destination and answers with the destination's "
             "choice; tokens are swapped per stream (HPACK) ([blind] http2 = false keeps HTTP/1.1)"
           : "not offered: the proxy selects http/1.1 by ALPN (tokens are swapped in HTTP/1.1)");
  return kExitOk;
}

}  // namespace kz
