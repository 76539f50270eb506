// One datagram or seqpacket message off a local socket, with the sender's credentials as
// the kernel vouches for them (SO_PASSCRED + SCM_CREDENTIALS). Shared by the broker and
// the sensors' witness socket: both answer only processes they can name.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <optional>

namespace kz {

struct CredentialedMessage {
  long size = 0;                  // the message's real size (MSG_TRUNC); 0: peer closed; <0: -errno
  std::optional<ucred> sender{};  // absent: no credentials came, or descriptors did (refuse it)
};

// Sets SO_PASSCRED on a socket; false (errno set) on failure.
bool enable_sender_credentials(int fd);

// recvmsg() of one message into buf, without blocking. The control buffer holds the
// credentials only, and Linux puts them first, so descriptors passed along (SCM_RIGHTS,
// never expected) do not fit and the kernel drops them (MSG_CTRUNC). Should any arrive
// all the same, they are closed at once and the sender is left absent, so the caller
// refuses the message; MSG_CMSG_CLOEXEC keeps them out of children meanwhile.
// tests/integration/test_sensor_witness.py checks that kz ends up holding none.
CredentialedMessage receive_with_credentials(int fd, void* buf, std::size_t len);

}  // namespace kz
