#include "run/survivors.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "core/unique_fd.h"
#include "secrets/process_tree.h"

namespace kz {

namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
bool pidfd_signal(int pidfd, int sig) { return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0; }

// Reaps every exited child of ours (adopted orphans included) without blocking.
void reap_children() {
  int st = 0;
  while (::waitpid(-1, &st, WNOHANG) > 0) {}
}

// Waits until every pidfd has exited or the deadline passes; returns the still-alive ones.
std::vector<std::size_t> wait_exit(const std::vector<UniqueFd>& fds, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::vector<std::size_t> alive;
  for (std::size_t i = 0; i < fds.size(); ++i)
    if (fds[i]) alive.push_back(i);
  while (!alive.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::vector<pollfd> p;
    for (std::size_t i : alive) p.push_back({fds[i].get(), POLLIN, 0});
    const int n = ::poll(p.data(), p.size(), static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::vector<std::size_t> still;
    for (std::size_t k = 0; k < p.size(); ++k)
      if (p[k].revents == 0) still.push_back(alive[k]);
    alive.swap(still);
    reap_children();   // the exited children's zombies, so their own children come to us
  }
  return alive;
}

// cgroup.kill (Linux 5.14): SIGKILL to every process of the cgroup and its descendants,
// atomically with respect to fork. Best effort: the pidfd SIGKILLs follow anyway.
void kill_cgroup(const std::string& dir) {
  UniqueFd f(::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
  if (f && ::write(f.get(), "1", 1) != 1) {}
}

// State Z: exited, waiting for its parent to reap it; no survivor.
bool is_zombie(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return true;   // gone altogether
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z';
}

}  // namespace

std::vector<Survivor> find_descendants(pid_t ancestor) {
  std::map<pid_t, pid_t> parent;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || pid <= 0) continue;
      const pid_t pp = parent_of(static_cast<pid_t>(pid));
      if (pp > 0) parent[static_cast<pid_t>(pid)] = pp;
    }
    ::closedir(d);
  }
  // Breadth first from the ancestor: children before grandchildren.
  std::vector<Survivor> out;
  std::vector<pid_t> level{ancestor};
  std::set<pid_t> seen{ancestor};
  while (!level.empty()) {
    std::vector<pid_t> next;
    for (const auto& [pid, pp] : parent) {
      for (pid_t up : level)
        if (pp == up && seen.insert(pid).second) next.push_back(pid);
    }
    for (pid_t p : next) {
      if (is_zombie(p)) continue;
      out.push_back({p, executable_of(p), {}});
    }
    level.swap(next);
  }
  return out;
}

std::vector<Survivor> end_survivors(pid_t self, const EndOptions& opts) {
  std::vector<Survivor> all;
  reap_children();
  for (int round = 0; round < 8; ++round) {
    std::vector<Survivor> found = find_descendants(self);
    if (found.empty()) break;
    if (opts.keep) {
      for (auto& s : found) s.fate = "kept";
      all.insert(all.end(), found.begin(), found.end());
      break;
    }
    std::vector<UniqueFd> fds;
    for (auto& s : found) {
      UniqueFd fd(pidfd_open(s.pid));
      if (!fd || !pidfd_signal(fd.get(), SIGTERM)) {
        s.fate = "gone";
        fds.emplace_back();
        continue;
      }
      s.fate = "terminated";
      fds.push_back(std::move(fd));
    }
    const std::vector<std::size_t> left = wait_exit(fds, opts.grace);
    if (!left.empty() && !opts.cgroup.empty()) kill_cgroup(opts.cgroup);
    for (std::size_t i : left) {
      pidfd_signal(fds[i].get(), SIGKILL);   // also where cgroup.kill is missing (< 5.14)
      found[i].fate = "killed";
    }
    wait_exit(fds, std::chrono::milliseconds(2000));   // SIGKILL is prompt; never wait forever
    reap_children();
    for (auto& s : found)
      if (s.fate != "gone") all.push_back(std::move(s));
  }
  return all;
}

std::string describe(const Survivor& s) {
  return std::to_string(s.pid) + " " + (s.exe.empty() ? std::string("?") : s.exe) + " (" + s.fate + ")";
}

}  // namespace kz
