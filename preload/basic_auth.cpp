#include "kz/preload/basic_auth.h"

#include <cstring>
#include <initializer_list>

#include "ascii.h"

namespace kz::preload {

namespace {

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool may_hold_basic(const char* p, std::size_t n) {
  // The scheme, in any case, and the space or tab after it (find_basic_credentials'
  // rule). Steps from blank to blank with memchr: a head has about one per line.
  for (const char sep : {' ', '\t'}) {
    for (std::size_t i = 5; i < n;) {
      const void* q = std::memchr(p + i, sep, n - i);
      if (q == nullptr) break;
      const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(q) - p);
      if (at >= 5 && ascii_ieq(p + at - 5, "basic", 5)) return true;
      i = at + 1;
    }
  }
  return false;
}

std::size_t find_basic_credentials(const char* p, std::size_t head_end, B64Span* spans, std::size_t max) {
  std::size_t found = 0;
  // Header lines start after each CRLF.
  for (std::size_t i = 0; i < head_end && found < max;) {
    const char* eol = static_cast<const char*>(std::memchr(p + i, '\n', head_end - i));
    const std::size_t end = eol ? static_cast<std::size_t>(eol - p) : head_end;
    const char* line = p + i;
    const std::size_t len = end - i;
    std::size_t name_len = 0;
    if (len > 14 && ascii_ieq(line, "authorization:", 14)) name_len = 14;
    else if (len > 20 && ascii_ieq(line, "proxy-authorization:", 20)) name_len = 20;
    if (name_len > 0) {
      std::size_t j = name_len;
      while (j < len && (line[j] == ' ' || line[j] == '\t')) ++j;
      if (j + 6 <= len && ascii_ieq(line + j, "basic", 5) && (line[j + 5] == ' ' || line[j + 5] == '\t')) {
        j += 6;
        while (j < len && (line[j] == ' ' || line[j] == '\t')) ++j;
        std::size_t k = j;
        while (k < len && line[k] != '\r' && line[k] != ' ' && line[k] != '\t') ++k;
        if (k > j) spans[found++] = B64Span{i + j, k - j};
      }
    }
    i = end + 1;
  }
  return found;
}

long b64_decode(const char* in, std::size_t n, unsigned char* out, std::size_t cap) {
  while (n > 0 && in[n - 1] == '=') --n;
  if (n % 4 == 1) return -1;
  std::size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int v = b64_value(static_cast<unsigned char>(in[i]));
    if (v < 0) return -1;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= cap) return -1;
      out[o++] = static_cast<unsigned char>((acc >> bits) & 0xff);
    }
  }
  return static_cast<long>(o);
}

long b64_encode(const unsigned char* in, std::size_t n, char* out, std::size_t cap) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::size_t need = (n + 2) / 3 * 4;
  if (need > cap) return -1;
  std::size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | in[i + 2];
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = tbl[v & 63];
  }
  if (n - i == 1) {
    const unsigned v = unsigned{in[i]} << 16;
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8);
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = '=';
  }
  return static_cast<long>(o);
}

}  // namespace kz::preload
