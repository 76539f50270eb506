// An owned file descriptor: closed when the owner goes away.
#pragma once

#include <unistd.h>

namespace kz {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept { reset(o.release()); return *this; }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  void reset(int f = -1) { if (fd_ >= 0) ::close(fd_); fd_ = f; }
  explicit operator bool() const { return fd_ >= 0; }
 private:
  int fd_ = -1;
};

}  // namespace kz
