#include "run/stdin_gate.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace kz {

StdinGate::StdinGate() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

StdinGate::~StdinGate() {
  if (fd_ >= 0) ::close(fd_);
}

void StdinGate::set(bool v) {
  {
    std::lock_guard lock(mu_);
    held_.store(v);
  }
  const std::uint64_t one = 1;
  if (::write(fd_, &one, sizeof one) < 0) {}
}

void StdinGate::drain() const {
  std::uint64_t n;
  while (::read(fd_, &n, sizeof n) > 0) {}
}

}  // namespace kz
