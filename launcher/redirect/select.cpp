#include "redirect/select.h"

#include "core/log.h"

namespace kz {

Result<RedirectChoice> choose_redirector(const std::string& wanted) {
  if (wanted == "off") return RedirectChoice{"off", "--redirector=off / [blind] redirector = \"off\""};
  if (wanted == "ebpf") {
    if (std::string why = ebpf_redirect_unavailable_reason(); !why.empty())
      return make_error(ErrorKind::Usage, "eBPF redirect is not available here: " + why);
    return RedirectChoice{"ebpf", "chosen explicitly"};
  }
  if (wanted == "seccomp") {
    if (std::string why = seccomp_redirect_unavailable_reason(); !why.empty())
      return make_error(ErrorKind::Usage, "seccomp redirect is not available here: " + why);
    return RedirectChoice{"seccomp", "chosen explicitly"};
  }
  const std::string no_ebpf = ebpf_redirect_unavailable_reason();
  if (no_ebpf.empty()) return RedirectChoice{"ebpf", "auto: privileged (CAP_BPF), cgroup v2 and BTF present", true};
  const std::string no_seccomp = seccomp_redirect_unavailable_reason();
  if (no_seccomp.empty()) return RedirectChoice{"seccomp", "auto: eBPF unavailable (" + no_ebpf + ")", true};
  return RedirectChoice{"off", "eBPF unavailable (" + no_ebpf + "); seccomp unavailable (" + no_seccomp + ")"};
}

Result<std::unique_ptr<Redirector>> make_redirector(RedirectChoice& c, const RedirectSettings& s) {
  if (c.name == "ebpf") {
    auto r = make_ebpf_redirector(s);
    if (r || !c.automatic) return r;
    spdlog::warn("blind mode: the eBPF redirect could not start ({}); using the seccomp supervisor",
                 r.error().message);
    c = RedirectChoice{"seccomp", "auto: eBPF failed to start (" + r.error().message + ")", true};
  }
  if (c.name == "seccomp") return make_seccomp_redirector(s);
  return make_error(ErrorKind::Internal, "no redirector");
}

}  // namespace kz
