#include "kz/preload/accept_encoding.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cstring>

namespace kz::preload {

namespace {

constexpr char kName[] = "accept-encoding";
constexpr std::size_t kNameLen = sizeof(kName) - 1;
static_assert(sizeof(kDroppedAcceptEncoding) - 1 == kNameLen);

bool is_name(const char* p) {
  for (std::size_t i = 0; i < kNameLen; ++i) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kName[i]) return false;
  }
  return true;
}

}  // namespace

std::size_t force_identity_encoding(char* p, std::size_t n) {
  const char* end = find_head_end(p, n);
  const std::size_t head = end != nullptr ? static_cast<std::size_t>(end - p) + 2 : n;
  std::size_t changed = 0;
  // Header lines start after a CRLF; the request line is never one. Line by line (memchr).
  for (std::size_t i = 1; i < head;) {
    const void* lf = std::memchr(p + i, '\n', head - i);
    if (lf == nullptr) break;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(lf) - p);
    i = at + 1;
    if (p[at - 1] != '\r') continue;
    const std::size_t line = at + 1;
    if (line + kNameLen + 1 > head || !is_name(p + line) || p[line + kNameLen] != ':') continue;
    std::size_t vb = line + kNameLen + 1;
    std::size_t ve = vb;
    while (ve < head && p[ve] != '\r') ++ve;
    while (vb < ve && (p[vb] == ' ' || p[vb] == '\t')) ++vb;
    if (ve - vb >= 8) {
      std::memcpy(p + vb, "identity", 8);
      std::memset(p + vb + 8, ' ', ve - vb - 8);
    } else {
      std::memcpy(p + line, kDroppedAcceptEncoding, kNameLen);
    }
    ++changed;
    i = ve;
  }
  return changed;
}

}  // namespace kz::preload
