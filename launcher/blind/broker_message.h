// One request off a broker connection, with the credentials the kernel vouches for.
//
// A connected broker socket is a capability: whoever holds a descriptor of it can ask on
// it (a same-user process can take one with pidfd_getfd, or be handed one over
// SCM_RIGHTS). So the broker does not stop at SO_PEERCRED at accept: the listening
// socket has SO_PASSCRED, and every message carries SCM_CREDENTIALS, filled in by the
// kernel (a sender that names credentials itself is checked: without CAP_SYS_ADMIN it
// can name only its own pid, and only its own uids and gids). A message
// is answered only when the process that sent it is the one accepted, or another process
// of this run under the same uid (a fork child that kept the connection).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

#include "core/credentials_message.h"
#include "kz/wire/protocol.h"

namespace kz {

using ReceivedRequest = CredentialedMessage;

// recvmsg() of one message into req, without blocking.
ReceivedRequest receive_request(int fd, wire::Request& req);

// Why a message from `sender` may not be answered on a connection accepted for
// `accepted_pid`; empty when it may. `in_run` says whether a pid is a process of the run.
template <class InRun>
std::string sender_refusal(const std::optional<ucred>& sender, pid_t accepted_pid, uid_t uid, InRun&& in_run) {
  if (!sender || sender->pid <= 0)
    return "request without sender credentials on a connection accepted for pid " + std::to_string(accepted_pid);
  if (sender->uid != uid)
    return "request from uid " + std::to_string(sender->uid) + " on a connection accepted for pid " +
           std::to_string(accepted_pid);
  if (sender->pid == accepted_pid || in_run(sender->pid)) return {};
  return "request from pid " + std::to_string(sender->pid) + ", not a process of this run, on the broker "
         "connection of pid " + std::to_string(accepted_pid) + " (a stolen or passed descriptor)";
}

}  // namespace kz
