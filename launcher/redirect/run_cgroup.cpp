#include "redirect/run_cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace kz {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct Cgroup2Mount {
  std::string root;         // the part of the hierarchy mounted there ("/" normally)
  std::string mount_point;
};

std::vector<Cgroup2Mount> cgroup2_mounts() {
  std::vector<Cgroup2Mount> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source super
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point, tok;
    if (!(fields >> id >> parent >> dev >> root >> mount_point)) continue;
    while (fields >> tok && tok != "-") {}
    std::string fstype;
    if (tok == "-" && (fields >> fstype) && fstype == "cgroup2")
      out.push_back({unescape_mountinfo(root), unescape_mountinfo(mount_point)});
  }
  return out;
}

// The "0::/path" line of /proc/self/cgroup ("" when kz is in no cgroup v2 hierarchy).
std::string own_cgroup2_path() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

std::vector<pid_t> read_procs(const std::string& dir) {
  std::vector<pid_t> pids;
  std::ifstream in(dir + "/cgroup.procs");
  long pid = 0;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

// Empties `dir` (sub-cgroups first, then its processes, moved to `dest`) and removes
// it. Processes can fork while being moved, so the move is repeated until the cgroup
// reads empty, a bounded number of times.
bool evacuate_and_remove(const std::string& dir, const std::string& dest, std::string& why) {
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(d)) {
      if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        subdirs.push_back(dir + "/" + e->d_name);
    }
    ::closedir(d);
    for (const auto& sub : subdirs) evacuate_and_remove(sub, dest, why);
  }
  UniqueFd dest_procs(::open((dest + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  for (int round = 0; round < 100; ++round) {
    const auto pids = read_procs(dir);
    if (pids.empty()) break;
    for (pid_t pid : pids) {
      const std::string s = std::to_string(pid);
      // ESRCH: it exited meanwhile, which is as good as moved.
      if (dest_procs && ::write(dest_procs.get(), s.data(), s.size()) < 0 && errno != ESRCH && why.empty())
        why = "cannot move pid " + s + " out of " + dir + ": " + errno_text(errno);
    }
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    if (why.empty()) why = "cannot remove " + dir + ": " + errno_text(errno);
    return false;
  }
  return true;
}

// A kz killed without running its destructors leaves "kz-run-<pid>-<random>" behind.
// Those whose kz is gone are removed when they are empty (rmdir refuses otherwise, so
// a run that is still going, or processes still inside, are never disturbed).
void sweep_stale(const std::string& parent) {
  DIR* d = ::opendir(parent.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    char rest[32];
    if (e->d_type != DT_DIR || std::sscanf(e->d_name, "kz-run-%d-%31s", &pid, rest) != 2 || pid <= 0) continue;
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    stale.push_back(parent + "/" + e->d_name);
  }
  ::closedir(d);
  for (const auto& dir : stale) ::rmdir(dir.c_str());
}

}  // namespace

std::string cgroup2_mount_point() {
  const auto mounts = cgroup2_mounts();
  return mounts.empty() ? "" : mounts.front().mount_point;
}

Result<std::string> own_cgroup2_dir() {
  const auto mounts = cgroup2_mounts();
  if (mounts.empty()) return make_error(ErrorKind::NotFound, "no cgroup2 file system is mounted");
  const std::string path = own_cgroup2_path();
  if (path.empty() || path[0] != '/')
    return make_error(ErrorKind::NotFound, "kz is in no cgroup v2 hierarchy (no \"0::\" line in /proc/self/cgroup)");
  // A mount may show only part of the hierarchy (its root field); kz's cgroup must be
  // inside the part that is visible.
  for (const auto& m : mounts) {
    if (m.root == "/") return m.mount_point + (path == "/" ? "" : path);
    if (path == m.root) return m.mount_point;
    if (path.rfind(m.root + "/", 0) == 0) return m.mount_point + path.substr(m.root.size());
  }
  return make_error(ErrorKind::NotFound,
                    "kz's cgroup " + path + " is not visible under any cgroup2 mount point");
}

RunCgroup::RunCgroup(std::string path, std::string parent, UniqueFd dir, UniqueFd procs)
    : path_(std::move(path)), parent_(std::move(parent)), dir_(std::move(dir)), procs_(std::move(procs)) {
  procs_fd_.store(procs_.get());
}

RunCgroup::RunCgroup(RunCgroup&& o) noexcept
    : path_(std::move(o.path_)), parent_(std::move(o.parent_)), dir_(std::move(o.dir_)),
      procs_(std::move(o.procs_)) {
  o.path_.clear();
  o.procs_fd_.store(-1);
  procs_fd_.store(procs_.get());
}

RunCgroup::~RunCgroup() { (void)remove(); }

Result<RunCgroup> RunCgroup::create() {
  auto parent = own_cgroup2_dir();
  if (!parent) return parent.take_error();
  sweep_stale(*parent);
  std::uint32_t rnd = 0;
  if (::getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
    return make_error(ErrorKind::Internal, "getrandom failed: " + errno_text(errno));
  char name[64];
  std::snprintf(name, sizeof name, "kz-run-%d-%08x", static_cast<int>(::getpid()), rnd);
  std::string path = *parent + "/" + name;
  if (::mkdir(path.c_str(), 0755) != 0)
    return make_error(ErrorKind::Io, "cannot create cgroup " + path + ": " + errno_text(errno));
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd procs(::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!dir || !procs) {
    const int e = errno;
    ::rmdir(path.c_str());
    return make_error(ErrorKind::Io, "cannot open cgroup " + path + ": " + errno_text(e));
  }
  return RunCgroup(std::move(path), std::move(*parent), std::move(dir), std::move(procs));
}

int RunCgroup::join() const noexcept {
  const int fd = procs_fd_.load();
  if (fd < 0) return EBADF;
  // "0" means the writing process: no pid formatting needed in the child.
  if (::write(fd, "0", 1) != 1) return errno ? errno : EIO;
  return 0;
}

Status RunCgroup::remove() {
  if (path_.empty()) return ok_status();
  procs_fd_.store(-1);
  procs_.reset();
  dir_.reset();
  std::string why;
  evacuate_and_remove(path_, parent_, why);
  path_.clear();
  if (!why.empty()) return make_error(ErrorKind::Io, why);
  return ok_status();
}

}  // namespace kz
