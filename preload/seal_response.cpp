#include "kz/preload/seal_response.h"

#include <cstring>

namespace kz::preload {

namespace {

bool space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The JSON member names whose string values are tokens (RFC 6749 5.1, OpenID Connect).
constexpr const char* kNames[] = {"\"access_token\"", "\"refresh_token\"", "\"id_token\""};

}  // namespace

bool seal_response(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b) {
  if (st == nullptr || st->seal_secret == 0) return true;
  for (const char* name : kNames) {
    const std::size_t nl = std::strlen(name);
    for (std::size_t i = 0; i + nl <= n;) {
      if (std::memcmp(p + i, name, nl) != 0) {
        ++i;
        continue;
      }
      std::size_t k = i + nl;
      while (k < n && space(p[k])) ++k;
      if (k == n || p[k] != ':') {   // a string that only looks like the name
        i += nl;
        continue;
      }
      ++k;
      while (k < n && space(p[k])) ++k;
      if (k == n) return false;
      if (p[k] != '"') {   // null, a number: not a token
        i = k;
        continue;
      }
      const std::size_t from = ++k;
      while (k < n && p[k] != '"' && p[k] != '\\') ++k;
      if (k == n || p[k] == '\\') return false;   // cut off, or an escape we do not rewrite
      if (k > from && (b.seal == nullptr || !b.seal(b.ctx, st, p + from, k - from))) return false;
      i = k + 1;
    }
  }
  return true;
}

}  // namespace kz::preload
