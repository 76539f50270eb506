#include "send_credentials.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kz::preload {

long send_with_credentials(int fd, const void* buf, std::size_t len) {
  return syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, nullptr, 0);
}

}  // namespace kz::preload
