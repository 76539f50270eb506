#include "kz/wire/scanner.h"

#include <cstring>

#include "kz/wire/token.h"

namespace kz::wire {

std::size_t find_token_prefix(const char* p, std::size_t n) {
  const void* hit = memmem(p, n, kTokenPrefix, kTokenPrefixLen);
  return hit == nullptr ? n : static_cast<std::size_t>(static_cast<const char*>(hit) - p);
}

std::size_t token_extent(const char* p, std::size_t n) {
  std::size_t i = kTokenPrefixLen;
  while (i < n && i < kMaxTokenLen && is_base62(static_cast<unsigned char>(p[i]))) ++i;
  return i;
}

std::size_t trailing_prefix_len(const char* p, std::size_t n) {
  for (std::size_t k = kTokenPrefixLen - 1; k >= 1; --k)
    if (n >= k && std::memcmp(p + n - k, kTokenPrefix, k) == 0) return k;
  return 0;
}

}  // namespace kz::wire
