#pragma once

#include <string>
#include <string_view>

namespace kz {

// Lower-case hex of SHA-256(data) (kz/wire/sha256.h: no OpenSSL initialisation).
std::string sha256_hex(std::string_view data);
// Lower-case hex of raw bytes.
std::string hex_lower(std::string_view bytes);

}  // namespace kz
