// Tokens → values in the request the MCP fetch tool is about to send, for one hop.
// The same rules as blind mode: a token is swapped only where its secret is bound (host,
// method, path), and Basic credentials are decoded, swapped and re-encoded (a token
// inside base64 is invisible to a plain scan). Lengths are libcurl's business: it
// frames the body it is given.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/result.h"
#include "mcp/fetch_engine.h"
#include "secrets/token_table.h"

namespace kz::mcp {

// May this token be used on this hop? Ok, or ErrorKind::Denied with a sentence naming the
// secret and what does not match (never the value).
using TokenCheck = std::function<Status(const TokenEntry&, const HopInfo&)>;

// The headers and body of `req` with every token swapped. Fails on the first token that
// is unknown, expired or refused by `check`. `used` gets each secret swapped (once).
Result<PreparedHop> swap_tokens(const FetchRequest& req, const HopInfo& hop, const TokenTable& tokens,
                                std::int64_t now, const TokenCheck& check,
                                std::vector<std::shared_ptr<const TokenEntry>>& used);

// Each "KZ_TOK_…" run in `text`: [offset, length) pairs, in order.
std::vector<std::pair<std::size_t, std::size_t>> find_token_texts(std::string_view text);

// The checks on the agent's headers before anything is sent: names are HTTP tokens,
// values carry no CR, LF or NUL, and kz (libcurl) owns framing and routing headers
// (Host, Content-Length, Transfer-Encoding, Connection, Expect, Upgrade, TE, Trailer,
// Keep-Alive, Proxy-*). "" or the problem.
std::string header_problem(const std::string& name, const std::string& value);

}  // namespace kz::mcp
