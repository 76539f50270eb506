#include "kz/digest.h"

#include "kz/wire/sha256.h"

namespace kz {

std::string hex_lower(std::string_view bytes) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

// The shim's own SHA-256 (tested against OpenSSL's): its first use costs nothing, where
// OpenSSL's first EVP digest loads its provider and name tables (1.6 ms of every
// `kz run`, which hashes its config for the audit log).
std::string sha256_hex(std::string_view data) {
  char hex[64];
  wire::sha256_hex(data.data(), data.size(), hex);
  return std::string(hex, sizeof hex);
}

}  // namespace kz
