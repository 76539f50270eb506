// Byte-string search for the shim's per-request paths. glibc's memmem is a byte-at-a-time
// loop (about 4 instructions per haystack byte); these step with memchr, which is
// vectorised, so a request head costs a few memchr calls: one per line for the head's end,
// one per occurrence of the needle's first byte otherwise. No allocation.
#pragma once

#include <cstddef>
#include <cstring>

namespace kz::preload {

// The first CRLFCRLF in [p, p+n) (the end of an HTTP head), or nullptr. Steps line by
// line: each '\n' found is checked for "\r\n\r" before it.
inline const char* find_head_end(const char* p, std::size_t n) {
  std::size_t i = 3;   // the first '\n' that can end CRLFCRLF is at offset 3
  while (i < n) {
    const void* q = std::memchr(p + i, '\n', n - i);
    if (q == nullptr) return nullptr;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(q) - p);
    if (p[at - 1] == '\r' && p[at - 2] == '\n' && p[at - 3] == '\r') return p + at - 3;
    i = at + 1;
  }
  return nullptr;
}

inline const unsigned char* find_head_end(const unsigned char* p, std::size_t n) {
  return reinterpret_cast<const unsigned char*>(find_head_end(reinterpret_cast<const char*>(p), n));
}

// The first occurrence of needle[0, m) in [p, p+n), or nullptr (m == 0: p).
inline const char* find_bytes(const char* p, std::size_t n, const char* needle, std::size_t m) {
  if (m == 0) return p;
  std::size_t i = 0;
  while (n - i >= m) {
    const void* q = std::memchr(p + i, needle[0], n - i - m + 1);
    if (q == nullptr) return nullptr;
    const auto* c = static_cast<const char*>(q);
    if (std::memcmp(c + 1, needle + 1, m - 1) == 0) return c;
    i = static_cast<std::size_t>(c - p) + 1;
  }
  return nullptr;
}

}  // namespace kz::preload
