// MCP over stdio: one JSON-RPC message per line on `in`, replies one per line on `out`
// (nothing else is ever written there: logs go to stderr). Ends at EOF on `in`.
// A line longer than `max_message` is skipped to its end and answered with
// -32600 "message too large"; the session goes on.
#pragma once

#include <cstddef>
#include <functional>

#include "kz/result.h"
#include "mcp/mcp_protocol.h"

namespace kz::mcp {

struct StdioOptions {
  std::size_t max_message = 4 << 20;
  // Checked before each request; an error answers it with -32001 and that message
  // (e.g. the identity token has expired).
  std::function<Status()> identity_still_valid;
};

// Returns when `in` reaches EOF (or `out` is closed by the client).
Status serve_stdio(McpProtocol& protocol, const CallContext& ctx, int in_fd, int out_fd, const StdioOptions& opts);

}  // namespace kz::mcp
