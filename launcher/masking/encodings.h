// The forms a program is likely to print a secret value in. Each returned string is a
// pattern the masker replaces; all of them are derived from the value, so callers wipe
// them when done.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kz {

std::string base64_encode(std::string_view in, bool url, bool pad);
std::string percent_encode(std::string_view in, bool upper_hex, bool plus_for_space);
std::string json_escape(std::string_view in, bool escape_slash);
std::string hex_encode(std::string_view in, bool upper);

// The part of base64(prefix + value + suffix) that depends only on the value, for a
// prefix of `offset` bytes (0, 1, 2): what appears inside a longer base64 text such as
// `Basic base64(user:secret)`.
std::string base64_inner(std::string_view value, int offset);

// Every pattern for one value: the value, its terminal rendering (\n → \r\n), the lines
// of a multi-line value (≥ kMinLineLen bytes), and the encodings above. Deduplicated;
// variants shorter than `min_len` are dropped.
inline constexpr std::size_t kMinLineLen = 16;
inline constexpr std::size_t kMinInnerBase64 = 8;
std::vector<std::string> mask_variants(std::string_view value, std::size_t min_len);

}  // namespace kz
