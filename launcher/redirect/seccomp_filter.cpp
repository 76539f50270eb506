#include "redirect/seccomp_filter.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/unique_fd.h"

namespace kz::seccomp_redirect {

long seccomp_call(unsigned op, unsigned flags, void* arg) {
  return ::syscall(SYS_seccomp, op, flags, arg);
}

std::string errno_text(int e) {
  const char* name = strerrorname_np(e);
  return std::string(name ? name : "errno " + std::to_string(e)) + " (" + std::strerror(e) + ")";
}

// When kz has CAP_SYS_ADMIN, the run keeps the ability to gain privileges through setuid
// programs (sudo in the agent's tree behaves as it would without kz); otherwise
// no_new_privs is the price of an unprivileged filter.
bool has_cap_sys_admin() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

// Installing a NEW_LISTENER filter is tried in a throw-away child (a filter cannot be
// removed): it fails with EBUSY when kz already runs under a notification listener (a
// container runtime or sandbox), EINVAL/ENOSYS on kernels without the feature.
// WAIT_KILLABLE_RECV (5.19) is preferred: once we have received a notification, a signal
// no longer interrupts the program's connect() — we may already have connected its socket,
// and a restarted call would find it connected.
Preflight run_preflight() {
  sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  sock_fprog prog{1, &allow};
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {errno, 0};
  UniqueFd rd(p[0]), wr(p[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return {errno, 0};
  if (pid == 0) {
    // Async-signal-safe only: kz may have other threads.
    Preflight r;
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    r.flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    if (seccomp_call(SECCOMP_SET_MODE_FILTER, r.flags, &prog) < 0) {
      r.err = errno;
      if (r.err == EINVAL) {
        r.flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
        r.err = seccomp_call(SECCOMP_SET_MODE_FILTER, r.flags, &prog) < 0 ? errno : 0;
      }
    }
    (void)!::write(wr.get(), &r, sizeof r);
    ::_exit(0);
  }
  wr.reset();
  Preflight r{EIO, 0};
  ssize_t n;
  do n = ::read(rd.get(), &r, sizeof r);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof r)) r = {EIO, 0};
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return r;
}

std::string preflight_reason(const Preflight& p) {
  if (p.err == 0) return "";
  if (p.err == EBUSY)
    return "kz already runs under a seccomp user-notification supervisor (a container runtime or "
           "sandbox); the kernel allows one listener per process tree (EBUSY)";
  if (p.err == EINVAL || p.err == ENOSYS)
    return "this kernel has no seccomp user notification (needs Linux 5.9+): " + errno_text(p.err);
  return "installing a seccomp user-notification filter failed: " + errno_text(p.err);
}

// Supervisor features beyond the filter itself.
std::string kernel_feature_reason() {
  // pidfd_getfd (5.6) duplicates the program's socket; probed with an invalid pidfd.
  if (::syscall(SYS_pidfd_getfd, -1, 0, 0) < 0 && errno == ENOSYS)
    return "this kernel has no pidfd_getfd (needs Linux 5.6+)";
  return "";
}

namespace {
struct SeccompCtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using SeccompCtx = std::unique_ptr<void, SeccompCtxDeleter>;
}  // namespace

// Built with libseccomp and exported as classic BPF (through a memfd, the only export
// libseccomp has) so that the child only needs the seccomp() system call. The bad-arch
// action is ALLOW: 32-bit programs run, unredirected.
Result<std::vector<sock_filter>> build_filter() {
  SeccompCtx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return make_error(ErrorKind::Internal, "seccomp_init failed");
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW);
  if (rc == 0) rc = seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, SCMP_SYS(connect), 0);
  if (rc != 0)
    return make_error(ErrorKind::Internal, "building the seccomp filter failed: " + errno_text(-rc));
  UniqueFd mem(::memfd_create("kz-seccomp-filter", MFD_CLOEXEC));
  if (!mem) return make_error(ErrorKind::Io, "memfd_create failed: " + errno_text(errno));
  rc = seccomp_export_bpf(ctx.get(), mem.get());
  if (rc != 0)
    return make_error(ErrorKind::Internal, "exporting the seccomp filter failed: " + errno_text(-rc));
  const off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0 || size / sizeof(sock_filter) > BPF_MAXINSNS)
    return make_error(ErrorKind::Internal, "the exported seccomp filter has a bad size");
  std::vector<sock_filter> insns(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), insns.data(), static_cast<std::size_t>(size), 0) != size)
    return make_error(ErrorKind::Io, "reading the exported seccomp filter failed");
  return insns;
}

}  // namespace kz::seccomp_redirect
