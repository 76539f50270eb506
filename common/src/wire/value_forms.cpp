#include "kz/wire/value_forms.h"

#include <string.h>

#include <cstring>

#include "kz/wire/token.h"

namespace kz::wire {

namespace {

constexpr char kB64Std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

std::size_t base64(const unsigned char* in, std::size_t n, const char* alphabet, bool pad, char* out,
                   std::size_t cap) {
  const std::size_t full = (n + 2) / 3 * 4;
  const std::size_t rem = n % 3;
  const std::size_t len = pad || rem == 0 ? full : full - (3 - rem);
  if (len > cap) return 0;
  std::size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (rem > 0) {
    std::uint32_t v = std::uint32_t{in[i]} << 16;
    if (rem == 2) v |= std::uint32_t{in[i + 1]} << 8;
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    if (rem == 2) out[o++] = alphabet[(v >> 6) & 63];
    if (pad) {
      out[o++] = '=';
      if (rem == 1) out[o++] = '=';
    }
  }
  return o;
}

std::size_t hex(const unsigned char* in, std::size_t n, const char* digits, char* out, std::size_t cap) {
  if (2 * n > cap) return 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  return 2 * n;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::size_t percent(const unsigned char* in, std::size_t n, const char* digits, char* out, std::size_t cap) {
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (unreserved(in[i])) {
      if (o + 1 > cap) return 0;
      out[o++] = static_cast<char>(in[i]);
    } else {
      if (o + 3 > cap) return 0;
      out[o++] = '%';
      out[o++] = digits[in[i] >> 4];
      out[o++] = digits[in[i] & 15];
    }
  }
  return o;
}

std::size_t json(const unsigned char* in, std::size_t n, bool slash, char* out, std::size_t cap) {
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = in[i];
    char esc = 0;
    switch (c) {
      case '"': esc = '"'; break;
      case '\\': esc = '\\'; break;
      case '\b': esc = 'b'; break;
      case '\f': esc = 'f'; break;
      case '\n': esc = 'n'; break;
      case '\r': esc = 'r'; break;
      case '\t': esc = 't'; break;
      case '/': esc = slash ? '/' : 0; break;
      default: break;
    }
    if (esc != 0) {
      if (o + 2 > cap) return 0;
      out[o++] = '\\';
      out[o++] = esc;
    } else if (c < 0x20) {
      if (o + 6 > cap) return 0;
      std::memcpy(out + o, "\\u00", 4);
      out[o + 4] = kHexLower[c >> 4];
      out[o + 5] = kHexLower[c & 15];
      o += 6;
    } else {
      if (o + 1 > cap) return 0;
      out[o++] = static_cast<char>(c);
    }
  }
  return o;
}

}  // namespace

std::size_t encode_form(ValueForm f, const unsigned char* in, std::size_t n, char* out, std::size_t cap) {
  switch (f) {
    case ValueForm::Raw:
      if (n > cap) return 0;
      std::memcpy(out, in, n);
      return n;
    case ValueForm::Base64: return base64(in, n, kB64Std, true, out, cap);
    case ValueForm::Base64NoPad: return base64(in, n, kB64Std, false, out, cap);
    case ValueForm::Base64Url: return base64(in, n, kB64Url, true, out, cap);
    case ValueForm::Base64UrlNoPad: return base64(in, n, kB64Url, false, out, cap);
    case ValueForm::HexLower: return hex(in, n, kHexLower, out, cap);
    case ValueForm::HexUpper: return hex(in, n, kHexUpper, out, cap);
    case ValueForm::Percent: return percent(in, n, kHexUpper, out, cap);
    case ValueForm::Json: return json(in, n, false, out, cap);
    case ValueForm::PercentLower: return percent(in, n, kHexLower, out, cap);
    case ValueForm::JsonSlash: return json(in, n, true, out, cap);
  }
  return 0;
}

std::size_t token_in_form(ValueForm f, const char* token, std::size_t token_len, std::size_t hit_len, char* out,
                          std::size_t cap) {
  if (hit_len == 0 || hit_len > cap) return 0;
  const auto* tok = reinterpret_cast<const unsigned char*>(token);
  // The whole form first (hex of the longest token is twice its length), then cut or grow.
  char full[2 * kMaxTokenLen + 8];
  const std::size_t enc = encode_form(f, tok, token_len, full, sizeof full);
  std::memcpy(out, full, enc < hit_len ? enc : hit_len);
  explicit_bzero(full, enc);
  if (enc >= hit_len) return hit_len;   // the same length, or a token longer than a short secret: cut
  std::size_t o = enc;
  const bool pct = f == ValueForm::Percent || f == ValueForm::PercentLower;
  if (enc == token_len && (pct || f == ValueForm::Json || f == ValueForm::JsonSlash)) {
    // A token is base62 and '_', which neither form escapes: spell its last k characters
    // as escapes (3 bytes for 1 in Percent, 6 for 1 in Json) so it grows to the hit's
    // length yet still decodes to the token.
    const std::size_t grow = pct ? 2 : 5;
    std::size_t k = (hit_len - enc) / grow;
    if (k > token_len) k = token_len;
    o = token_len - k;
    std::memcpy(out, token, o);
    for (std::size_t i = token_len - k; i < token_len; ++i) {
      const auto c = static_cast<unsigned char>(token[i]);
      if (pct) {
        out[o++] = '%';
      } else {
        std::memcpy(out + o, "\\u00", 4);
        o += 4;
      }
      out[o++] = (f == ValueForm::Percent ? kHexUpper : kHexLower)[c >> 4];
      out[o++] = (f == ValueForm::Percent ? kHexUpper : kHexLower)[c & 15];
    }
  }
  std::memset(out + o, '*', hit_len - o);
  return hit_len;
}

}  // namespace kz::wire
