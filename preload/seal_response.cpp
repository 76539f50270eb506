#include "kz/preload/seal_response.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cstring>

namespace kz::preload {

namespace {

// A string value at least this long that is not a known non-secret member is taken for a
// token (sealed in JSON; in a form-encoded body or a Location it fails the read).
constexpr std::size_t kLongValue = 16;
constexpr int kMaxDepth = 32;

bool space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c - 'A' + 'a') : c; }

bool is_ci(const unsigned char* p, std::size_t n, const char* s) {
  const std::size_t k = std::strlen(s);
  if (n != k) return false;
  for (std::size_t i = 0; i < k; ++i)
    if (lower(p[i]) != static_cast<unsigned char>(s[i])) return false;
  return true;
}

bool is_one_of(const unsigned char* p, std::size_t n, const char* const* names, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    if (n == std::strlen(names[i]) && std::memcmp(p, names[i], n) == 0) return true;
  return false;
}

// The member names whose values are tokens (RFC 6749 5.1, OpenID Connect): always sealed.
constexpr const char* kTokenNames[] = {"access_token", "refresh_token", "id_token"};
// The members known to hold no secret (RFC 6749 5.1 and 5.2, RFC 8693 2.2.1): released as
// they are. Every other string of kLongValue bytes or more is sealed (JSON) or refused.
constexpr const char* kPlainNames[] = {"token_type", "issued_token_type", "expires_in", "scope",
                                       "error",      "error_description", "error_uri"};

bool token_name(const unsigned char* p, std::size_t n) { return is_one_of(p, n, kTokenNames, 3); }
bool plain_name(const unsigned char* p, std::size_t n) { return is_one_of(p, n, kPlainNames, 7); }

enum class Member { Other, Token, Plain };

struct Json {
  unsigned char* p;
  std::size_t n;
  std::size_t i;
  ConnState* st;
  const BrokerOps& b;
};

void skip_space(Json& j) {
  while (j.i < j.n && space(j.p[j.i])) ++j.i;
}

// A JSON string at j.i: [*from, *to) are its raw bytes between the quotes.
bool string_at(Json& j, std::size_t* from, std::size_t* to, bool* escaped) {
  if (j.i >= j.n || j.p[j.i] != '"') return false;
  *from = ++j.i;
  *escaped = false;
  while (j.i < j.n && j.p[j.i] != '"') {
    if (j.p[j.i] < 0x20) return false;
    if (j.p[j.i] == '\\') {
      *escaped = true;
      ++j.i;
    }
    ++j.i;
  }
  if (j.i >= j.n) return false;
  *to = j.i++;
  return true;
}

bool value_at(Json& j, Member m, int depth);

bool string_value(Json& j, Member m) {
  std::size_t from = 0, to = 0;
  bool escaped = false;
  if (!string_at(j, &from, &to, &escaped)) return false;
  const std::size_t len = to - from;
  if (m == Member::Plain || len == 0) return true;
  if (m == Member::Other && len < kLongValue) return true;
  if (escaped) return false;   // an escape we do not rewrite: the value cannot be sealed in place
  return j.b.seal != nullptr && j.b.seal(j.b.ctx, j.st, j.p + from, len);
}

bool container(Json& j, Member m, int depth) {
  const bool object = j.p[j.i] == '{';
  const unsigned char close = object ? '}' : ']';
  ++j.i;
  skip_space(j);
  if (j.i < j.n && j.p[j.i] == close) {
    ++j.i;
    return true;
  }
  for (;;) {
    Member inner = m;   // an array's elements are of its member's kind
    if (object) {
      std::size_t from = 0, to = 0;
      bool escaped = false;
      skip_space(j);
      if (!string_at(j, &from, &to, &escaped)) return false;
      const unsigned char* name = j.p + from;
      const std::size_t nl = to - from;
      inner = escaped ? Member::Other : token_name(name, nl) ? Member::Token : plain_name(name, nl) ? Member::Plain
                                                                                                     : Member::Other;
      skip_space(j);
      if (j.i >= j.n || j.p[j.i] != ':') return false;
      ++j.i;
    }
    if (!value_at(j, inner, depth + 1)) return false;
    skip_space(j);
    if (j.i >= j.n) return false;
    if (j.p[j.i] == close) {
      ++j.i;
      return true;
    }
    if (j.p[j.i] != ',') return false;
    ++j.i;
  }
}

bool value_at(Json& j, Member m, int depth) {
  if (depth > kMaxDepth) return false;
  skip_space(j);
  if (j.i >= j.n) return false;
  const unsigned char c = j.p[j.i];
  if (c == '"') return string_value(j, m);
  if (c == '{' || c == '[') return container(j, m, depth);
  // A number or true/false/null: no token there.
  const std::size_t from = j.i;
  while (j.i < j.n && ((j.p[j.i] >= '0' && j.p[j.i] <= '9') || (j.p[j.i] >= 'a' && j.p[j.i] <= 'z') ||
                       j.p[j.i] == '-' || j.p[j.i] == '+' || j.p[j.i] == '.' || j.p[j.i] == 'E'))
    ++j.i;
  const std::size_t len = j.i - from;
  if (len == 0) return false;
  if (c >= 'a' && c <= 'z')   // only the three literals: no bare word passes
    return (len == 4 && (std::memcmp(j.p + from, "true", 4) == 0 || std::memcmp(j.p + from, "null", 4) == 0)) ||
           (len == 5 && std::memcmp(j.p + from, "false", 5) == 0);
  return (c >= '0' && c <= '9') || c == '-';
}

bool seal_json(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b) {
  Json j{p, n, 0, st, b};
  if (!value_at(j, Member::Other, 0)) return false;
  skip_space(j);
  return j.i == n;
}

// name=value pairs joined by '&' (a form-encoded body, a Location's query). Token members
// are sealed in place when `can_seal`; otherwise, and for any other value of kLongValue
// bytes or more that is not a known non-secret member, the whole answer is refused.
bool seal_pairs(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b, bool can_seal) {
  std::size_t i = 0;
  while (i < n) {
    std::size_t e = i;
    while (e < n && p[e] != '&') ++e;
    std::size_t eq = i;
    while (eq < e && p[eq] != '=') ++eq;
    if (e > i && eq == e) {
      if (e - i >= kLongValue) return false;   // a bare word long enough to be a token
    } else if (e > i) {
      const unsigned char* v = p + eq + 1;
      const std::size_t vl = e - eq - 1;
      if (token_name(p + i, eq - i)) {
        if (vl > 0) {
          if (!can_seal) return false;
          for (std::size_t k = 0; k < vl; ++k)
            if (v[k] == '%' || v[k] == '+') return false;   // encoded: not the token's own bytes
          if (b.seal == nullptr || !b.seal(b.ctx, st, p + eq + 1, vl)) return false;
        }
      } else if (!plain_name(p + i, eq - i) && vl >= kLongValue) {
        return false;
      }
    }
    i = e + 1;
  }
  return true;
}

bool media_is(const unsigned char* v, std::size_t n, const char* type) {
  std::size_t e = 0;
  while (e < n && v[e] != ';') ++e;
  while (e > 0 && space(v[e - 1])) --e;
  return is_ci(v, e, type);
}

bool media_is_json(const unsigned char* v, std::size_t n) {
  std::size_t e = 0;
  while (e < n && v[e] != ';') ++e;
  while (e > 0 && space(v[e - 1])) --e;
  return is_ci(v, e, "application/json") || (e >= 5 && is_ci(v + e - 5, 5, "+json"));
}

}  // namespace

bool seal_response(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b) {
  if (st == nullptr || st->seal_secret == 0) return true;
  if (n < 5 || std::memcmp(p, "HTTP/", 5) != 0) return false;
  const unsigned char* e = find_head_end(p, n);
  if (e == nullptr) return false;   // a head cut off
  const std::size_t body = static_cast<std::size_t>(e - p) + 4;
  const unsigned char* type = nullptr;
  std::size_t type_len = 0;
  std::size_t i = 0;
  while (i < body && p[i] != '\n') ++i;   // past the status line
  for (++i; i < body;) {
    std::size_t le = i;
    while (le < body && p[le] != '\n') ++le;
    const std::size_t next = le + 1;
    if (le > i && p[le - 1] == '\r') --le;
    std::size_t colon = i;
    while (colon < le && p[colon] != ':') ++colon;
    if (colon < le) {
      std::size_t vb = colon + 1;
      while (vb < le && (p[vb] == ' ' || p[vb] == '\t')) ++vb;
      if (is_ci(p + i, colon - i, "content-type")) {
        type = p + vb;
        type_len = le - vb;
      } else if (is_ci(p + i, colon - i, "location")) {
        // A token in a redirect (an implicit grant's fragment, a query): not sealed here.
        std::size_t q = vb;
        while (q < le && p[q] != '?' && p[q] != '#') ++q;
        if (q < le && p[q] == '#') return false;
        if (q < le) {
          std::size_t f = q + 1;
          while (f < le && p[f] != '#') ++f;
          if (f < le || !seal_pairs(p + q + 1, f - q - 1, st, b, false)) return false;
        }
      }
    }
    i = next;
  }
  std::size_t from = body;
  while (from < n && space(p[from])) ++from;
  if (from == n) return true;   // no body: no token in it
  if (type == nullptr) return p[from] == '{' && seal_json(p + body, n - body, st, b);
  if (media_is_json(type, type_len)) return seal_json(p + body, n - body, st, b);
  if (media_is(type, type_len, "application/x-www-form-urlencoded")) return seal_pairs(p + body, n - body, st, b, true);
  return false;   // another content type: it is not released where a token may hide
}

}  // namespace kz::preload
