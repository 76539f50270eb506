// Closing BPF links without waiting for them. Removing a uprobe link waits for an RCU
// grace period in the kernel (13-30 ms here), inside close(). Links handed to this
// class are closed by a detached process: it holds the last reference to each, so
// that wait is its own, not the run's (neither a write nor the exit status waits).
#pragma once

#include <cstddef>
#include <vector>

#include "core/unique_fd.h"

namespace kz {

// Closes `fds` in a detached process (double fork: init, or the nearest subreaper,
// reaps it). The process keeps nothing else of kz's open: no pipe, terminal or lock
// of kz's outlives kz through it. When the fork fails, the fds are closed here.
void close_detached(std::vector<UniqueFd> fds);

// Links retired during a run: batched, so a run with many short-lived processes does
// not fork once per process. Not thread-safe (the tap's thread owns it).
class LinkCloser {
 public:
  static constexpr std::size_t kBatch = 32;
  ~LinkCloser() { finish({}); }
  void add(UniqueFd fd);
  // The end: these and the batch so far go.
  void finish(std::vector<UniqueFd> more);

 private:
  std::vector<UniqueFd> batch_;
};

}  // namespace kz
