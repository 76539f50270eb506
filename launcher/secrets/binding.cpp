#include "secrets/binding.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

namespace kz {

namespace {

std::string_view strip_dot(std::string_view h) {
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  return h;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

bool prefix_glob(std::string_view pat, std::string_view s) {
  if (pat.empty()) return true;
  if (pat[0] == '*') {
    for (std::size_t i = 0; i <= s.size(); ++i)
      if (prefix_glob(pat.substr(1), s.substr(i))) return true;
    return false;
  }
  return !s.empty() && s[0] == pat[0] && prefix_glob(pat.substr(1), s.substr(1));
}

std::string host_pattern_problem(std::string_view p) {
  if (p.empty()) return "empty host";
  if (p == "*" || p == "*.") return "\"*\" would match every host (use --allow-any-host)";
  std::string_view rest = p.substr(0, 2) == "*." ? p.substr(2) : p;
  if (rest.empty()) return "nothing after \"*.\"";
  if (rest.find('*') != std::string_view::npos) return "\"*\" is allowed only as a leading \"*.\"";
  for (char c : rest) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '-' || c == '.' || c == ':' || c == '_' || c == '[' || c == ']'))
      return "invalid character in host name";
  }
  return {};
}

bool host_pattern_matches(std::string_view pattern, std::string_view host) {
  pattern = strip_dot(pattern);
  host = strip_dot(host);
  if (host.empty()) return false;
  if (pattern.substr(0, 2) == "*.") {
    const std::string_view suffix = pattern.substr(1);   // ".example.com"
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return iequals(pattern, host);
}

bool host_allowed(const Binding& b, std::string_view host) {
  if (b.allow_any && b.hosts.empty()) return !host.empty();
  return std::any_of(b.hosts.begin(), b.hosts.end(),
                     [&](const std::string& p) { return host_pattern_matches(p, host); });
}

bool method_allowed(const Binding& b, std::string_view method) {
  if (b.methods.empty()) return true;
  return std::find(b.methods.begin(), b.methods.end(), method) != b.methods.end();
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

// Valid UTF-8, no overlong forms, no surrogates (what a server may decode "%c0%ae" to
// differs: some read it as "."). Returns false on anything else.
bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else return false;   // continuation byte first, 0xc0/0xc1 (always overlong), > 0xf4
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

}  // namespace

// Servers and the proxies in front of them normalise paths differently: one decodes
// "%2e%2e" or "%252e%252e" (twice) to "..", treats "\" as "/", ";" as the end of a
// segment ("..;/"), collapses "//", or reads overlong UTF-8 ("%c0%ae") as ".". A path
// that any of them would read as another path than its bytes say cannot be judged
// against a prefix: a `paths` rule matches only a canonical path (issue 15, class 8).
const char* path_problem(std::string_view path) {
  if (path.empty() || path[0] != '/') return "not an absolute path";
  std::string decoded;
  std::string seg;
  auto dot_segment = [&] {
    const std::string_view name = std::string_view(seg).substr(0, seg.find(';'));
    return name == "." || name == "..";
  };
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\') return "a backslash";
    if (u < 0x21 || u == 0x7f) return "a control character or space";
    if (c == '%') {
      if (i + 2 >= path.size() || hex_value(path[i + 1]) < 0 || hex_value(path[i + 2]) < 0)
        return "a malformed percent escape";
      const auto v = static_cast<unsigned char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
      if (v == '.') return "an encoded dot (%2e)";
      if (v == '/' || v == '\\') return "an encoded slash (%2f, %5c)";
      if (v == '%') return "an encoded percent sign (double encoding, %25)";
      if (v < 0x20 || v == 0x7f) return "an encoded control character";
      decoded.push_back(static_cast<char>(v));
      seg.push_back(static_cast<char>(v));
      i += 2;
      continue;
    }
    if (u >= 0x80) {
      decoded.push_back(c);
      seg.push_back(c);
      continue;
    }
    if (c == '/') {
      if (dot_segment()) return "a dot segment (. or ..)";
      if (i > 0 && path[i - 1] == '/') return "an empty segment (//)";
      seg.clear();
      decoded.push_back(c);
      continue;
    }
    decoded.push_back(c);
    seg.push_back(c);
  }
  if (dot_segment()) return "a dot segment (. or ..)";
  if (!valid_utf8(decoded)) return "bytes that are not UTF-8 (or overlong UTF-8, such as %c0%ae)";
  return nullptr;
}

namespace {

}  // namespace

bool path_allowed(const Binding& b, std::string_view target) {
  if (b.paths.empty()) return true;
  if (target.empty()) return false;
  const auto q = target.find_first_of("?#");
  const std::string_view path = target.substr(0, q);
  if (path_problem(path) != nullptr) return false;
  return std::any_of(b.paths.begin(), b.paths.end(), [&](const std::string& p) { return prefix_glob(p, path); });
}

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

BindingVerdict refused(BindingRefusal why, std::string reason) { return {why, std::move(reason)}; }

}  // namespace

BindingVerdict check_host_binding(const Binding& b, std::string_view secret, std::string_view host) {
  // A key kz signs with (AWS SigV4) is never sent: a token of it in a request body or
  // header must not become the key (in the agent's write, or stored where it can be
  // read back). Signing checks its request with the binding's sign cleared.
  if (!b.sign.empty())
    return refused(BindingRefusal::SigningKey, std::string(secret) + " is a signing key (sign = \"" + b.sign +
                                                   "\"): kz signs requests with it and never sends it");
  if (host.empty()) return refused(BindingRefusal::NoHost, "no host name for the connection");
  if (host_allowed(b, host)) return {};
  return refused(BindingRefusal::Host, std::string(secret) + " may not be sent to " + std::string(host) +
                                           " (it is bound to " + (b.hosts.empty() ? "no host" : joined(b.hosts)) + ")");
}

std::string scope_refusal(const Binding& b, std::string_view secret, std::string_view service, std::string_view region) {
  auto listed = [](const std::vector<std::string>& allowed, std::string_view v) {
    return allowed.empty() || std::find(allowed.begin(), allowed.end(), v) != allowed.end();
  };
  if (!listed(b.services, service))
    return std::string(secret) + " may not sign for the service " + std::string(service) + " (allowed services: " +
           joined(b.services) + ")";
  if (!listed(b.regions, region))
    return std::string(secret) + " may not sign for the region " + std::string(region) + " (allowed regions: " +
           joined(b.regions) + ")";
  return "";
}

BindingVerdict check_binding(const Binding& b, std::string_view secret, std::string_view host,
                             std::string_view method, std::string_view target) {
  if (BindingVerdict v = check_host_binding(b, secret, host); !v) return v;
  if (!method_allowed(b, method)) {
    const std::string name(secret);
    if (method.empty())
      return refused(BindingRefusal::NoMethod, "no request line seen, and " + name + " may be used only with methods " + joined(b.methods));
    return refused(BindingRefusal::Method, name + " may not be used with " + std::string(method) +
                                               " (allowed methods: " + joined(b.methods) + ")");
  }
  if (!path_allowed(b, target)) {
    const std::string name(secret);
    if (target.empty())
      return refused(BindingRefusal::NoPath, "no request line seen, and " + name + " may be used only for paths " + joined(b.paths));
    // The query may carry tokens or other secrets: the reason names the path only.
    const std::string_view path = target.substr(0, target.find_first_of("?#"));
    if (const char* why = path_problem(path))
      return refused(BindingRefusal::Path, name + " may not be used for " + std::string(path) +
                                               " (not a canonical path: it has " + why + ")");
    return refused(BindingRefusal::Path, name + " may not be used for " + std::string(path) +
                                             " (allowed paths: " + joined(b.paths) + ")");
  }
  return {};
}

}  // namespace kz
