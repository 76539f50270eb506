// One message on a unix socket to kz's broker or its witness socket, which answer only
// processes of the run (launcher/blind/broker_message.h). The receiver has SO_PASSCRED,
// so the kernel attaches this process's pid, uid and gid to every message (and a sender
// cannot name others without CAP_SYS_ADMIN); the shim need not, and asking for them
// would cost three system calls per message. A raw system call: the shim's own socket
// hooks must not see it.
#pragma once

#include <cstddef>

namespace kz::preload {

// send()'s result (bytes sent, or -1 with errno).
long send_with_credentials(int fd, const void* buf, std::size_t len);

}  // namespace kz::preload
