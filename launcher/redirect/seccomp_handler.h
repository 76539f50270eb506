// The seccomp redirector's decision for one connect() notification: let the kernel run
// the call unchanged (CONTINUE), or connect the program's socket to the proxy ourselves
// and answer with that connect's result.
#pragma once

#include <linux/seccomp.h>
#include <sys/types.h>

#include <atomic>

#include "redirect/redirector.h"
#include "redirect/seccomp_support.h"

namespace kz::seccomp_redirect {

struct Verdict {
  bool proceed = true;  // SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel performs the connect
  int error = 0;        // otherwise the call's result: 0 or -errno
  static Verdict let_through() { return {}; }
  static Verdict result(int err) { return {false, err}; }
};

class NotificationHandler {
 public:
  NotificationHandler(const RedirectSettings& s, OriginalTable& table) : s_(s), table_(table) {}
  // `listener` is the seccomp listener (for SECCOMP_IOCTL_NOTIF_ID_VALID).
  Verdict handle(int listener, const seccomp_notif& n);

 private:
  bool port_wanted(std::uint16_t port) const;
  Verdict redirect(int sock, const sockaddr_storage& dest, pid_t tgid);

  const RedirectSettings& s_;
  OriginalTable& table_;
  std::atomic<bool> warned_getfd_{false};
  std::atomic<bool> warned_mem_{false};
  std::atomic<bool> warned_proxy_{false};
};

}  // namespace kz::seccomp_redirect
