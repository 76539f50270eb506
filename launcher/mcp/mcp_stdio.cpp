#include "mcp/mcp_stdio.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kz::mcp {

namespace {

bool write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

Status serve_stdio(McpProtocol& protocol, const CallContext& ctx, int in_fd, int out_fd, const StdioOptions& opts) {
  SessionState session;
  std::string line;
  bool skipping = false;   // inside a line that is over the limit
  char buf[65536];
  auto answer = [&](const nlohmann::json& reply) {
    return write_all(out_fd, reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  };
  auto handle_line = [&]() -> bool {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) return true;
    // Parsed once here: the identity check and the protocol both read the message.
    const auto msg = nlohmann::json::parse(line, nullptr, false);
    if (msg.is_discarded()) {
      auto reply = protocol.handle_text(line, session, ctx);   // the parse error's answer and audit
      return !reply || answer(*reply);
    }
    // Only requests are refused; a notification has nobody to tell.
    if (opts.identity_still_valid && McpProtocol::is_request(msg) && msg["method"] != "ping") {
      if (auto st = opts.identity_still_valid(); !st) {
        protocol.audit_refusal(ctx, msg["method"].is_string() ? msg["method"].get<std::string>() : "", -32001,
                               st.error().message);
        return answer(rpc_error(msg["id"], -32001, st.error().message));
      }
    }
    auto reply = protocol.handle(msg, session, ctx);
    return !reply || answer(*reply);
  };
  for (;;) {
    const ssize_t n = ::read(in_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(ErrorKind::Io, std::string("reading stdin: ") + std::strerror(errno));
    if (n == 0) break;
    std::size_t start = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      if (buf[i] != '\n') continue;
      if (skipping) {
        skipping = false;
      } else {
        line.append(buf + start, i - start);
        if (!handle_line()) return ok_status();   // the client closed its end
      }
      line.clear();
      start = i + 1;
    }
    if (!skipping) line.append(buf + start, static_cast<std::size_t>(n) - start);
    if (!skipping && line.size() > opts.max_message) {
      skipping = true;
      line.clear();
      line.shrink_to_fit();
      protocol.audit_refusal(ctx, "", kInvalidRequest, "message too large");
      if (!answer(rpc_error(nullptr, kInvalidRequest,
                            "Invalid Request: message too large (the limit is " + std::to_string(opts.max_message) + " bytes)")))
        return ok_status();
    }
  }
  if (!skipping && !blank(line)) handle_line();   // a last message without its newline
  return ok_status();
}

}  // namespace kz::mcp
