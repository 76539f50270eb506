// Base64url (RFC 4648 §5) as JWS compact serialization uses it (RFC 7515 §2): no padding,
// no line breaks, only A-Z a-z 0-9 - _. Decoding is strict so that exactly one encoding
// of each octet string is accepted: a token cannot be re-encoded into a different string
// that still verifies (padding, '+'/'/', or non-zero unused trailing bits are rejected).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kz::jwt {

// The decoded octets, or nullopt when `in` is not canonical unpadded base64url.
std::optional<std::string> base64url_decode(std::string_view in);

std::string base64url_encode(std::string_view octets);

}  // namespace kz::jwt
