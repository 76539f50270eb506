#include "sensors/link_closer.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace kz {

namespace {

// In the detached process: every fd but `keep` (sorted) closed. Async-signal-safe (the
// parent has threads): raw close_range over the gaps.
void close_all_but(const int* keep, std::size_t n) {
  unsigned int from = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<unsigned int>(keep[i]);
    if (k > from) syscall(SYS_close_range, from, k - 1, 0);
    from = k + 1;
  }
  syscall(SYS_close_range, from, UINT_MAX, 0);
}

}  // namespace

void close_detached(std::vector<UniqueFd> fds) {
  if (fds.empty()) return;
  std::vector<int> keep;
  for (const auto& f : fds)
    if (f) keep.push_back(f.get());
  std::sort(keep.begin(), keep.end());
  // The grandchild waits until this process has dropped its copies, so that its own
  // close is the last (the one that waits for the kernel).
  int gate[2];
  if (pipe2(gate, O_CLOEXEC) != 0) return;   // fds close here, waiting
  keep.push_back(gate[0]);
  std::sort(keep.begin(), keep.end());
  const pid_t child = fork();
  if (child == 0) {
    if (fork() != 0) _exit(0);
    close_all_but(keep.data(), keep.size());
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    close_all_but(nullptr, 0);
    _exit(0);
  }
  close(gate[0]);
  if (child > 0) {
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
  }
  fds.clear();      // this process's copies: not the last when the fork worked
  close(gate[1]);   // the grandchild may go on
}

void LinkCloser::add(UniqueFd fd) {
  batch_.push_back(std::move(fd));
  if (batch_.size() < kBatch) return;
  close_detached(std::move(batch_));
  batch_.clear();
}

void LinkCloser::finish(std::vector<UniqueFd> more) {
  for (auto& f : more) batch_.push_back(std::move(f));
  close_detached(std::move(batch_));
  batch_.clear();
}

}  // namespace kz
