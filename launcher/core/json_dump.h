// nlohmann::json's compact dump, byte for byte (dump(-1, ' ', false, replace)), faster
// for what kz writes most: audit records and API replies, whose strings are nearly all
// printable ASCII. nlohmann escapes a string one character at a time through its UTF-8
// decoder; here a string with nothing to escape is appended whole, and anything else
// (escapes, non-ASCII, invalid UTF-8, floats, binary) is handed to nlohmann itself, so
// the output never differs.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kz {

// Appends j's compact text to out.
void dump_json(const nlohmann::json& j, std::string& out);
std::string dump_json(const nlohmann::json& j);
// Appends the JSON text of the string s, exactly as dump_json(nlohmann::json(s)) would
// write it, without building a json value (for replies and records written by hand).
void dump_json_string(std::string_view s, std::string& out);

}  // namespace kz
