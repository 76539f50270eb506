// .keyzero.toml: the [secrets] to resolve, [providers.*] settings, [masking] options.
// Every error names file:line:column and the field; nothing is half-loaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kz/providers/provider.h"
#include "audit/audit_settings.h"
#include "secrets/binding.h"
#include "kz/result.h"

namespace kz {

// A minted credential (kind = "oauth2-client-credentials"; resolve/oauth_mint.h): kz
// fetches an access token from token_url with the client id and the client secret
// (that secret's own provider and ref: SecretSpec::provider/ref), RFC 6749 section 4.4,
// and renews it before it expires. The secret's value is the access token.
struct OAuthClientSpec {
  std::string token_url;             // https:// (http:// only to 127.x, localhost, [::1])
  std::string client_id;
  std::vector<std::string> scopes;   // sent space-separated as `scope` (none: left out)
  std::string audience;              // sent as `audience` when set
  bool client_auth_post = false;     // client_auth = "post": id and secret in the body; default "basic"
  std::chrono::seconds refresh_skew{60};   // renew this long before expiry (at most half the lifetime)
  std::string ca_file;               // extra trust anchors for token_url (config-relative)
  std::string ca_pem;                // ca_file's bytes, read once before the first mint (resolver.cpp)
  bool has_client_secret = false;    // client_secret = {...} was given
  SourcePos pos;                     // where `kind` was declared
};

struct SecretSpec {
  std::string name;        // environment variable name
  std::string provider;    // registry name
  std::string ref;
  std::vector<std::string> hosts;    // blind mode: hosts the value may be sent to
  std::vector<std::string> methods;  // blind mode: allowed HTTP methods (empty: any)
  std::vector<std::string> paths;    // blind mode: allowed path prefixes (empty: any)
  // AWS SigV4 (docs/aws.md): sign = "sigv4" makes this secret an AWS secret access key
  // that kz signs with instead of sending; access_key_id goes to the command as
  // AWS_ACCESS_KEY_ID; session_token names the secret holding the session token.
  std::string sign;
  std::string access_key_id;
  std::vector<std::string> services, regions;
  std::string session_token;
  // format = "aws-credentials" (with sign): the value is a JSON credential set
  // (secrets/aws_credential_set.h) that also gives the access key id and the session token.
  std::string format;
  // from = "KEY": this secret is the session token of KEY's credential set (KEY has
  // format = "aws-credentials" and session_token naming this one); provider and ref are
  // KEY's, and it is never resolved on its own.
  std::string from;
  SourcePos pos;
  // A canary (decoy): `canary = true`. No provider and no value: kz makes up a
  // plausible fake credential for it, bound nowhere; any sight of it is a "canary"
  // record (secrets/canary.h). Canaries are kept in Config::canaries, not `secrets`.
  bool canary = false;
  std::string shape;                 // canary: "" (by its name) or a shape name (canary.h)
  // Rotation (resolve/refresher.h): `refresh = "5m"` re-reads the value every interval
  // (at least kMinRefresh), and sooner when the provider's lease ends first; `refresh =
  // "lease"` follows the provider's lease alone. `max_stale`: how long the last good value
  // is used after refreshes start failing (default: the lease's end, else 3 × refresh).
  std::chrono::milliseconds refresh{0};   // 0: no interval
  bool refresh_lease = false;             // refresh = "lease"
  std::chrono::milliseconds max_stale{0}; // 0: the default above
  bool refreshes() const { return refresh.count() > 0 || refresh_lease; }
  // kind = "oauth2-client-credentials": the value is an access token kz mints (and
  // renews) with the client secret that provider/ref name (client_secret = {...}).
  std::optional<OAuthClientSpec> oauth;
  // A client secret the agent sends to a token endpoint itself (blind mode): the
  // access_token / refresh_token / id_token of a JSON response on a connection that
  // carried this secret are sealed (replaced by new tokens, same length) and bound to
  // these hosts. Empty: responses are not sealed.
  std::vector<std::string> mint_hosts;
  // approve = true | "every" | { methods, paths } and approve_ttl (secrets/approval.h):
  // the uses that wait for a person's approval in blind mode.
  ApprovalRule approve;
};

// The shortest refresh interval a secret may ask for (a provider is not a busy loop).
inline constexpr std::chrono::milliseconds kMinRefresh{5000};

struct ProviderConfig {
  ProviderSettings settings;     // validated against the provider's schema
  std::chrono::milliseconds timeout{10000};
  SourcePos pos;
};

struct MaskingConfig {
  bool enabled = true;
  std::string replacement = "<concealed by kz>";
};

struct BlindConfig {
  std::string ca_file;   // extra trust anchors for verifying peers in blind mode
  // reuse = "connection" (default): a secret without methods/paths is granted per TLS
  // connection (uses reported in batches). "request": the broker decides every request
  // and writes one record per substitution; the value is in the agent only during a write.
  bool grant_connections = true;
  // Destination ports, besides 443, whose connections from programs the shim cannot
  // serve go to the fallback proxy.
  std::vector<std::uint16_t> proxy_ports;
  std::string redirector = "auto";   // auto | ebpf | seccomp | off
  // mode = "shim" (default) | "proxy": what a plain `kz run --blind` means. "proxy" is
  // the strong form (no shim, no broker socket in the agent's reach; see
  // docs/security.md); `--blind=shim` / `--blind=proxy` on the command line win.
  std::string mode = "shim";
  // token_shape = "auto" (default) | "plain": a token keeps its value's vendor prefix
  // (`sk-proj-`, `xoxb-`, ...) and length, or is always a bare KZ_TOK_ token.
  std::string token_shape = "auto";
  // http2 = true (default): the shim leaves h2 in the client's ALPN offer and swaps in
  // HTTP/2 (preload/h2.h). false: h2 is removed from the offer, so servers answer HTTP/1.1.
  bool http2 = true;
};

// [server]: resolve through a kz PDP (kz server start) instead of the providers.
struct ServerConfig {
  std::string url;                   // https://pdp:8787 (http:// only to this host)
  std::string ca_file;               // extra trust anchors for the PDP (config-relative)
  std::string identity_token_file;   // a JWT file, e.g. a Kubernetes projected token
  SourcePos url_pos;
};

// [mcp] in .keyzero.toml, mcp: in bundle.yaml: the MCP server's tools (kz mcp,
// kz server start --mcp).
struct McpFetchConfig {
  // Destinations refused unless listed in allow_addresses: "loopback", "link-local",
  // "metadata" (cloud metadata endpoints such as 169.254.169.254).
  bool allow_loopback = false, allow_link_local = false, allow_metadata = false;
  std::string ca_file;                          // extra trust anchors (config-relative)
  std::size_t max_body = 1 << 20;               // bytes of a response body returned
  std::chrono::milliseconds timeout{30000};     // default and ceiling of timeout_ms
  int max_redirects = 5;
};

// mcp.replicas: tokens and sessions sealed (AES-256-GCM) under a key every replica gets
// from the same provider, so any replica verifies what another issued
// (mcp/replica_seal.h). Off unless key_provider is set.
struct McpReplicaConfig {
  std::string key_provider, key_ref;            // the sealing key (32 bytes: raw, hex or base64)
  std::string deny_list;                        // revoked token and session ids, a file (config-relative)
  std::chrono::seconds session_ttl{3600};       // a sealed session's lifetime
  bool enabled() const { return !key_provider.empty(); }
};

struct McpConfig {
  McpFetchConfig fetch;
  McpReplicaConfig replicas;
  std::chrono::seconds token_ttl{900};          // how long a resolve token stays usable
  // Host / Origin header values (host names, no port) accepted on the HTTP endpoint
  // besides localhost, 127.0.0.1 and [::1]: DNS-rebinding protection.
  std::vector<std::string> allowed_hosts;
};

// [canary]: what a sight of a canary does. on_canary = "audit" (default) writes the
// record; "kill" also ends the run (`kz run --on-canary` overrides it).
struct CanaryConfig {
  bool kill = false;
  SourcePos pos;
};

struct Config {
  std::string path;                            // absolute path of the file
  std::string dir;                             // its directory
  std::vector<SecretSpec> secrets;             // in file order
  std::map<std::string, ProviderConfig> providers;
  MaskingConfig masking;
  AuditConfig audit;
  BlindConfig blind;
  ServerConfig server;
  McpConfig mcp;
  std::vector<SecretSpec> canaries;            // `canary = true` and [canary] names, in file order
  CanaryConfig canary;

  const SecretSpec* find_secret(const std::string& name) const;
};

inline constexpr const char* kConfigFileName = ".keyzero.toml";
inline constexpr std::chrono::milliseconds kDefaultProviderTimeout{10000};

// Walk from `start_dir` up to / looking for .keyzero.toml (like git looks for .git).
std::optional<std::string> find_config_file(const std::string& start_dir);

Result<Config> load_config_file(const std::string& path);
// Parse TOML text; `path` is used in messages and for config-relative paths.
Result<Config> parse_config(const std::string& text, const std::string& path);

// "" when `item` is acceptable in a secret's `key` list (hosts, methods, paths), else why not.
std::string binding_item_problem(const std::string& key, const std::string& item);

// AWS SigV4 keys of a secret (docs/aws.md), shared by .keyzero.toml and bundle.yaml:
// "" when `value` is acceptable for `key` (sign, access_key_id, session_token, format,
// from; an item of services or regions), else why not.
std::string signing_item_problem(const std::string& key, const std::string& value);
// "" when a secret's signing keys fit together, else why not, naming the key
// ("access_key_id: ...").
std::string signing_problem(const SecretSpec& s);
// After every secret is read: session_token and from name declared secrets that fit
// (`secrets` in file order; a `from` secret takes its key's provider and ref). "" or why
// not, naming the secret and key.
std::string link_signing_secrets(std::vector<SecretSpec>& secrets, const SecretSpec** where);

// Valid environment variable name: [A-Za-z_][A-Za-z0-9_]*
bool is_env_name(const std::string& s);

// "500ms", "10s", "2m", "1h", or a bare number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& s);

}  // namespace kz
