#include "kz/preload/alpn.h"

#include <cstring>

namespace kz::preload {

bool alpn_is_h2(const unsigned char* p, std::size_t n) {
  if (n < 2 || p[0] != 'h' || p[1] != '2') return false;
  return n == 2 || p[2] == '-' || (n == 3 && p[2] == 'c');
}

std::size_t alpn_filter_wire(const unsigned char* in, std::size_t n, unsigned char* out, std::size_t cap) {
  // Validate first: a malformed list is passed through untouched (OpenSSL rejects it).
  for (std::size_t i = 0; i < n;) {
    const std::size_t l = in[i];
    if (l == 0 || i + 1 + l > n) {
      if (cap >= n) std::memcpy(out, in, n);
      return n;
    }
    i += 1 + l;
  }
  std::size_t o = 0;
  for (std::size_t i = 0; i < n;) {
    const std::size_t l = in[i];
    if (!alpn_is_h2(in + i + 1, l) && o + 1 + l <= cap) {
      std::memcpy(out + o, in + i, 1 + l);
      o += 1 + l;
    }
    i += 1 + l;
  }
  if (o == 0 && n > 0 && cap >= 9) {
    static const unsigned char http11[] = "\x08http/1.1";
    std::memcpy(out, http11, 9);
    o = 9;
  }
  return o;
}

bool alpn_allows_swap(const unsigned char* p, std::size_t n, bool h2_engine) {
  if (h2_engine) return n == 2 && std::memcmp(p, "h2", 2) == 0;
  return n == 0 || (n == 8 && std::memcmp(p, "http/1.1", 8) == 0);
}

}  // namespace kz::preload
