#include "masking/encodings.h"

#include <algorithm>

#include "kz/wipe.h"

namespace kz {

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}  // namespace

std::string base64_encode(std::string_view in, bool url, bool pad) {
  const char* a = url ? kB64Url : kB64;
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += a[(v >> 6) & 63];
    out += a[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    if (rest == 2) out += a[(v >> 6) & 63];
    if (pad) out.append(rest == 1 ? "==" : "=");
  }
  return out;
}

std::string base64_inner(std::string_view value, int offset) {
  // With `offset` bytes before it, the value starts at byte `offset` of a 3-byte group.
  // Output characters that mix in unknown neighbour bits are dropped at both ends.
  std::string padded(static_cast<std::size_t>(offset), '\0');
  padded.append(value);
  const std::size_t total = padded.size();
  std::string enc = base64_encode(padded, false, false);
  // Leading chars influenced by the prefix: the first group's chars up to the one
  // holding the value's first full bit range.
  const std::size_t skip = offset == 0 ? 0 : offset == 1 ? 2 : 3;
  // Only whole groups of output characters that depend on value bits alone are kept.
  const std::size_t full_bits = total * 8;
  const std::size_t keep_chars = full_bits / 6;   // chars made entirely of known bits
  std::string out;
  if (keep_chars > skip) out = enc.substr(skip, keep_chars - skip);
  wipe(padded);
  wipe(enc);
  return out;
}

std::string percent_encode(std::string_view in, bool upper_hex, bool plus_for_space) {
  const char* hex = upper_hex ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : in) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ' && plus_for_space) {
      out += '+';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string json_escape(std::string_view in, bool escape_slash) {
  std::string out;
  for (unsigned char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '/':
        out += escape_slash ? "\\/" : "/";
        break;
      default:
        if (c < 0x20) {
          const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string hex_encode(std::string_view in, bool upper) {
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  out.reserve(in.size() * 2);
  for (unsigned char c : in) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::vector<std::string> mask_variants(std::string_view value, std::size_t min_len) {
  std::vector<std::string> v;
  v.emplace_back(value);
  if (value.find('\n') != std::string_view::npos) {
    std::string crlf;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) crlf += '\r';
      crlf += value[i];
    }
    v.push_back(std::move(crlf));
    std::size_t b = 0;
    while (b < value.size()) {
      std::size_t e = value.find('\n', b);
      if (e == std::string_view::npos) e = value.size();
      std::string_view line = value.substr(b, e - b);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() >= kMinLineLen) v.emplace_back(line);
      b = e + 1;
    }
  }
  v.push_back(base64_encode(value, false, true));
  v.push_back(base64_encode(value, false, false));
  v.push_back(base64_encode(value, true, false));
  for (int off = 0; off < 3; ++off) {
    std::string inner = base64_inner(value, off);
    if (inner.size() >= kMinInnerBase64) v.push_back(std::move(inner));
    else wipe(inner);
  }
  v.push_back(percent_encode(value, true, false));
  v.push_back(percent_encode(value, false, false));
  v.push_back(percent_encode(value, true, true));
  v.push_back(json_escape(value, false));
  v.push_back(json_escape(value, true));
  v.push_back(hex_encode(value, false));
  v.push_back(hex_encode(value, true));

  std::sort(v.begin(), v.end());
  auto last = std::unique(v.begin(), v.end());
  for (auto it = last; it != v.end(); ++it) wipe(*it);
  v.erase(last, v.end());
  auto short_end = std::remove_if(v.begin(), v.end(), [&](std::string& s) {
    if (s.size() >= min_len) return false;
    wipe(s);
    return true;
  });
  v.erase(short_end, v.end());
  return v;
}

}  // namespace kz
