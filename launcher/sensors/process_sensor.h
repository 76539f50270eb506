// The process-tree sensor (bpf/proctree.bpf.c): the exact set of processes of a run,
// kept by the kernel's fork/exec/exit tracepoints rather than by walking /proc (which
// a process that forks, connects and exits quickly can outrun, and which cannot tell
// who a re-parented orphan came from), and each process's lineage from the run's root:
// ["bash", "python3", "curl"].
//
// Needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN), kernel BTF, a kz built with
// eBPF, and the initial PID namespace (the kernel reports pids as that one numbers them).
//
// Thread-safe: the broker thread and the proxy's I/O threads ask contains()/lineage()
// while the sensor's own thread applies events.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kz/result.h"
#include "secrets/process_tree.h"

namespace kz {

class SensorObject;

// What the sensor knows about one process of the run.
struct SensedProcess {
  pid_t pid = 0;
  pid_t ppid = 0;                 // the process that forked it (the launcher for a root)
  std::string exe;                // the last program it executed, as passed to execve; "" if none yet
  std::vector<std::string> argv;  // that program's arguments (the first KZ_PT_ARGV_MAX bytes)
  std::uint64_t start_ns = 0;     // CLOCK_BOOTTIME of its fork (of the exec, for a root)
  std::uint32_t execs = 0;        // programs it has executed so far (0: still its parent's)
  bool exited = false;
  int exit_status = 0;            // wait status, when exited
};

class ProcessSensor : public ProcessWitness {
 public:
  // Loads and attaches the programs and starts the event thread. `launcher` is kz
  // itself: never a member, and the parent recorded for roots.
  static Result<std::unique_ptr<ProcessSensor>> start(pid_t launcher);
  // The same, from the run's one sensors object (shared with the TLS tap).
  static Result<std::unique_ptr<ProcessSensor>> start(pid_t launcher, std::shared_ptr<SensorObject> obj);
  virtual ~ProcessSensor() = default;

  // Makes `root` (and everything it forks from now on) part of the run. Must happen
  // before the root can fork or exec, i.e. while the child waits after fork().
  virtual Status add_root(pid_t root) = 0;
  // True when `pid` is a live process of the run (a root or a descendant of one).
  bool contains(pid_t pid) const override = 0;
  // Executable basenames from the root down to `pid`, e.g. {"bash", "python3", "curl"};
  // empty when `pid` never was part of the run. Waits briefly for events of `pid` and its
  // ancestors the kernel has sent but this process has not read yet.
  std::vector<std::string> lineage(pid_t pid) const override = 0;
  virtual std::optional<SensedProcess> info(pid_t pid) const = 0;
  // Every process of the run seen so far, live or exited.
  virtual std::vector<SensedProcess> snapshot() const = 0;
  // Waits until the exit of `pid` has been seen; false on timeout.
  virtual bool wait_exited(pid_t pid, std::chrono::milliseconds timeout) const = 0;
  // The kernel map of the run's members (for the TLS tap, which filters by it); -1 once
  // stopped. Owned by the sensor.
  virtual int members_map_fd() const = 0;
  // Called on the sensor's thread after each event of a run process is in the table
  // (an exec: the program as passed to execve and its exec count). Set before
  // add_root(); replaces any earlier listener. Any member may be empty.
  struct Listener {
    std::function<void(pid_t child, pid_t parent)> fork;
    std::function<void(pid_t pid, const std::string& exe, std::uint32_t execs)> exec;
    std::function<void(pid_t pid)> exit;
  };
  virtual void set_listener(Listener l) = 0;
  // Detaches the programs and ends the event thread. Idempotent; the destructor calls it.
  virtual void stop() = 0;
};

// "" when the sensor can run here, else why not (for `kz doctor` and `kz run -v`).
std::string process_sensor_unavailable_reason();

}  // namespace kz
