// Which processes belong to this run: the agent and its descendants. The broker serves
// only them. With a process sensor (eBPF, sensors/process_sensor.h, seen through ProcessWitness) the answer is the
// kernel's exact set; without one it is read from /proc (parent links), where kz is a
// child subreaper in blind mode, so a descendant that daemonises is re-parented to kz
// and stays in the tree.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

namespace kz {

// What the kernel-side process sensor (sensors/process_sensor.h) knows of the run, seen
// from here: membership and lineage. An interface so that the domain does not depend on
// the eBPF sensors that implement it.
class ProcessWitness {
 public:
  virtual ~ProcessWitness() = default;
  // True when `pid` is a live process of the run.
  virtual bool contains(pid_t pid) const = 0;
  // Executable basenames from the run's root down to `pid`; empty when unknown.
  virtual std::vector<std::string> lineage(pid_t pid) const = 0;
};

class ProcessTree {
 public:
  explicit ProcessTree(pid_t launcher) : launcher_(launcher) {}
  void set_root(pid_t root) { root_.store(root); }
  pid_t root() const { return root_.load(); }
  // True when `pid` is the root or a descendant of it, or of the launcher (re-parented
  // orphans, and the command before set_root() ran), but never the launcher itself.
  bool contains(pid_t pid) const;
  // When set (before the broker starts; the sensor outlives this tree's users),
  // contains() answers from the sensor and lineage() is known.
  void set_sensor(const ProcessWitness* s) { sensor_.store(s); }
  bool has_sensor() const { return sensor_.load() != nullptr; }
  // Executable basenames from the run's root down to `pid` (["bash", "python3", "curl"]);
  // empty without a sensor or for a process outside the run.
  std::vector<std::string> lineage(pid_t pid) const;

 private:
  pid_t launcher_;
  std::atomic<pid_t> root_{0};
  std::atomic<const ProcessWitness*> sensor_{nullptr};
};

// Parent pid from /proc/PID/stat, or -1.
pid_t parent_of(pid_t pid);
// /proc/PID/exe; when that cannot be read (a non-dumpable process, and kz without
// CAP_SYS_PTRACE), the process's name from /proc/PID/comm; "" when neither can.
std::string executable_of(pid_t pid);

}  // namespace kz
