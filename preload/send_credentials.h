// One message on a unix socket with SCM_CREDENTIALS naming this process: kz's broker and
// its witness socket answer only processes of the run (launcher/blind/broker_message.h).
// The kernel fills in credentials anyway (the receiver's SO_PASSCRED); naming them here
// makes each message state who sends it, and the kernel refuses a pid or uid that is not
// ours. A raw system call: the shim's own socket hooks must not see it.
#pragma once

#include <cstddef>

namespace kz::preload {

// sendmsg()'s result (bytes sent, or -1 with errno).
long send_with_credentials(int fd, const void* buf, std::size_t len);

}  // namespace kz::preload
