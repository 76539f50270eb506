// What of a fetched response goes back to the agent: a safe subset of headers (no
// Set-Cookie, no authentication headers), and a body in which every secret value the
// caller holds a token for, in the forms a server is likely to echo it (raw, base64,
// percent- and JSON-escaped...), is replaced by its token.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "secrets/token_table.h"

namespace kz::mcp {

// Headers on the allow-list (content type and length, caching, dates, location,
// rate limits, request ids), duplicates joined with ", ".
nlohmann::json safe_headers(const std::vector<std::pair<std::string, std::string>>& headers);

// Replaces the values of `tokens` in `text`; returns how many occurrences were replaced.
// With `truncated`, a tail that could be the start of a value is cut as well (a value cut
// by the size cap must not leak its first bytes).
std::size_t redact_values(std::string& text, const std::vector<std::shared_ptr<const TokenEntry>>& tokens,
                          bool truncated);

// "text" when `body` is valid UTF-8 without NUL bytes, else "base64".
bool is_text(const std::string& body);

}  // namespace kz::mcp
