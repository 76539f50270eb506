// Where a secret may be used (blind mode's broker and MCP's fetch alike): its hosts
// (exact names, IP literals and "*." globs), and optionally the HTTP methods and path
// prefixes of the request line. check_binding is the one decision both make, with one
// wording for its refusals.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kz {

// approve = ... (issue 19 part 5, secrets/approval.h): which uses of a secret wait for a
// person's approval before its value is sent.
enum class ApprovalMode : std::uint8_t {
  None,       // no approval
  First,      // approve = true: the first use; approved, the secret is free for approve_ttl
  Every,      // approve = "every": each request (by its hash) is approved on its own
  Matching,   // approve = { methods, paths }: each matching request, like Every
};

struct ApprovalRule {
  ApprovalMode mode = ApprovalMode::None;
  std::vector<std::string> methods;   // Matching: empty = any method
  std::vector<std::string> paths;     // Matching: prefix globs as `paths`; empty = any path
  std::int64_t ttl_seconds = -1;      // approve_ttl; -1: the default (First: the run; else 300)
};

struct Binding {
  std::vector<std::string> hosts;     // empty with allow_any: any host
  std::vector<std::string> methods;   // empty: any method
  std::vector<std::string> paths;     // empty: any path
  bool allow_any = false;             // --allow-any-host (still: verified TLS only)
  // sign = "sigv4" (issue 17): the secret is an AWS secret access key. kz never sends
  // it; it signs the agent's SigV4 requests made with access_key_id (sigv4.h).
  std::string sign;                   // "" (the value is swapped in) or "sigv4"
  std::string access_key_id;          // the credential scope's key id (not secret)
  std::vector<std::string> services;  // empty: any service in the scope
  std::vector<std::string> regions;   // empty: any region
  std::string session_token;          // the secret holding the session token ("" none)
  // mint_hosts (a client secret the agent sends to a token endpoint itself): where the
  // access tokens sealed from the responses on its connections may go (empty: none are sealed).
  std::vector<std::string> mint_hosts;
  ApprovalRule approve;               // approve = ...: uses that wait for a person
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
// Glob where '*' matches any run of bytes; true when `pat` matches a prefix of `s`.
bool prefix_glob(std::string_view pat, std::string_view s);
// Why a path (without its query) is not canonical, so that no `paths` rule matches it:
// dot segments (also "..;"), encoded dots, slashes or percent signs, backslashes, "//",
// control characters, bytes that are not UTF-8 or overlong UTF-8. nullptr: canonical.
const char* path_problem(std::string_view path);

// Why a binding refuses a use of its secret (None: it allows it).
enum class BindingRefusal : std::uint8_t {
  None,
  NoHost,      // no host name to check (blind: a connection without SNI or name)
  Host,        // the host is not among the bound ones
  NoMethod,    // methods are restricted and no request line was seen
  Method,      // the method is not an allowed one
  NoPath,      // paths are restricted and no request line was seen
  Path,        // the path is outside the allowed prefixes (or has dot segments)
  SigningKey,  // the secret is a key kz signs with (sign = "sigv4"): never sent
};

struct BindingVerdict {
  BindingRefusal refusal = BindingRefusal::None;
  // One sentence naming the secret and what did not match, for the audit record and the
  // agent ("" when allowed). Never holds a value, nor the query of the target.
  std::string reason;

  bool allowed() const { return refusal == BindingRefusal::None; }
  explicit operator bool() const { return allowed(); }
};

// May `secret`'s value be sent to `host` with this request line? Checks the host, then
// the method, then the path. `method` and `target` are empty when no request line was
// seen; `target` may carry a query (it is not part of the path).
BindingVerdict check_binding(const Binding& b, std::string_view secret, std::string_view host,
                             std::string_view method, std::string_view target);
// The host alone: for decisions made before a request line is known (blind mode checks
// the host before verifying the peer's certificate; MCP before following a redirect).
BindingVerdict check_host_binding(const Binding& b, std::string_view secret, std::string_view host);

// sign = "sigv4": may the secret sign for this credential scope (its services and
// regions)? "" or why not, naming the secret (the broker's decide_sign and MCP fetch).
std::string scope_refusal(const Binding& b, std::string_view secret, std::string_view service, std::string_view region);

// Empty when the pattern is acceptable, else why not (for config errors).
std::string host_pattern_problem(std::string_view pattern);

}  // namespace kz
