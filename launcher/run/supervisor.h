// Start the command and stay with it: forward signals, mask its output (through pipes,
// or a pseudo-terminal when kz's stdout is a terminal), and return its exit status the
// way a shell reports it (code, or 128+signal).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
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
};

// Exit status of the child (0-255), or an error when it could not be started
// (ErrorKind::NotFound: command not found → 127; Denied: not executable → 126).
Result<int> run_supervised(const SuperviseOptions& opts);

}  // namespace kz
