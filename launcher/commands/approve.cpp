// `kz approve [CODE] [--deny]`: answers a blind run's approval prompt from another shell
// (blind/approval_channels.h). The run refuses an answer from one of its own processes.
#include <cstdio>

#include "blind/approval_channels.h"
#include "commands/commands.h"
#include "core/log.h"

namespace kz {

int cmd_approve(const GlobalOptions&, const ApproveOptions& o) {
  const std::string line = o.code.empty() ? "list" : (o.deny ? "deny " : "approve ") + o.code;
  auto replies = send_approval_command(line);
  if (!replies) {
    spdlog::error("{}", replies.error().message);
    return kExitNotFound;
  }
  bool answered = o.code.empty();
  for (const auto& r : *replies) {
    std::printf("%s\n", r.c_str());
    if (r.rfind("approved: ", 0) == 0 || r.rfind("denied: ", 0) == 0) answered = true;
  }
  return answered ? kExitOk : kExitConfig;
}

}  // namespace kz
