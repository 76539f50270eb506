#include "secrets/process_tree.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>


namespace kz {

pid_t parent_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return -1;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; skip to the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  char state = 0;
  long ppid = -1;
  rest >> state >> ppid;
  return rest ? static_cast<pid_t>(ppid) : -1;
}

std::string executable_of(pid_t pid) {
  char buf[4096];
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  // /proc/PID/exe needs ptrace access: the shim makes the agent's processes
  // non-dumpable at their first swap, so kz without CAP_SYS_PTRACE reads the process's
  // name instead (/proc/PID/comm is readable by anyone, at most 15 characters).
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!std::getline(comm, name)) return {};
  return name;
}

bool ProcessTree::contains(pid_t pid) const {
  // The root may not be set yet: kz records it after fork() returns in the parent, and
  // the command can run (and reach the broker) first. A child of kz is in the run either
  // way: the only children kz has while the broker runs are the command and orphans it
  // adopted as subreaper.
  if (const ProcessWitness* s = sensor_.load()) return s->contains(pid);
  const pid_t root = root_.load();
  if (pid <= 0 || pid == launcher_) return false;
  for (int depth = 0; pid > 1 && depth < 4096; ++depth) {
    if (pid == root) return true;
    const pid_t parent = parent_of(pid);
    if (parent == launcher_) return true;   // the root itself, or an orphan kz adopted
    pid = parent;
  }
  return false;
}

std::vector<std::string> ProcessTree::lineage(pid_t pid) const {
  const ProcessWitness* s = sensor_.load();
  return s != nullptr ? s->lineage(pid) : std::vector<std::string>{};
}

}  // namespace kz
