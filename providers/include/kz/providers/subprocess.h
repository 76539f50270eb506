// Run a helper program (exec provider, `op` CLI) with a deadline and capture its output.
#pragma once

#include <string>
#include <vector>

#include "kz/providers/provider.h"
#include "kz/wipe.h"

namespace kz {

struct SubprocessResult {
  int exit_code = -1;          // -1 when killed by a signal
  int term_signal = 0;
  ScrubbedString out;          // stdout: usually the secret
  std::string err;             // stderr, bounded to 4 KiB (for error messages)
};

struct SubprocessOptions {
  std::vector<std::string> argv;                                // argv[0] looked up in PATH
  std::vector<std::pair<std::string, std::string>> extra_env;   // added to the inherited env
  std::size_t max_output = 1 << 20;                             // larger stdout is an error
};

// On timeout the process group is killed (SIGKILL) and ErrorKind::Timeout returned.
// `what` names the operation for messages, e.g. "exec provider (FROM_CMD)".
Result<SubprocessResult> run_subprocess(const SubprocessOptions& opts, Deadline deadline,
                                        const std::string& what);

}  // namespace kz
