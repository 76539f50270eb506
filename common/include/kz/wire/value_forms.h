// The encoded forms a server is likely to echo a secret value in (an error message that
// quotes a header, a debug endpoint that returns the request as JSON or base64, a hex
// dump), and the same forms of its token. The broker fingerprints every form of a value
// for the shim (kz/wire/fingerprint.h: the shim never holds the value), confirms a hit,
// and answers with the token in the same form and, where the form allows, the same
// length, so a response's framing (Content-Length, chunk sizes) never changes.
//
// Pure functions over caller memory: no allocation, no exceptions (kz_wire is linked
// into the shim).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::wire {

enum class ValueForm : std::uint8_t {
  Raw = 0,
  Base64 = 1,           // RFC 4648 alphabet, with '=' padding
  Base64NoPad = 2,
  Base64Url = 3,        // '-' and '_', with padding
  Base64UrlNoPad = 4,
  HexLower = 5,
  HexUpper = 6,
  Percent = 7,          // every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper-case hex)
  Json = 8,             // the inside of a JSON string: \" \\ \b \f \n \r \t, other controls \u00XX
  PercentLower = 9,     // Percent with lower-case hex (%2f)
  JsonSlash = 10,       // Json with '/' escaped as \/ (PHP's json_encode and others)
};
inline constexpr std::size_t kValueFormCount = 11;

// Forms longer than this are not fingerprinted: a candidate travels to the broker in one
// fixed-size message (Request::data). Values up to 2 KiB are covered in every form.
inline constexpr std::size_t kMaxFormLen = 4096;

// Writes form `f` of in[0, n) to out; returns its length, or 0 when it would not fit in
// `cap` bytes (out is then unspecified).
std::size_t encode_form(ValueForm f, const unsigned char* in, std::size_t n, char* out, std::size_t cap);

// The replacement for a hit of form `f` that is `hit_len` bytes long: the token in form
// `f`, made exactly hit_len bytes long. When the token's form is shorter, characters of
// the token are spelled as escapes that decode to the same text (%XX for Percent, \u00XX
// for Json) until the lengths meet, and whatever cannot be made up that way is filled
// with '*'; when it is longer (a secret shorter than the minimum token), it is cut.
// Writes hit_len bytes to out (cap >= hit_len) and returns hit_len, or 0 on failure.
std::size_t token_in_form(ValueForm f, const char* token, std::size_t token_len, std::size_t hit_len, char* out,
                          std::size_t cap);

}  // namespace kz::wire
