// Start-up pieces of the seccomp redirector: the filter itself, the preflight that tells
// whether this process may install a notification listener at all, and the privilege
// question that decides no_new_privs.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "kz/result.h"

namespace kz::seccomp_redirect {

long seccomp_call(unsigned op, unsigned flags, void* arg);
// "EBUSY (Device or resource busy)"
std::string errno_text(int e);

// seccomp(2) without no_new_privs needs CAP_SYS_ADMIN (in our user namespace).
bool has_cap_sys_admin();

// What the preflight child found: the errno of installing a listener filter, and the
// filter flags that worked.
struct Preflight {
  int err = 0;
  unsigned flags = 0;
};
Preflight run_preflight();
// "" when the preflight succeeded, else why the redirector cannot work here.
std::string preflight_reason(const Preflight& p);
// Supervisor features beyond the filter itself; "" when present.
std::string kernel_feature_reason();

// connect → NOTIFY, everything else (and other architectures) ALLOW, as classic BPF.
Result<std::vector<sock_filter>> build_filter();

}  // namespace kz::seccomp_redirect
