#include "core/json_dump.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace kz {

namespace {

bool plain_byte(unsigned char c) { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'; }

// Printable ASCII other than '"' and '\\': what nlohmann writes unchanged. Eight bytes at
// a time: a word none of whose bytes is below 0x20, at or above 0x7f, '"' or '\\' is
// plain; a flagged word is checked byte by byte (the tests below flag every byte that
// is one, and may flag a plain byte only next to one that is).
bool plain(std::string_view s) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t x;
    std::memcpy(&x, p, 8);
    const std::uint64_t q = x ^ (kOnes * '"'), b = x ^ (kOnes * '\\');
    const std::uint64_t flags = ((x - kOnes * 0x20) & ~x) | (x | (x + kOnes)) | ((q - kOnes) & ~q) | ((b - kOnes) & ~b);
    if ((flags & kHigh) != 0)
      for (int i = 0; i < 8; ++i)
        if (!plain_byte(static_cast<unsigned char>(p[i]))) return false;
  }
  for (; n > 0; ++p, --n)
    if (!plain_byte(static_cast<unsigned char>(*p))) return false;
  return true;
}

void dump_string(std::string_view s, std::string& out) {
  if (plain(s)) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <class T>
void dump_integer(T v, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

void dump_json(const nlohmann::json& j, std::string& out) {
  using V = nlohmann::json::value_t;
  switch (j.type()) {
    case V::null: out += "null"; return;
    case V::boolean: out += j.get_ref<const bool&>() ? "true" : "false"; return;
    case V::number_integer: return dump_integer(j.get_ref<const std::int64_t&>(), out);
    case V::number_unsigned: return dump_integer(j.get_ref<const std::uint64_t&>(), out);
    case V::string: return dump_string(j.get_ref<const std::string&>(), out);
    case V::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : j.items()) {
        if (!first) out += ',';
        first = false;
        dump_string(k, out);
        out += ':';
        dump_json(v, out);
      }
      out += '}';
      return;
    }
    case V::array: {
      out += '[';
      bool first = true;
      for (const auto& v : j) {
        if (!first) out += ',';
        first = false;
        dump_json(v, out);
      }
      out += ']';
      return;
    }
    default:   // floats (nlohmann's own shortest form), binary, discarded
      out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
  }
}

void dump_json_string(std::string_view s, std::string& out) { dump_string(s, out); }

std::string dump_json(const nlohmann::json& j) {
  std::string out;
  out.reserve(1024);
  dump_json(j, out);
  return out;
}

}  // namespace kz
