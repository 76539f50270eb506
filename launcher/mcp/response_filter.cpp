#include "mcp/response_filter.h"

#include <algorithm>

#include "kz/wipe.h"
#include "masking/encodings.h"

namespace kz::mcp {

namespace {

bool allowed_header(const std::string& name) {
  static const char* const kExact[] = {
      "content-type", "content-length", "content-encoding", "content-language", "content-disposition",
      "content-range", "accept-ranges", "cache-control", "etag", "last-modified", "expires", "age", "date",
      "location", "retry-after", "vary", "link", "x-request-id", "request-id", "x-github-request-id"};
  for (const char* e : kExact)
    if (name == e) return true;
  return name.rfind("x-ratelimit-", 0) == 0 || name.rfind("ratelimit", 0) == 0;
}

std::size_t replace_all(std::string& text, const std::string& pattern, std::string_view with) {
  std::size_t n = 0, pos = 0;
  while ((pos = text.find(pattern, pos)) != std::string::npos) {
    // Overwrite in place first, so the pattern's bytes do not survive in freed memory.
    const std::size_t keep = std::min(pattern.size(), with.size());
    text.replace(pos, keep, with, 0, keep);
    if (pattern.size() > with.size()) {
      wipe(text.data() + pos + keep, pattern.size() - keep);
      text.erase(pos + keep, pattern.size() - keep);
    } else {
      text.insert(pos + keep, with, keep, std::string::npos);
    }
    pos += with.size();
    ++n;
  }
  return n;
}

}  // namespace

nlohmann::json safe_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : headers) {
    if (!allowed_header(k)) continue;
    if (out.contains(k)) out[k] = out[k].get<std::string>() + ", " + v;
    else out[k] = v;
  }
  return out;
}

std::size_t redact_values(std::string& text, const std::vector<std::shared_ptr<const TokenEntry>>& tokens,
                          bool truncated) {
  constexpr std::size_t kMinVariant = 6;
  std::size_t n = 0;
  // An identity that resolved one secret many times holds many tokens for one value:
  // each distinct value is searched for once (with the first of its tokens), not once
  // per token, which over a 1 MiB body is the difference that matters.
  auto seen_before = [&](std::size_t i) {
    for (std::size_t k = 0; k < i; ++k)
      if (tokens[k]->value.view() == tokens[i]->value.view()) return true;
    return false;
  };
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto& t = tokens[i];
    if (t->value.size() < 4 || seen_before(i)) continue;   // too short to redact without shredding the body
    std::vector<std::string> variants = mask_variants(t->value.view(), kMinVariant);
    // Longest first, so a value is not half-replaced through one of its own lines.
    std::sort(variants.begin(), variants.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& v : variants) n += replace_all(text, v, t->token.view());
    for (auto& v : variants) wipe(v);
  }
  if (truncated) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (seen_before(i)) continue;
      const std::string_view v = tokens[i]->value.view();
      for (std::size_t k = std::min(v.size() - 1, text.size()); k >= 1 && v.size() > 1; --k) {
        if (text.compare(text.size() - k, k, v.substr(0, k)) == 0) {
          wipe(text.data() + text.size() - k, k);
          text.resize(text.size() - k);
          ++n;
          break;
        }
      }
    }
  }
  return n;
}

bool is_text(const std::string& body) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  while (i < body.size()) {
    const unsigned char c = p[i];
    if (c == 0) return false;
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > body.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    if (len == 2 && c < 0xC2) return false;   // overlong
    i += len;
  }
  return true;
}

}  // namespace kz::mcp
