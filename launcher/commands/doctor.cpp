// kz doctor: what this host offers kz, and which kz features that makes active.
#include <cstdio>
#include <filesystem>

#include "commands/commands.h"
#include "config/config.h"
#include "doctor/host_facts.h"

namespace kz {

namespace {
void line(const char* key, const std::string& value) { std::printf("%-18s %s\n", key, value.c_str()); }
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "none" : s;
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
  std::string cfg = g.config;
  if (cfg.empty()) {
    auto found = find_config_file(std::filesystem::current_path().string());
    cfg = found ? *found : std::string("none found from ") + std::filesystem::current_path().string();
  }
  line("config", cfg);
  line("masking", "on by default (pseudo-terminal when stdout is a terminal)");
  return kExitOk;
}

}  // namespace kz
