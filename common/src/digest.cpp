#include "kz/digest.h"

#include <openssl/evp.h>

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

// Small inputs (a config, an audit record, a request) go through the shim's own SHA-256:
// its first use costs nothing, where OpenSSL's first EVP digest loads its provider and
// name tables (1.6 ms of every `kz run`, which hashes its config for the audit log).
// Large ones through OpenSSL's, several times faster per byte. The digest is the same.
std::string sha256_hex(std::string_view data) {
  constexpr std::size_t kLarge = 256 * 1024;
  if (data.size() >= kLarge) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    return hex_lower(std::string_view(reinterpret_cast<const char*>(md), len));
  }
  char hex[64];
  wire::sha256_hex(data.data(), data.size(), hex);
  return std::string(hex, sizeof hex);
}

}  // namespace kz
