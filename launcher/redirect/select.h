// Which redirector a run uses: `auto` takes eBPF when this process may load it (root or
// CAP_BPF + CAP_NET_ADMIN, cgroup v2, BTF), else the seccomp supervisor, else none.
#pragma once

#include <memory>
#include <string>

#include "kz/result.h"
#include "redirect/redirector.h"

namespace kz {

struct RedirectChoice {
  std::string name;   // "ebpf", "seccomp" or "off"
  std::string why;    // for -v and `kz doctor`: "auto: eBPF unavailable (not root), seccomp works"
  bool automatic = false;   // chosen by `auto`: another redirector may stand in if it fails
};

// `wanted`: auto | ebpf | seccomp | off. An explicit choice this machine cannot honour
// is an error naming the reason; `auto` with nothing usable is "off" with the reasons.
Result<RedirectChoice> choose_redirector(const std::string& wanted);
// With an automatic eBPF choice that fails to load, the seccomp supervisor stands in
// (with a warning naming why); `c` then says so.
Result<std::unique_ptr<Redirector>> make_redirector(RedirectChoice& c, const RedirectSettings& s);

}  // namespace kz
