#include "config/mcp_settings.h"

#include <charconv>

#include "kz/providers/registry.h"
#include "secrets/binding.h"

namespace kz {

namespace {

struct KeyInfo {
  const char* key;
  McpKeyType type;
};

constexpr KeyInfo kKeys[] = {
    {"token_ttl", McpKeyType::Scalar},        {"allowed_hosts", McpKeyType::List},
    {"fetch", McpKeyType::Table},             {"fetch.allow_addresses", McpKeyType::List},
    {"fetch.ca_file", McpKeyType::Scalar},    {"fetch.max_body", McpKeyType::Scalar},
    {"fetch.timeout", McpKeyType::Scalar},    {"fetch.max_redirects", McpKeyType::Scalar},
    {"replicas", McpKeyType::Table},          {"replicas.key_provider", McpKeyType::Scalar},
    {"replicas.key_ref", McpKeyType::Scalar}, {"replicas.deny_list", McpKeyType::Scalar},
    {"replicas.session_ttl", McpKeyType::Scalar},
};

bool parse_uint(const std::string& s, unsigned long long& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

McpKeyType mcp_key_type(std::string_view key) {
  for (const auto& k : kKeys)
    if (key == k.key) return k.type;
  return McpKeyType::Unknown;
}

std::string mcp_known_keys(std::string_view table) {
  std::string out;
  const std::string prefix = table.empty() ? "" : std::string(table) + ".";
  for (const auto& k : kKeys) {
    std::string_view key = k.key;
    if (key.substr(0, prefix.size()) != prefix) continue;
    key.remove_prefix(prefix.size());
    if (key.find('.') != std::string_view::npos) continue;
    out += (out.empty() ? "" : ", ") + std::string(key);
  }
  return out;
}

std::string set_mcp_scalar(McpConfig& c, std::string_view key, const std::string& text) {
  if (key == "token_ttl") {
    auto d = parse_duration(text);
    if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(24))
      return "must be a duration between 1s and 24h, e.g. \"15m\"";
    c.token_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
  } else if (key == "fetch.ca_file") {
    if (text.empty()) return "must not be empty";
    c.fetch.ca_file = text;
  } else if (key == "fetch.max_body") {
    unsigned long long n = 0;
    if (!parse_uint(text, n) || n < 1024 || n > (64ull << 20)) return "must be a number of bytes between 1024 and 67108864";
    c.fetch.max_body = static_cast<std::size_t>(n);
  } else if (key == "fetch.timeout") {
    auto d = parse_duration(text);
    if (!d || d->count() <= 0 || *d > std::chrono::minutes(10)) return "must be a duration between 1ms and 10m, e.g. \"30s\"";
    c.fetch.timeout = *d;
  } else if (key == "fetch.max_redirects") {
    unsigned long long n = 0;
    if (!parse_uint(text, n) || n > 20) return "must be an integer between 0 and 20";
    c.fetch.max_redirects = static_cast<int>(n);
  } else if (key == "replicas.key_provider") {
    if (find_provider_spec(text) == nullptr) return "names no provider (known: " + provider_names() + ")";
    c.replicas.key_provider = text;
  } else if (key == "replicas.key_ref" || key == "replicas.deny_list") {
    if (text.empty()) return "must not be empty";
    (key == "replicas.key_ref" ? c.replicas.key_ref : c.replicas.deny_list) = text;
  } else if (key == "replicas.session_ttl") {
    auto d = parse_duration(text);
    if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(24))
      return "must be a duration between 1s and 24h, e.g. \"60m\"";
    c.replicas.session_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
  } else {
    return "is not a single value";
  }
  return "";
}

std::string set_mcp_list(McpConfig& c, std::string_view key, const std::vector<std::string>& items) {
  if (key == "allowed_hosts") {
    for (const auto& h : items)
      if (auto why = host_pattern_problem(h); !why.empty()) return "\"" + h + "\": " + why;
    c.allowed_hosts = items;
  } else if (key == "fetch.allow_addresses") {
    for (const auto& a : items) {
      if (a == "loopback") c.fetch.allow_loopback = true;
      else if (a == "link-local") c.fetch.allow_link_local = true;
      else if (a == "metadata") c.fetch.allow_metadata = true;
      else return "\"" + a + "\" is not an address class (known: loopback, link-local, metadata)";
    }
  } else {
    return "is not a list";
  }
  return "";
}

}  // namespace kz
