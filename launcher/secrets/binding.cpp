#include "secrets/binding.h"

#include <algorithm>
#include <cctype>

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

// Glob where '*' matches any run of bytes; true when `pat` matches a prefix of `s`.
bool prefix_glob(std::string_view pat, std::string_view s) {
  if (pat.empty()) return true;
  if (pat[0] == '*') {
    for (std::size_t i = 0; i <= s.size(); ++i)
      if (prefix_glob(pat.substr(1), s.substr(i))) return true;
    return false;
  }
  return !s.empty() && s[0] == pat[0] && prefix_glob(pat.substr(1), s.substr(1));
}

}  // namespace

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

// A "." or ".." segment, also percent-encoded (%2e) or behind an encoded slash (%2f) or
// a backslash: servers resolve them, so "/v1/../admin" must not pass as under "/v1/".
bool has_dot_segment(std::string_view path) {
  std::string seg;
  auto dot_only = [&] { return seg == "." || seg == ".."; };
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%' && i + 2 < path.size()) {
      const char h = path[i + 1], l = static_cast<char>(path[i + 2] | 0x20);
      if (h == '2' && l == 'e') { c = '.'; i += 2; }
      else if (h == '2' && l == 'f') { c = '/'; i += 2; }
      else if (h == '5' && l == 'c') { c = '/'; i += 2; }
    }
    if (c == '\\') c = '/';
    if (c == '/') {
      if (dot_only()) return true;
      seg.clear();
    } else {
      seg.push_back(c);
    }
  }
  return dot_only();
}

}  // namespace

bool path_allowed(const Binding& b, std::string_view target) {
  if (b.paths.empty()) return true;
  if (target.empty()) return false;
  const auto q = target.find_first_of("?#");
  const std::string_view path = target.substr(0, q);
  if (has_dot_segment(path)) return false;
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
  if (host.empty()) return refused(BindingRefusal::NoHost, "no host name for the connection");
  if (host_allowed(b, host)) return {};
  return refused(BindingRefusal::Host, std::string(secret) + " may not be sent to " + std::string(host) +
                                           " (it is bound to " + (b.hosts.empty() ? "no host" : joined(b.hosts)) + ")");
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
    return refused(BindingRefusal::Path, name + " may not be used for " + std::string(path) +
                                             " (allowed paths: " + joined(b.paths) + ")");
  }
  return {};
}

}  // namespace kz
