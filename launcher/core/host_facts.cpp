#include "core/host_facts.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace kz {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string loader_path(const char* soname) {
  void* h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
  if (h == nullptr) return {};
  std::string path;
  link_map* lm = nullptr;
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != nullptr && lm->l_name != nullptr) path = lm->l_name;
  dlclose(h);
  return path;
}

std::vector<std::string> parse_cgroup2_mounts(const std::string& mountinfo) {
  // mountinfo: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
  std::vector<std::string> out;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, dev, root, mnt;
    head >> id >> parent >> dev >> root >> mnt;
    out.push_back(mnt);
  }
  return out;
}

std::string parse_lockdown(const std::string& text) {
  auto b = text.find('[');
  auto e = text.find(']', b);
  if (b == std::string::npos || e == std::string::npos) return "unknown";
  return text.substr(b + 1, e - b - 1);
}

std::vector<std::string> decode_capabilities(unsigned long long cap_eff) {
  static const struct { int bit; const char* name; } kCaps[] = {
      {21, "CAP_SYS_ADMIN"}, {12, "CAP_NET_ADMIN"}, {19, "CAP_SYS_PTRACE"},
      {38, "CAP_PERFMON"},   {39, "CAP_BPF"},
  };
  std::vector<std::string> out;
  for (const auto& c : kCaps)
    if (cap_eff & (1ULL << c.bit)) out.emplace_back(c.name);
  return out;
}

std::string yama_ptrace_scope() {
  std::string s = slurp("/proc/sys/kernel/yama/ptrace_scope");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return "absent";
  return s;
}

HostFacts gather_host_facts() {
  HostFacts f;
  utsname u{};
  if (uname(&u) == 0) f.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  f.btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  f.cgroup2_mounts = parse_cgroup2_mounts(slurp("/proc/self/mountinfo"));
  std::string ld = slurp("/sys/kernel/security/lockdown");
  f.lockdown = ld.empty() ? "unknown (securityfs not readable)" : parse_lockdown(ld);
  f.root = geteuid() == 0;
  std::istringstream status(slurp("/proc/self/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("CapEff:", 0) == 0) f.capabilities = decode_capabilities(std::stoull(line.substr(7), nullptr, 16));
  f.libssl = loader_path("libssl.so.3");
  f.libgnutls = loader_path("libgnutls.so.30");
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) f.memlock_limit = rl.rlim_cur == RLIM_INFINITY ? ~0ULL : rl.rlim_cur;
  f.seccomp_notify = access("/proc/sys/kernel/seccomp/actions_avail", R_OK) == 0 &&
                             slurp("/proc/sys/kernel/seccomp/actions_avail").find("user_notif") != std::string::npos
                         ? "available"
                         : "unavailable (kernel does not list user_notif)";
  f.ptrace_scope = yama_ptrace_scope();
  return f;
}

}  // namespace kz
