// Pauses the supervisor's forwarding of the terminal's input to the command (pty mode)
// while kz itself reads the terminal: an approval prompt (blind/approval_channels.h)
// must get the person's keystrokes, and the command must not see them.
#pragma once

#include <atomic>

namespace kz {

class StdinGate {
 public:
  StdinGate();
  ~StdinGate();
  StdinGate(const StdinGate&) = delete;
  StdinGate& operator=(const StdinGate&) = delete;
  void hold() { set(true); }
  void release() { set(false); }
  bool held() const { return held_.load(); }
  // Readable after each change (an eventfd): the supervisor polls it and drains it.
  int fd() const { return fd_; }
  void drain() const;

 private:
  void set(bool v);
  std::atomic<bool> held_{false};
  int fd_ = -1;
};

}  // namespace kz
