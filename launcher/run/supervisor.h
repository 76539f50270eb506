// Start the command and stay with it: forward signals, mask its output (through pipes,
// or a pseudo-terminal when kz's stdout is a terminal), and return its exit status the
// way a shell reports it (code, or 128+signal).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "kz/result.h"
#include "masking/masker.h"
#include "run/stdin_gate.h"

namespace kz {

enum class OutputMode {
  Inherit,   // no masking: the child writes to kz's own stdout/stderr
  Pipes,     // masking through pipes
  Pty,       // masking through a pseudo-terminal (kz's stdout is a terminal)
};

// What a rotation asks of a supervision under way (kz run with `refresh`): mask with new
// patterns, or restart the command (--restart-on-change). Thread-safe: the refresher
// calls it from its thread; the supervisor wakes on fd().
class SupervisorControl {
 public:
  static Result<std::shared_ptr<SupervisorControl>> create();
  ~SupervisorControl();
  SupervisorControl(const SupervisorControl&) = delete;
  SupervisorControl& operator=(const SupervisorControl&) = delete;

  // Every output stream masks with `masks` from now on (and the next start of the command).
  void set_masks(std::shared_ptr<const MaskPatterns> masks);
  // End the command (the restart signal, SIGKILL after the grace) so that it starts again.
  void restart();
  int fd() const { return fd_; }

  struct Pending {
    std::shared_ptr<const MaskPatterns> masks;   // null: unchanged
    bool restart = false;
  };
  // The supervisor's side: what was asked since the last take (and the fd is drained).
  Pending take();
  // The latest masks set (null: none set).
  std::shared_ptr<const MaskPatterns> masks() const;

 private:
  explicit SupervisorControl(int fd) : fd_(fd) {}
  int fd_;
  mutable std::mutex mu_;
  Pending pending_;
  std::shared_ptr<const MaskPatterns> latest_;
};

struct SuperviseOptions {
  std::vector<std::string> argv;
  char** envp = nullptr;
  OutputMode mode = OutputMode::Pipes;
  std::shared_ptr<const MaskPatterns> masks;             // required unless Inherit
  // A tripwire of `masks` (a canary) was seen on fd 1 or 2 of the child's output.
  std::function<void(std::size_t tripwire, int fd)> on_tripwire;
  std::chrono::milliseconds idle_flush{30};              // flush held-back bytes after this
  // Parent side, right after fork. When set, the child waits for it to return after
  // child_prepare and before exec (so the pid can be registered before the command runs;
  // child_prepare may still hand something to after_fork, as the seccomp redirect does).
  std::function<void(pid_t)> after_fork;
  // Child side, between fork and exec (async-signal-safe code only): 0, or an errno that
  // fails the start like a failed exec would (e.g. joining the run's cgroup).
  std::function<int()> child_prepare;
  // Become a child subreaper: descendants that daemonise are re-parented to kz (so the
  // blind-mode broker still sees them as part of the run) and are reaped here.
  bool subreaper = false;
  // pty mode: while held, the terminal's input is not forwarded to the command (an
  // approval prompt reads it). Null: always forwarded.
  const StdinGate* stdin_gate = nullptr;
  // Rotation: requests while the command runs (null: none).
  std::shared_ptr<SupervisorControl> control;
  // A signal kz got: true when kz takes it for itself (SIGHUP: refresh now), so it is not
  // forwarded to the command.
  std::function<bool(int sig)> take_signal;
  // --restart-on-change: how the command is asked to end before it starts again.
  int restart_signal = SIGTERM;
  std::chrono::milliseconds restart_grace{10000};
};

// One supervision: how the command ended, and whether it was for a restart.
struct SuperviseOutcome {
  int status = 0;          // as a shell reports it
  pid_t pid = 0;
  bool restart = false;    // ended because control->restart() asked (the caller starts it again)
  bool killed = false;     // restart: it outlived the grace and got SIGKILL
};
Result<SuperviseOutcome> supervise_once(const SuperviseOptions& opts);

// Exit status of the child (0-255), or an error when it could not be started
// (ErrorKind::NotFound: command not found → 127; Denied: not executable → 126).
Result<int> run_supervised(const SuperviseOptions& opts);

}  // namespace kz
