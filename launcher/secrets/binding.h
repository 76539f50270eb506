// Where a secret may be used in blind mode: its hosts (exact names, IP literals and
// "*." globs), and optionally the HTTP methods and path prefixes of the request line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kz {

struct Binding {
  std::vector<std::string> hosts;     // empty with allow_any: any host
  std::vector<std::string> methods;   // empty: any method
  std::vector<std::string> paths;     // empty: any path
  bool allow_any = false;             // --allow-any-host (still: verified TLS only)
};

// Host names compare case-insensitively, a trailing dot ignored. "*.example.com"
// matches any name below example.com (a.example.com, a.b.example.com), not
// example.com itself. "*" alone is not a valid pattern (use --allow-any-host).
bool host_pattern_matches(std::string_view pattern, std::string_view host);
bool host_allowed(const Binding& b, std::string_view host);

// Methods compare case-sensitively (HTTP methods are). An empty method (no request line
// seen on the connection) is allowed only when no methods are configured.
bool method_allowed(const Binding& b, std::string_view method);

// A path pattern is a prefix glob: it matches a request target whose beginning matches
// it, where "*" matches any run of characters ("/v1/" covers everything under /v1/;
// "/repos/*/issues" covers /repos/a/issues/3). The query string is not part of the
// path. An unknown path (no request line seen) is allowed only when no paths are set.
bool path_allowed(const Binding& b, std::string_view target);

// Empty when the pattern is acceptable, else why not (for config errors).
std::string host_pattern_problem(std::string_view pattern);

}  // namespace kz
