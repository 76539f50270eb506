// The MCP fetch tool signing with an AWS secret access key (a secret with sign =
// "sigv4", docs/aws.md): the caller names the secret and the credential scope (service,
// region) and gives the request; kz adds X-Amz-Date, X-Amz-Content-Sha256, the session
// token and Authorization, signed with the real key over the request exactly as libcurl
// sends it (Host included), on every hop (a redirect is signed again, for its own host,
// only where the binding allows it). The caller sees the response, never the key, the
// session token or the headers kz added.
#pragma once

#include <string>
#include <string_view>

#include "kz/result.h"
#include "kz/secret.h"
#include "mcp/fetch_engine.h"
#include "secrets/binding.h"

namespace kz::mcp {

// What kz signs with, resolved for one fetch.
struct SigningCredentials {
  std::string secret;          // the secret's name
  std::string provider, ref;   // where it came from (what policy decides on)
  Binding binding;             // sign = "sigv4"
  std::string access_key_id;   // not secret
  SecretValue key;
  SecretValue session_token;   // empty: none
};

struct SignScope {
  std::string service, region;
};

// "" when the caller may set this header on a request kz signs, else why not
// (Authorization and the X-Amz-* headers kz sets).
std::string sign_header_problem(std::string_view name);

// Why kz will not sign this hop ("": it will): the binding's hosts, methods and paths as
// for any use of the secret, then the scope's service and region.
std::string sign_refusal(const SigningCredentials& c, const SignScope& scope, const HopInfo& hop);

// The Host header libcurl sends for the hop's URL ("host", "host:port", "[::1]:port").
std::string host_header(const HttpsUrl& url);

// Signs `wire` (the hop's headers and body as they will be sent) in place: adds Host and
// the signing headers, the last of them Authorization. `amz_date` is "yyyymmddThhmmssZ".
Status sign_hop(PreparedHop& wire, const HopInfo& hop, const SigningCredentials& c, const SignScope& scope,
                const std::string& amz_date);

}  // namespace kz::mcp
