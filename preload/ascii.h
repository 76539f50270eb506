// ASCII case folding for HTTP header names and auth schemes (locale-free, no tables).
#pragma once

#include <cstddef>

namespace kz::preload {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Case-insensitive equality of n bytes.
inline bool ascii_ieq(const char* a, const char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

}  // namespace kz::preload
