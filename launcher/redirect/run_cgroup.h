// A cgroup v2 directory made for one `kz run`, under kz's own cgroup, so that eBPF
// programs attached to it see exactly the run's processes (and their descendants, which
// inherit the cgroup across fork).
//
// Lifetime: created by RunCgroup::create(); the child joins between fork() and exec()
// with join() (async-signal-safe); remove() (also run by the destructor) moves any
// process still inside back to kz's own cgroup and removes the directory.
#pragma once

#include <atomic>
#include <string>

#include "core/unique_fd.h"
#include "kz/result.h"

namespace kz {

// Where cgroup2 is mounted ("" when it is not), from /proc/self/mountinfo.
std::string cgroup2_mount_point();
// kz's own cgroup v2 directory (mount point + the "0::" path of /proc/self/cgroup).
Result<std::string> own_cgroup2_dir();

class RunCgroup {
 public:
  // Makes "<own cgroup>/kz-run-<pid>-<random>" and opens what the run needs.
  static Result<RunCgroup> create();

  RunCgroup(RunCgroup&& o) noexcept;
  RunCgroup& operator=(RunCgroup&&) = delete;
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  ~RunCgroup();

  const std::string& path() const { return path_; }
  // The directory, opened read-only: what BPF_PROG_ATTACH / bpf_link_create take.
  int dir_fd() const { return dir_.get(); }

  // In the child after fork(): moves the calling process into the cgroup by writing
  // "0" to the cgroup.procs fd opened beforehand. 0, or an errno value.
  int join() const noexcept;

  // Moves processes left inside (also in sub-cgroups the run made) to kz's own cgroup
  // and removes the directories. Idempotent; an error says what stayed behind.
  Status remove();

 private:
  RunCgroup(std::string path, std::string parent, UniqueFd dir, UniqueFd procs);

  std::string path_;     // "" once removed
  std::string parent_;   // kz's own cgroup directory
  UniqueFd dir_;
  UniqueFd procs_;       // <path>/cgroup.procs, O_WRONLY|O_CLOEXEC
  // Read by join() in a forked child: an fd number, or -1 once remove() has started,
  // so a child forked late never writes to a reused descriptor.
  std::atomic<int> procs_fd_{-1};
};

}  // namespace kz
