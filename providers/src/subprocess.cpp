#include "kz/providers/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace kz {

namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() { if (fd >= 0) ::close(fd); fd = -1; }
};

bool make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  r.fd = p[0];
  w.fd = p[1];
  return true;
}

}  // namespace

Result<SubprocessResult> run_subprocess(const SubprocessOptions& opts, Deadline deadline,
                                        const std::string& what) {
  if (opts.argv.empty()) return make_error(ErrorKind::Internal, what + ": empty command");
  Fd out_r, out_w, err_r, err_w, in_r;
  if (!make_pipe(out_r, out_w) || !make_pipe(err_r, err_w))
    return make_error(ErrorKind::Io, what + ": pipe: " + std::strerror(errno));
  in_r.fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // Environment: inherited, plus/overridden by extra_env.
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    bool overridden = false;
    for (const auto& [k, v] : opts.extra_env)
      if (kv.size() > k.size() && kv.substr(0, k.size()) == k && kv[k.size()] == '=') overridden = true;
    if (!overridden) env_store.emplace_back(kv);
  }
  for (const auto& [k, v] : opts.extra_env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);   // own process group, so a timeout kills all of it
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (auto& s : env_store) wipe(s);
  if (rc != 0)
    return make_error(ErrorKind::NotFound,
                      what + ": cannot start '" + opts.argv[0] + "': " + std::strerror(rc));
  out_w.reset();
  err_w.reset();
  in_r.reset();

  SubprocessResult res;
  bool timed_out = false, too_big = false;
  char buf[4096];
  pollfd fds[2] = {{out_r.fd, POLLIN, 0}, {err_r.fd, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    long left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) { timed_out = true; break; }
    int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (auto& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t r = ::read(p.fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { p.fd = -1; --open_fds; continue; }
      if (p.fd == out_r.fd) {
        if (res.out.str().size() + static_cast<size_t>(r) > opts.max_output) { too_big = true; }
        else {
          // Reserve generously up front so appends rarely reallocate an unwiped copy.
          if (res.out.str().capacity() < 64 * 1024) {
            std::string s;
            s.reserve(64 * 1024);
            s.append(res.out.str());
            wipe(res.out.str());
            res.out.str().swap(s);
          }
          res.out.str().append(buf, static_cast<size_t>(r));
        }
      } else if (res.err.size() < 4096) {
        res.err.append(buf, std::min(static_cast<size_t>(r), 4096 - res.err.size()));
      }
    }
    wipe(buf, sizeof buf);
    if (too_big) break;
  }
  if (timed_out || too_big) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (timed_out) return make_error(ErrorKind::Timeout, what + ": timed out");
  if (too_big) return make_error(ErrorKind::Protocol, what + ": output larger than " +
                                                        std::to_string(opts.max_output) + " bytes");
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) res.term_signal = WTERMSIG(status);
  return res;
}

}  // namespace kz
