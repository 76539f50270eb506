// `kz approve --run RUN [CODE] [--deny]`: answers a blind run's approval prompt from another shell
// (blind/approval_channels.h). The run refuses an answer from one of its own processes.
#include <cstdio>

#include "blind/approval_channels.h"
#include "commands/commands.h"
#include "core/log.h"

namespace kz {

int cmd_approve(const GlobalOptions&, const ApproveOptions& o) {
  const std::string line = o.code.empty() ? "list" : (o.deny ? "deny " : "approve ") + o.code;
  if (o.run.empty()) {
    spdlog::error("kz approve: name the run with --run RUN (the prompt on its terminal shows it)");
    return kExitConfig;
  }
  auto reply = send_approval_command(o.run, line);
  if (!reply) {
    spdlog::error("{}", reply.error().message);
    return kExitNotFound;
  }
  std::printf("%s\n", reply->c_str());
  const bool answered = o.code.empty() || reply->rfind("approved: ", 0) == 0 || reply->rfind("denied: ", 0) == 0;
  return answered ? kExitOk : kExitConfig;
}

}  // namespace kz
