// The HTTP side of the MCP `fetch` tool: one HTTPS request made by kz itself (libcurl),
// redirects followed by hand so that every hop is re-checked, and an address guard that
// refuses loopback, link-local and cloud-metadata destinations after DNS resolution (the
// check runs on the address libcurl is about to connect to, so a name that resolves to
// 127.0.0.1 is caught, and so is a DNS answer that changes between hops).
//
// The engine knows nothing of tokens: before every hop it hands the caller's request
// (as the agent wrote it) to a PrepareHop callback, which swaps tokens for values under
// the blind-mode rules for that hop's host, or refuses the hop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/result.h"
#include "kz/wipe.h"
#include "mcp/address_guard.h"

namespace kz::mcp {

// RFC 9110 token characters only (HTTP methods and header field names).
bool is_http_token(std::string_view s);

struct HttpsUrl {
  std::string url;          // as normalised by libcurl's URL parser
  std::string host;         // lower case, IPv6 without brackets
  std::uint16_t port = 443;
  std::string target;       // path and query: "/v1/x?y=1" ("/" when empty)
};

// Headers the engine sets itself and drops from a PreparedHop (Content-Length,
// Transfer-Encoding, Expect, Accept-Encoding): what is signed must leave them out.
bool is_engine_header(std::string_view name);

// Only absolute https:// URLs with a host and no user:password part. ErrorKind::Usage
// with a sentence naming what is wrong ("only https:// URLs can be fetched").
Result<HttpsUrl> parse_https_url(std::string_view url);

// The request as the agent wrote it: headers and body may hold tokens.
struct FetchRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// What goes on the wire for one hop: may hold secret values, wiped after the hop.
struct PreparedHop {
  std::vector<std::pair<std::string, ScrubbedString>> headers;
  ScrubbedString body;
};

struct HopInfo {
  int hop = 0;                // 0: the first request; n: after the n-th redirect
  HttpsUrl url;
  std::string method;         // after the redirect rules (303 → GET, ...)
  bool host_changed = false;  // this hop's host differs from the first hop's
};

// Called before every hop with the agent's request as adjusted for this hop: method and
// body after the redirect rules (303, and 301/302 after POST, become GET without a
// body; 307/308 keep both), and, on a host change, without Authorization,
// Proxy-Authorization and Cookie headers. Returns the wire form or an error that stops
// the fetch (returned from fetch() as is).
using PrepareHop = std::function<Result<PreparedHop>(const HopInfo&, const FetchRequest&)>;

struct FetchOptions {
  AddressPolicy addresses;
  std::string ca_file;                        // extra trust anchors; "" the system store
  std::chrono::milliseconds timeout{30000};   // the whole fetch, redirects included
  std::size_t max_body = 1 << 20;             // bytes of the final body kept
  int max_redirects = 5;
};

struct FetchResponse {
  long status = 0;
  // Every header of the final response, names lower-cased, in order (the caller picks a
  // safe subset).
  std::vector<std::pair<std::string, std::string>> headers;
  ScrubbedString body;        // at most max_body bytes
  bool truncated = false;     // the body was longer
  std::string final_url;
  int redirects = 0;
  std::string peer_address;   // the address the final hop connected to ("127.0.0.1")
};

// Errors: Usage (a bad or non-https URL, in the request or a Location), Denied (the
// address guard refused the destination; too many redirects), Tls (the peer could not be
// verified), Timeout, Network; and whatever PrepareHop returned. Never a secret value in
// a message. Proxy environment variables are ignored: kz talks to the host directly.
// Framing is libcurl's: Content-Length, Transfer-Encoding and Expect headers from
// PrepareHop are not sent, and a header name that is not a token or a value with CR, LF
// or NUL is a Usage error (naming the header, never its value). When a redirect drops the
// body, the headers describing it (Content-Type, Content-Length, ...) go too. A failed
// hop on which the guard refused an address reports that refusal (Denied).
Result<FetchResponse> fetch(const FetchRequest& req, const FetchOptions& opts, const PrepareHop& prepare);

}  // namespace kz::mcp
