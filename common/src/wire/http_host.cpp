#include "kz/wire/http_host.h"

namespace kz::wire {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool all_digits(const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] < '0' || p[i] > '9') return false;
  return true;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

bool authority_host(const char* p, std::size_t n, const char** host, std::size_t* host_len) {
  if (n == 0) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c <= 0x20 || c >= 0x7f || c == '@' || c == '/' || c == '\\' || c == '?' || c == '#') return false;
  }
  if (p[0] == '[') {
    std::size_t close = 1;
    while (close < n && p[close] != ']') ++close;
    if (close == n || close == 1) return false;
    const std::size_t rest = close + 1;
    if (rest < n && (p[rest] != ':' || !all_digits(p + rest + 1, n - rest - 1))) return false;
    *host = p + 1;
    *host_len = close - 1;
    return true;
  }
  std::size_t colon = 0;
  while (colon < n && p[colon] != ':') ++colon;
  if (colon == 0) return false;
  if (colon < n && !all_digits(p + colon + 1, n - colon - 1)) return false;   // also a second ':'
  *host = p;
  *host_len = colon;
  return true;
}

bool host_names_equal(const char* a, std::size_t an, const char* b, std::size_t bn) {
  if (an > 0 && a[an - 1] == '.') --an;
  if (bn > 0 && b[bn - 1] == '.') --bn;
  if (an != bn || an == 0) return false;
  for (std::size_t i = 0; i < an; ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool absolute_target(const char* t, std::size_t n, std::size_t* auth_pos, std::size_t* auth_len,
                     std::size_t* path_pos) {
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://"
  if (n == 0 || !is_alpha(t[0])) return false;
  std::size_t i = 1;
  while (i < n && (is_alpha(t[i]) || (t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.')) ++i;
  if (n - i < 3 || t[i] != ':' || t[i + 1] != '/' || t[i + 2] != '/') return false;
  const std::size_t a = i + 3;
  std::size_t e = a;
  while (e < n && t[e] != '/' && t[e] != '?' && t[e] != '#') ++e;
  *auth_pos = a;
  *auth_len = e - a;
  *path_pos = e;
  return true;
}

HostCheck check_request_host(const char* http_host, std::size_t hl, const char* target, std::size_t tl,
                             const char* verified, std::size_t vl, const char** named, std::size_t* named_len) {
  *named = nullptr;
  *named_len = 0;
  bool any = false;
  if (hl > 0) {
    const char* h = nullptr;
    std::size_t n = 0;
    *named = http_host;
    *named_len = hl;
    if (!authority_host(http_host, hl, &h, &n)) return HostCheck::Malformed;
    *named = h;
    *named_len = n;
    if (!host_names_equal(h, n, verified, vl)) return HostCheck::Mismatch;
    any = true;
  }
  if (tl > 0 && target[0] != '/') {
    std::size_t ap = 0, al = 0, pp = 0;
    if (!absolute_target(target, tl, &ap, &al, &pp)) return HostCheck::Malformed;
    const char* h = nullptr;
    std::size_t n = 0;
    *named = target + ap;
    *named_len = al;
    if (!authority_host(target + ap, al, &h, &n)) return HostCheck::Malformed;
    *named = h;
    *named_len = n;
    if (!host_names_equal(h, n, verified, vl)) return HostCheck::Mismatch;
    any = true;
  }
  return any ? HostCheck::Match : HostCheck::Missing;
}

}  // namespace kz::wire
