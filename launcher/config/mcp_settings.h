// The MCP settings ([mcp] in .keyzero.toml, mcp: in bundle.yaml), checked in one place
// for both file formats: each parser walks its own syntax and hands every key here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace kz {

enum class McpKeyType { Scalar, List, Table, Unknown };

// What `key` ("token_ttl", "fetch", "fetch.timeout", ...) holds; Unknown when it is not a
// key of the MCP settings.
McpKeyType mcp_key_type(std::string_view key);
// The known keys of a table ("" for the top level, "fetch"), for error messages.
std::string mcp_known_keys(std::string_view table);

// Sets one key from its text (a scalar) or its list of strings. Returns "" or what is
// wrong with the value, to be prefixed with the file position and field by the caller.
// Relative paths stay as written: the caller anchors them to the file's directory.
std::string set_mcp_scalar(McpConfig& c, std::string_view key, const std::string& text);
std::string set_mcp_list(McpConfig& c, std::string_view key, const std::vector<std::string>& items);

}  // namespace kz
