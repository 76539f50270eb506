#include "run/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "core/unique_fd.h"
#include "kz/wipe.h"

namespace kz {

namespace {

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
// After the child has exited, output still open (a background grandchild holds the
// pipe) is drained until it has been idle this long.
constexpr int kDrainAfterExitMs = 200;
// Marks an errno reported by child_prepare rather than by exec.
constexpr int kPrepareFailed = 1 << 16;


// Reads what the terminal has now. The terminal is shared with the shell that started
// kz (no O_NONBLOCK on it), and a prompt may have taken what poll() saw: ask first.
ssize_t read_terminal_if_ready(char* buf, std::size_t n) {
  pollfd p{0, POLLIN, 0};
  const int ready = ::poll(&p, 1, 0);
  if (ready == 0) errno = EAGAIN;
  if (ready <= 0) return -1;
  return ::read(0, buf, n);   // readable, hung up or in error: returns at once
}

// Puts kz's terminal in raw mode while the child owns the pseudo-terminal, and
// restores it on every exit path.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(fd_, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() { if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_); }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// Blocks the forwarded signals (they arrive through a signalfd) and restores the mask.
class SignalGuard {
 public:
  SignalGuard() {
    sigemptyset(&set_);
    for (int s : kForwarded) sigaddset(&set_, s);
    sigaddset(&set_, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set_, &old_);
    fd_.reset(signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
    old_pipe_ = signal(SIGPIPE, SIG_IGN);
  }
  ~SignalGuard() {
    fd_.reset();
    sigprocmask(SIG_SETMASK, &old_, nullptr);
    signal(SIGPIPE, old_pipe_);
  }
  int fd() const { return fd_.get(); }
 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
  sighandler_t old_pipe_ = SIG_DFL;
};

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      pollfd pf{fd, POLLOUT, 0};
      ::poll(&pf, 1, -1);
      continue;
    }
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// One masked output channel: child side fd → masker → kz's fd.
struct Channel {
  UniqueFd src;
  int dst = 1;
  std::unique_ptr<StreamMasker> masker;
  bool dst_ok = true;
  std::string out;

  void emit() {
    if (dst_ok && !out.empty()) dst_ok = write_all(dst, out.data(), out.size());
    wipe(out);   // may have held nothing secret, but it is cheap and certain
  }
  void finish() {
    if (masker) masker->flush(out);
    emit();
    src.reset();
  }
};

void child_exec(const SuperviseOptions& o, int in_fd, int out_fd, int err_fd, bool new_session,
                int report_fd, int gate_fd) {
  sigset_t none;
  sigemptyset(&none);
  for (int s : kForwarded) signal(s, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (new_session) {
    setsid();
    ioctl(out_fd, TIOCSCTTY, 0);
  }
  if (in_fd >= 0) dup2(in_fd, 0);
  if (out_fd >= 0) dup2(out_fd, 1);
  if (err_fd >= 0) dup2(err_fd, 2);
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int e = o.child_prepare ? o.child_prepare() : 0;
  // Held until the parent's after_fork has run (see run_supervised): the command does
  // not exec (nor fork) before the parent has registered it. After child_prepare, not
  // before: the seccomp redirector's after_fork waits for the listener that its
  // child_prepare hands over. No byte (the parent is gone without releasing it) means
  // no run.
  if (e == 0 && gate_fd >= 0) {
    char go = 0;
    ssize_t n;
    do { n = ::read(gate_fd, &go, 1); } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);
  }
  if (e != 0) {
    e |= kPrepareFailed;
  } else {
    execvpe(argv[0], argv.data(), o.envp);
    e = errno;
  }
  (void)!::write(report_fd, &e, sizeof e);
  _exit(127);
}

}  // namespace

Result<std::shared_ptr<SupervisorControl>> SupervisorControl::create() {
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return make_error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));
  return std::shared_ptr<SupervisorControl>(new SupervisorControl(fd));
}

SupervisorControl::~SupervisorControl() { ::close(fd_); }

void SupervisorControl::set_masks(std::shared_ptr<const MaskPatterns> masks) {
  {
    std::lock_guard lock(mu_);
    pending_.masks = masks;
    latest_ = std::move(masks);
  }
  const std::uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);
}

void SupervisorControl::restart() {
  {
    std::lock_guard lock(mu_);
    pending_.restart = true;
  }
  const std::uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);
}

SupervisorControl::Pending SupervisorControl::take() {
  std::uint64_t n;
  (void)!::read(fd_, &n, sizeof n);
  std::lock_guard lock(mu_);
  Pending out = std::move(pending_);
  pending_ = Pending{};
  return out;
}

std::shared_ptr<const MaskPatterns> SupervisorControl::masks() const {
  std::lock_guard lock(mu_);
  return latest_;
}

Result<int> run_supervised(const SuperviseOptions& o) {
  auto r = supervise_once(o);
  if (!r) return r.take_error();
  return r->status;
}

Result<SuperviseOutcome> supervise_once(const SuperviseOptions& o) {
  if (o.argv.empty()) return make_error(ErrorKind::Usage, "no command given");
  SignalGuard signals;
  if (signals.fd() < 0) return make_error(ErrorKind::Internal, std::string("signalfd: ") + std::strerror(errno));

  const bool pty_mode = o.mode == OutputMode::Pty;
  const bool stdin_tty = isatty(0) == 1;
  const bool stderr_tty = isatty(2) == 1;

  UniqueFd master, slave, out_r, out_w, err_r, err_w;
  if (pty_mode) {
    int m = -1, s = -1;
    termios tio{};
    winsize ws{};
    termios* tp = tcgetattr(1, &tio) == 0 ? &tio : nullptr;
    winsize* wp = ioctl(1, TIOCGWINSZ, &ws) == 0 ? &ws : nullptr;
    if (openpty(&m, &s, nullptr, tp, wp) != 0)
      return make_error(ErrorKind::Internal, std::string("openpty: ") + std::strerror(errno));
    master.reset(m);
    slave.reset(s);
    fcntl(m, F_SETFD, FD_CLOEXEC);
    fcntl(s, F_SETFD, FD_CLOEXEC);
  }
  if (o.mode == OutputMode::Pipes) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return make_error(ErrorKind::Internal, "pipe failed");
    out_r.reset(p[0]);
    out_w.reset(p[1]);
  }
  if (o.mode == OutputMode::Pipes || (pty_mode && !stderr_tty)) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return make_error(ErrorKind::Internal, "pipe failed");
    err_r.reset(p[0]);
    err_w.reset(p[1]);
  }
  int rep[2];
  if (pipe2(rep, O_CLOEXEC) != 0) return make_error(ErrorKind::Internal, "pipe failed");
  UniqueFd report_r(rep[0]), report_w(rep[1]);

  // With after_fork the child waits on this pipe (after child_prepare) until the parent
  // has run it: the process sensor must have the child's pid as the run's root before
  // the child can fork or exec (an unregistered grandchild would be outside the run for
  // good).
  UniqueFd gate_r, gate_w;
  if (o.after_fork) {
    int g[2];
    if (pipe2(g, O_CLOEXEC) != 0) return make_error(ErrorKind::Internal, "pipe failed");
    gate_r.reset(g[0]);
    gate_w.reset(g[1]);
  }

  if (o.subreaper) prctl(PR_SET_CHILD_SUBREAPER, 1);
  pid_t pid = fork();
  if (pid < 0) return make_error(ErrorKind::Internal, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int in_fd = -1, out_fd = -1, err_fd = -1;
    if (pty_mode) {
      out_fd = slave.get();
      if (stdin_tty) in_fd = slave.get();
      err_fd = stderr_tty ? slave.get() : err_w.get();
    } else if (o.mode == OutputMode::Pipes) {
      out_fd = out_w.get();
      err_fd = err_w.get();
    }
    // The child's own copy of the write end must go, or a parent that dies before the
    // release would leave it waiting for ever instead of seeing end-of-file.
    gate_w.reset();
    child_exec(o, in_fd, out_fd, err_fd, pty_mode, report_w.get(), gate_r.get());
  }
  if (o.after_fork) {
    o.after_fork(pid);
    const char go = 1;
    // SIGPIPE is ignored here (SignalGuard): a child after_fork killed just gets EPIPE.
    if (::write(gate_w.get(), &go, 1) != 1) {
      // The child is gone already; the report pipe below tells the rest.
    }
    gate_w.reset();
    gate_r.reset();
  }
  slave.reset();
  out_w.reset();
  err_w.reset();
  report_w.reset();

  int exec_errno = 0;
  ssize_t rn;
  do { rn = ::read(report_r.get(), &exec_errno, sizeof exec_errno); } while (rn < 0 && errno == EINTR);
  if (rn == static_cast<ssize_t>(sizeof exec_errno)) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if ((exec_errno & kPrepareFailed) != 0)
      return make_error(ErrorKind::Internal, "cannot set up " + o.argv[0] + " for the run: " +
                                                 std::strerror(exec_errno & ~kPrepareFailed));
    const std::string msg = "cannot run " + o.argv[0] + ": " + std::strerror(exec_errno);
    if (exec_errno == ENOENT) return make_error(ErrorKind::NotFound, msg);
    return make_error(ErrorKind::Denied, msg);
  }
  report_r.reset();

  std::vector<Channel> chans;
  auto add_channel = [&](UniqueFd fd, int dst) {
    Channel c;
    c.src = std::move(fd);
    c.dst = dst;
    std::function<void(std::size_t)> trip;
    if (o.on_tripwire) trip = [&o, dst](std::size_t i) { o.on_tripwire(i, dst); };
    c.masker = std::make_unique<StreamMasker>(o.masks, std::move(trip));
    chans.push_back(std::move(c));
  };
  if (pty_mode) add_channel(std::move(master), 1);
  if (out_r) add_channel(std::move(out_r), 1);
  if (err_r) add_channel(std::move(err_r), 2);
  const int master_fd = pty_mode ? chans[0].src.get() : -1;

  std::optional<RawTerminal> raw;
  bool forward_stdin = pty_mode && stdin_tty;
  if (forward_stdin) raw.emplace(0);

  std::optional<int> status;
  SuperviseOutcome outcome;
  outcome.pid = pid;
  // A restart under way: when the grace ends (the restart signal was sent).
  bool restarting = false;
  std::chrono::steady_clock::time_point restart_by{};
  char buf[65536];
  // In pty mode every use of the terminal goes through the prompt's gate: a prompt that
  // opened since the last poll() gets the keystrokes, and no output is written under it
  // (the bytes wait in the pty). Says whether `use` ran.
  const auto through_gate = [&](auto&& use) {
    if (pty_mode && o.stdin_gate != nullptr) return o.stdin_gate->unless_held(use);
    use();
    return true;
  };
  while (true) {
    bool any_open = false, any_pending = false;
    // An approval prompt on the terminal (pty mode): the command's output waits in the
    // pty until it is answered, so it cannot move the cursor and rewrite the prompt.
    const bool prompt_up = pty_mode && o.stdin_gate != nullptr && o.stdin_gate->held();
    std::vector<pollfd> fds;
    fds.push_back({signals.fd(), POLLIN, 0});
    if (o.control) fds.push_back({o.control->fd(), POLLIN, 0});
    for (auto& c : chans) {
      if (!c.src) continue;
      any_open = true;
      any_pending = any_pending || c.masker->has_pending();
      if (!prompt_up) fds.push_back({c.src.get(), POLLIN, 0});
    }
    if (o.stdin_gate != nullptr) fds.push_back({o.stdin_gate->fd(), POLLIN, 0});
    if (forward_stdin && (o.stdin_gate == nullptr || !o.stdin_gate->held())) fds.push_back({0, POLLIN, 0});
    if (status && !any_open) break;
    int timeout = -1;
    if (any_pending) timeout = static_cast<int>(o.idle_flush.count());
    if (status) timeout = timeout < 0 ? kDrainAfterExitMs : std::min(timeout, kDrainAfterExitMs);
    if (restarting && !status) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(restart_by - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        // The grace is over: the command did not end on the restart signal.
        ::kill(pid, SIGKILL);
        outcome.killed = true;
        restarting = false;
      } else {
        const int ms = static_cast<int>(left.count()) + 1;
        timeout = timeout < 0 ? ms : std::min(timeout, ms);
      }
    }
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      if (prompt_up) continue;   // the output waits for the prompt's answer
      // Idle: release held-back bytes so interactive output is never stuck.
      bool flushed = false;
      const bool ran = through_gate([&] {
        for (auto& c : chans)
          if (c.src && c.masker->has_pending()) { c.masker->flush(c.out); c.emit(); flushed = true; }
      });
      if (!ran) continue;   // a prompt opened since the poll: the bytes wait for it
      if (status && !flushed) break;   // child gone and its output has gone quiet
      continue;
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      if (o.control && p.fd == o.control->fd()) {
        SupervisorControl::Pending req = o.control->take();
        if (req.masks)
          for (auto& c : chans)
            if (c.masker) {
              c.masker->set_patterns(req.masks, c.out);
              through_gate([&] { c.emit(); });   // under a prompt the bytes wait in c.out
            }
        if (req.restart && !status && !outcome.restart) {
          outcome.restart = true;
          ::kill(pid, o.restart_signal);
          restart_by = std::chrono::steady_clock::now() + o.restart_grace;
          restarting = true;
        }
        continue;
      }
      if (p.fd == signals.fd()) {
        signalfd_siginfo si{};
        while (::read(signals.fd(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          const int sig = static_cast<int>(si.ssi_signo);
          if (sig == SIGCHLD) {
            int st = 0;
            // As a subreaper kz also reaps adopted descendants; only the command's own
            // status counts.
            for (pid_t w; (w = waitpid(o.subreaper ? -1 : pid, &st, WNOHANG)) > 0;)
              if (w == pid && !status) status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            continue;
          }
          if (sig == SIGWINCH && pty_mode) {
            winsize ws{};
            if (ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master_fd, TIOCSWINSZ, &ws);
            continue;   // the kernel signals the pty's foreground group itself
          }
          // A signal the terminal generated (Ctrl-C) already reached the child when it
          // shares our process group; forward only what it did not get.
          if (!pty_mode && si.ssi_code == SI_KERNEL) continue;
          if (o.take_signal && o.take_signal(sig)) continue;
          if (!status) ::kill(pid, sig);
        }
        continue;
      }
      if (o.stdin_gate != nullptr && p.fd == o.stdin_gate->fd()) {
        o.stdin_gate->drain();   // held or released: the next poll's set says which
        continue;
      }
      if (p.fd == 0 && forward_stdin) {
        // Only the read is gated: what it got was typed before any prompt, and the write
        // to the command may block (a command that stops reading its input) and must not
        // keep a prompt from opening.
        ssize_t r = -1;
        if (!through_gate([&] { r = read_terminal_if_ready(buf, sizeof buf); })) continue;   // a prompt has it
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) forward_stdin = false;
        else write_all(master_fd, buf, static_cast<std::size_t>(r));
        continue;
      }
      for (auto& c : chans) {
        if (!c.src || c.src.get() != p.fd) continue;
        through_gate([&] {
          const ssize_t r = ::read(p.fd, buf, sizeof buf);
          if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
          if (r <= 0) { c.finish(); return; }   // EOF, or EIO on a pty whose slave closed
          c.masker->feed(std::string_view(buf, static_cast<std::size_t>(r)), c.out);
          wipe(buf, static_cast<std::size_t>(r));
          c.emit();
        });
        break;
      }
    }
  }
  for (auto& c : chans)
    if (c.src) c.finish();
  if (!status) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  outcome.status = *status;
  return outcome;
}

}  // namespace kz
