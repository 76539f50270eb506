// Text helpers shared by the CEL lexer and functions: UTF-8 and number formatting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kz::cel {

// Appends code point cp as UTF-8 (cp must be a valid scalar value).
void append_utf8(std::string& out, std::uint32_t cp);
// Decodes one UTF-8 scalar value at s[i]; returns its length (1..4), or 0 when the
// bytes there are not valid UTF-8 (overlong forms and surrogates are invalid).
std::size_t utf8_decode(std::string_view s, std::size_t i, std::uint32_t* cp);
bool valid_utf8(std::string_view s);
// Number of code points of valid UTF-8 text.
std::size_t utf8_length(std::string_view s);

// Shortest round-trip decimal in the %g style CEL implementations use for string(double):
// exponent form below 1e-4 and from 1e6 on ("1e+06", as Go's %g), NaN, +Inf, -Inf.
std::string format_double(double d);

}  // namespace kz::cel
