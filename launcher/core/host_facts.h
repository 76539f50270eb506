// Facts about the host that decide which kz features can be active (blind-mode sensors
// and redirectors build on these). Gathered without privileges; each is best effort.
#pragma once

#include <string>
#include <vector>

namespace kz {

struct HostFacts {
  std::string kernel;            // uname -r
  bool btf = false;              // /sys/kernel/btf/vmlinux
  std::vector<std::string> cgroup2_mounts;
  std::string lockdown;          // "none", "integrity", "confidentiality", or "unknown"
  bool root = false;
  std::vector<std::string> capabilities;   // effective, of the ones kz cares about
  std::string libssl;            // path of libssl.so.3 as the dynamic loader finds it, or ""
  std::string libgnutls;         // path of libgnutls.so.30, or ""
  unsigned long long memlock_limit = 0;    // RLIMIT_MEMLOCK soft limit in bytes (~0ull: unlimited)
  std::string seccomp_notify;    // "available" / reason not
  std::string ptrace_scope;      // yama_ptrace_scope()
};

HostFacts gather_host_facts();

// Yama's kernel.yama.ptrace_scope: "0", "1", "2" or "3"; "absent" when Yama is not
// loaded (then any process may ptrace another of its user, as with "0").
std::string yama_ptrace_scope();

// Path of the shared library `soname` as the dynamic loader finds it, or "".
std::string loader_path(const char* soname);

// Parse helpers (exposed for tests).
std::vector<std::string> parse_cgroup2_mounts(const std::string& mountinfo);
std::string parse_lockdown(const std::string& text);   // "[integrity]" among others
std::vector<std::string> decode_capabilities(unsigned long long cap_eff);

}  // namespace kz
