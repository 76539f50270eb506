// Pauses the supervisor's use of the terminal (pty mode) while kz itself asks on it: an
// approval prompt (blind/approval_channels.h) must get the person's keystrokes, the
// command must not see them, and the command's output must not paint over the prompt.
#pragma once

#include <atomic>
#include <mutex>

namespace kz {

class StdinGate {
 public:
  StdinGate();
  ~StdinGate();
  StdinGate(const StdinGate&) = delete;
  StdinGate& operator=(const StdinGate&) = delete;
  // Once hold() returns, no unless_held() block is under way or can start: the prompt's
  // tcflush and reads get every keystroke typed after it, and no output follows it.
  void hold() { set(true); }
  void release() { set(false); }
  bool held() const { return held_.load(); }
  // Runs f (one read of the terminal, or one read and write of the command's output)
  // unless held; says whether it ran. Checking held() and then acting would race a
  // prompt that opens in between: the answer would go to the command, or the command's
  // output would be written under the prompt.
  template <class F>
  bool unless_held(F&& f) const {
    std::lock_guard lock(mu_);
    if (held_.load()) return false;
    f();
    return true;
  }
  // Readable after each change (an eventfd): the supervisor polls it and drains it.
  int fd() const { return fd_; }
  void drain() const;

 private:
  void set(bool v);
  mutable std::mutex mu_;   // taken by set() and across each unless_held() block
  std::atomic<bool> held_{false};
  int fd_ = -1;
};

}  // namespace kz
