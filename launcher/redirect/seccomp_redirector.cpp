// The unprivileged redirector: a seccomp filter in the run's process tree turns every
// connect() into a user notification; a supervisor thread in kz decides each one
// (redirect/seccomp_handler.cpp). Needs no capability: the filter is installed by the
// child itself (with no_new_privs when it lacks CAP_SYS_ADMIN), and the supervisor
// reaches the child's memory and sockets with ordinary same-user ptrace access.
//
// Behaviour worth knowing:
//   - Only the native (x86-64) system call ABI is filtered. The filter's bad-architecture
//     action is ALLOW, so 32-bit (i386, x32) programs still run, unredirected: their
//     tokens leave as tokens (no substitution), nothing leaks.
//   - A program that installs its own seccomp filters stacks them with ours; the kernel
//     takes the strictest verdict, so a program that denies connect() still gets its own
//     denial. A program cannot install a second user-notification listener (EBUSY).
//   - connect() through io_uring (IORING_OP_CONNECT) does not pass through seccomp.
//   - stop() closes the listener: from then on every connect() in the run fails with
//     ENOSYS (pending ones too). It is meant for the end of the run.
//   - One child per redirector: the listener hand-over socket is used once.
//   - Reading a program's connect() address and duplicating its socket need ptrace access
//     to it: under Yama ptrace_scope 2/3, or for a program that is non-dumpable (setuid,
//     unreadable executable), its connections go direct, with one warning.
//   - A connect() made between fork and exec waits for after_fork() to start serving.
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/unique_fd.h"
#include "redirect/redirector.h"
#include "redirect/seccomp_filter.h"
#include "redirect/seccomp_handler.h"
#include "redirect/seccomp_support.h"
#include "core/signal_free_thread.h"

namespace kz {
namespace {

using seccomp_redirect::errno_text;
using seccomp_redirect::NotificationHandler;
using seccomp_redirect::OriginalTable;
using seccomp_redirect::Preflight;
using seccomp_redirect::seccomp_call;
using seccomp_redirect::Verdict;

// How long after_fork waits for the child to hand over its listener.
constexpr int kHandoverTimeoutMs = 10'000;

class SeccompRedirector final : public Redirector {
 public:
  SeccompRedirector(const RedirectSettings& s, std::vector<sock_filter> filter, unsigned flags,
                    bool set_nnp, std::size_t notif_size, UniqueFd parent_end, UniqueFd child_end)
      : settings_(s), filter_(std::move(filter)), flags_(flags), set_nnp_(set_nnp),
        notif_size_(notif_size), parent_end_(std::move(parent_end)),
        child_end_(std::move(child_end)), handler_(settings_, table_) {
    prog_.len = static_cast<unsigned short>(filter_.size());
    prog_.filter = filter_.data();
  }
  ~SeccompRedirector() override { stop(); }

  std::string describe() const override { return "seccomp (user notification on connect)"; }
  int child_prepare() noexcept override;
  Status after_fork(pid_t child) override;
  std::optional<OriginalDestination> take_original(const sockaddr_storage& client) override {
    const auto key = seccomp_redirect::key_of_client(client);
    if (!key) return std::nullopt;
    return table_.take(*key);
  }
  void mark_shim_served(pid_t) override {}  // route() is asked before each redirect
  void stop() override;

 private:
  Status receive_listener(pid_t child);
  void serve();
  void answer(std::uint64_t id, const Verdict& v);

  const RedirectSettings settings_;
  std::vector<sock_filter> filter_;  // prog_ points into it
  sock_fprog prog_{};
  const unsigned flags_;
  const bool set_nnp_;
  const std::size_t notif_size_;
  UniqueFd parent_end_, child_end_;  // listener hand-over (SOCK_SEQPACKET pair)
  UniqueFd listener_, stop_event_;
  OriginalTable table_;
  NotificationHandler handler_;
  std::thread thread_;
  std::mutex stop_mu_;
};

// The child's answer: an errno value, and with 0 the listener as SCM_RIGHTS.
int send_handover(int sock, int err, int fd) noexcept {
  iovec iov{&err, sizeof err};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof err) ? 0 : (n < 0 ? errno : EIO);
}

int SeccompRedirector::child_prepare() noexcept {
  const int sock = child_end_.get();
  if (sock < 0) return EBADF;  // a second child: the hand-over socket is gone
  ::close(parent_end_.get());  // the parent's end, inherited
  long listener = -1;
  int err = 0;
  if (!set_nnp_) {
    listener = seccomp_call(SECCOMP_SET_MODE_FILTER, flags_, &prog_);
    if (listener < 0) err = errno;
  }
  // Without CAP_SYS_ADMIN (or when it was dropped since), no_new_privs is required.
  if (set_nnp_ || err == EACCES) {
    err = 0;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) err = errno;
    if (err == 0) {
      listener = seccomp_call(SECCOMP_SET_MODE_FILTER, flags_, &prog_);
      if (listener < 0) err = errno;
    }
  }
  const int send_err = send_handover(sock, err, static_cast<int>(listener));
  // The listener must not stay in the run's tree: whoever holds it answers its connects.
  if (listener >= 0) ::close(static_cast<int>(listener));
  ::close(sock);
  return err != 0 ? err : send_err;
}

Status SeccompRedirector::receive_listener(pid_t child) {
  child_end_.reset();  // so that a child that dies early shows as end-of-file
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHandoverTimeoutMs);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0)
      return make_error(ErrorKind::Timeout, "the child (pid " + std::to_string(child) +
                        ") did not hand over its seccomp listener within " +
                        std::to_string(kHandoverTimeoutMs / 1000) + "s");
    pollfd p{parent_end_.get(), POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno != EINTR) return make_error(ErrorKind::Io, "poll: " + errno_text(errno));
    if (rc > 0) break;
  }
  int err = 0;
  iovec iov{&err, sizeof err};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(parent_end_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  // Own every fd that arrived before judging the message.
  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  parent_end_.reset();
  const std::string who = "the child (pid " + std::to_string(child) + ")";
  if (n < 0) return make_error(ErrorKind::Io, "receiving the seccomp listener: " + errno_text(errno));
  if (n == 0) return make_error(ErrorKind::Internal, who + " exited before installing the seccomp filter");
  if (n != static_cast<ssize_t>(sizeof err))
    return make_error(ErrorKind::Internal, who + " sent a malformed seccomp hand-over");
  if (err != 0)
    return make_error(ErrorKind::Internal, who + " could not install the seccomp filter: " + errno_text(err));
  if (fds.size() != 1) return make_error(ErrorKind::Internal, who + " sent no seccomp listener");
  listener_ = std::move(fds[0]);
  return ok_status();
}

Status SeccompRedirector::after_fork(pid_t child) {
  if (listener_ || !parent_end_)
    return make_error(ErrorKind::Internal, "the seccomp redirector serves one child only");
  if (auto st = receive_listener(child); !st) return st;
  stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) return make_error(ErrorKind::Io, "eventfd: " + errno_text(errno));
  thread_ = signal_free_thread([this] { serve(); });
  return ok_status();
}

void SeccompRedirector::answer(std::uint64_t id, const Verdict& v) {
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.val = 0;
  resp.error = v.proceed ? 0 : v.error;
  resp.flags = v.proceed ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
  // ENOENT: the target died, or (without WAIT_KILLABLE_RECV) a signal interrupted its call.
  if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0 && errno != ENOENT)
    spdlog::debug("seccomp redirect: answering notification failed: {}", std::strerror(errno));
}

void SeccompRedirector::serve() {
  // The kernel's struct may be larger than this header's; RECV requires it zeroed.
  std::vector<std::uint64_t> buf((std::max(notif_size_, sizeof(seccomp_notif)) + 7) / 8);
  for (;;) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("seccomp redirect: poll failed: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents) return;
    if (p[0].revents & POLLIN) {
      std::fill(buf.begin(), buf.end(), 0);
      auto* n = reinterpret_cast<seccomp_notif*>(buf.data());
      // ENOENT: the target went away between poll and receive.
      if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_RECV, n) != 0) continue;
      answer(n->id, handler_.handle(listener_.get(), *n));
      continue;
    }
    // POLLHUP: no process uses the filter any more (the run's tree is gone and reaped).
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) return;
  }
}

void SeccompRedirector::stop() {
  std::lock_guard lock(stop_mu_);
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(stop_event_.get(), &one, sizeof one);
    thread_.join();
  }
  listener_.reset();
  stop_event_.reset();
  parent_end_.reset();
  child_end_.reset();
}

}  // namespace

std::string seccomp_redirect_unavailable_reason() {
  if (std::string r = seccomp_redirect::preflight_reason(seccomp_redirect::run_preflight()); !r.empty()) return r;
  return seccomp_redirect::kernel_feature_reason();
}

Result<std::unique_ptr<Redirector>> make_seccomp_redirector(const RedirectSettings& s) {
  if (s.proxy4.sin_family != AF_INET && s.proxy6.sin6_family != AF_INET6)
    return make_error(ErrorKind::Internal, "seccomp redirect: no proxy listener address given");
  const Preflight pre = seccomp_redirect::run_preflight();
  if (std::string r = seccomp_redirect::preflight_reason(pre); !r.empty()) return make_error(ErrorKind::Internal, r);
  if (std::string r = seccomp_redirect::kernel_feature_reason(); !r.empty()) return make_error(ErrorKind::Internal, r);
  seccomp_notif_sizes sizes{};
  if (seccomp_call(SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
    return make_error(ErrorKind::Internal, "seccomp(GET_NOTIF_SIZES) failed: " + errno_text(errno));
  auto filter = seccomp_redirect::build_filter();
  if (!filter) return filter.take_error();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return make_error(ErrorKind::Io, "socketpair: " + errno_text(errno));
  UniqueFd parent_end(sv[0]), child_end(sv[1]);
  return std::unique_ptr<Redirector>(std::make_unique<SeccompRedirector>(
      s, std::move(*filter), pre.flags, !seccomp_redirect::has_cap_sys_admin(), sizes.seccomp_notif,
      std::move(parent_end), std::move(child_end)));
}

}  // namespace kz
