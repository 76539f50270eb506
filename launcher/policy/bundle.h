// bundle.yaml: the PDP's identities (JWT issuers), providers and policies.
//
//   identity:
//     issuers:
//       - issuer: "https://auth.example"   # iss must match
//         audience: "keyzero"              # aud must contain it
//         jwks_file: ./jwks.json           # or jwks_url (HTTPS); or hs256_key_env
//   providers:                             # the keys of [providers.*] in .keyzero.toml
//     vault: { address: "https://vault:8200" }
//   policies:
//   - match: "secret/data/prod/**"
//     rules:
//     - cel: "identity.service == 'data-pipeline-agent'"
//       effect: allow                      # allow | deny
//       mode: shadow                       # optional: evaluated and logged, never enforced
//       reveal: true                       # optional (MCP resolve): the value may be shown
//   secrets:                               # optional: what the MCP tools can resolve
//     GITHUB_TOKEN: { provider: vault, ref: "secret/data/gh#token", hosts: [api.github.com] }
//   mcp:                                   # optional: the MCP tools' settings
//     token_ttl: 15m
//     fetch: { allow_addresses: [loopback], ca_file: ./ca.pem, max_body: 1048576, timeout: 30s }
//
// Loading checks everything that can be checked before a request arrives: unknown keys,
// types, globs, provider settings against each provider's schema, and every rule's CEL
// (parsed and checked, errors with the rule's position and the offset in the
// expression). A bundle that fails to load never replaces one that works.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "kz/result.h"
#include "policy/cel.h"

namespace kz::policy {

// Approve (issue 19 part 5): allowed once a person approves this request (approvals:).
enum class Effect { Allow, Deny, Approve };
enum class RuleMode { Enforce, Shadow };

struct Rule {
  std::string id;        // "policies[0].rules[1]", for decisions and logs
  std::string cel;       // the expression, as written
  Effect effect = Effect::Deny;
  RuleMode mode = RuleMode::Enforce;
  bool reveal = false;   // MCP resolve may return the value itself
  SourcePos pos;         // of the rule
  std::shared_ptr<const cel::Program> program;
};

struct Policy {
  std::string id;        // "policies[0]"
  std::string match;     // ref glob: "*" one path segment, "**" any number
  std::vector<Rule> rules;
  SourcePos pos;
};

struct IssuerSpec {
  std::string issuer;
  std::string audience;
  std::string jwks_file;       // absolute (relative paths start at the bundle's directory)
  std::string jwks_url;        // https://
  std::string hs256_key_env;   // name of the variable holding the shared key (never the key)
  std::chrono::seconds leeway{60};
  SourcePos pos;
};

// approvals: { webhook: URL, timeout: 60s, ca_file: ./ca.pem }: where a decision that an
// `effect: approve` rule makes waits for a person (server/pdp_approval.h).
struct ApprovalsSpec {
  std::string webhook;                         // https:// (http:// only to this host); "" none
  std::chrono::milliseconds timeout{60000};
  std::string ca_file;                         // absolute; "" the system store
};

struct Bundle {
  std::string path;       // absolute
  std::string dir;
  std::string revision;   // SHA-256 of the file's bytes, hex: names the bundle in decisions
  std::vector<IssuerSpec> issuers;
  std::map<std::string, ProviderConfig> providers;
  std::vector<Policy> policies;
  std::vector<SecretSpec> secrets;   // secrets: (name, provider, ref, where it may be used)
  std::vector<SecretSpec> canaries;  // secrets: with canary: true (decoys; secrets/canary.h)
  McpConfig mcp;                     // mcp:
  ApprovalsSpec approvals;           // approvals: (where an effect: approve rule asks)
};

// Reads and checks the file. Errors name file:line:column and the field.
Result<Bundle> load_bundle(const std::string& path);
// The same from text (path names it in errors and anchors relative paths).
Result<Bundle> parse_bundle(std::string_view text, const std::string& path);

}  // namespace kz::policy
