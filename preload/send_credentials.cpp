#include "send_credentials.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace kz::preload {

long send_with_credentials(int fd, const void* buf, std::size_t len) {
  iovec iov{const_cast<void*>(buf), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(ucred));
  ucred cred{static_cast<pid_t>(syscall(SYS_getpid)), static_cast<uid_t>(syscall(SYS_getuid)),
             static_cast<gid_t>(syscall(SYS_getgid))};
  std::memcpy(CMSG_DATA(c), &cred, sizeof cred);
  return syscall(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL);
}

}  // namespace kz::preload
