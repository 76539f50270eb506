// Entry points of the kz subcommands. Each returns the process exit code.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kz {

// Exit codes (README "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitConfig = 2;       // configuration, usage or resolution error
inline constexpr int kExitCanary = 3;       // a canary was seen and on_canary = "kill" ended the run
inline constexpr int kExitCannotExec = 126;
inline constexpr int kExitNotFound = 127;

struct GlobalOptions {
  std::string config;      // --config; empty: search from the working directory upwards
  int verbosity = 0;
  bool quiet = false;
};

struct RunOptions {
  std::vector<std::string> only;
  bool no_masking = false;
  bool no_pty = false;
  std::optional<std::string> mask_replacement;
  std::vector<std::string> env_files;
  bool override_env = false;
  bool clean_env = false;
  std::vector<std::string> keep_env;
  std::string audit_log;     // --audit-log; empty: [audit] path or the default
  bool blind = false;        // --blind: tokens in the environment, swapped by the shim
  bool blind_proxy = false;  // --blind=proxy: every program's TLS goes through kz's proxy
  bool blind_mode_given = false;
  bool keep_survivors = false;     // --keep-survivors: the run's processes that outlive the command stay   // --blind=shim|proxy given: [blind] mode does not apply
  std::string redirector;    // --redirector: auto|ebpf|seccomp|off (empty: [blind] redirector)
  bool allow_any_host = false;
  bool no_sensors = false;         // --no-sensors: no eBPF process tree or TLS tap for this run
  std::string identity_token_file;  // --identity-token-file: the JWT for [server] url
  std::string on_leak = "audit";   // --on-leak: audit|kill (the TLS tap's answer to a leak)
  std::string on_canary;           // --on-canary: audit|kill (empty: [canary] on_canary)
  std::string sensors = "default"; // --sensors: default|full (which witness inspects TLS writes)
  // --restart-on-change (standard mode): when a secret with `refresh` changes, the command
  // gets --restart-signal, SIGKILL after --restart-grace if still running, and starts
  // again with the new values.
  bool restart_on_change = false;
  std::string restart_signal = "SIGTERM";
  std::string restart_grace = "10s";
  std::string approve_via;         // --approve-via: URL of the approval webhook (empty: the terminal)
  std::string approve_timeout = "120s";   // --approve-timeout: how long an approval is waited for
  std::vector<std::string> command;
};

// `kz approve [CODE]`: answer a blind run's approval prompt from another shell.
struct ApproveOptions {
  std::string code;          // empty: list what waits
  std::string run;           // the run the prompt names ("KZPID-HEX"): its socket only
  bool deny = false;
};

struct AuditOptions {
  std::string action;        // "verify" | "summary" | "query" | "schema"
  std::string file;          // empty: the default audit log
  // query filters (empty: not filtered); since/until are parsed by cmd_audit.
  std::string secret, host, event, decision, run, since, until, pid;
  bool json = false;         // query: print the matching JSON lines unchanged
};

struct CheckOptions {
  bool resolve = false;
};

struct PolicyOptions {
  std::string action;        // "check" | "test"
  std::string bundle;
  // test: the decision's input
  std::string claims_file;   // JSON object: the identity's claims
  std::string ref, provider, name;
  std::string host, method, path, source;
  bool json = false;
};

struct TrustOptions {
  bool yes = false;          // record without asking
};

int cmd_run(const GlobalOptions& g, const RunOptions& o);
int cmd_trust(const GlobalOptions& g, const TrustOptions& o);
int cmd_approve(const GlobalOptions& g, const ApproveOptions& o);
int cmd_check(const GlobalOptions& g, const CheckOptions& o);
int cmd_doctor(const GlobalOptions& g);
int cmd_audit(const GlobalOptions& g, const AuditOptions& o);
int cmd_policy(const GlobalOptions& g, const PolicyOptions& o);

struct ServerOptions {
  std::string bundle;
  std::string listen = "127.0.0.1:8787";
  std::string tls_cert, tls_key;
  std::string audit_log;     // the decision log (default: the audit log's default path)
  unsigned threads = 0;      // 0: one per core
  bool mcp = false;          // also serve MCP (Streamable HTTP) at /mcp
  std::string replica_id;    // --replica-id: "replica" in every record (default with mcp.replicas: HOST-PID)
  std::string on_canary;     // --on-canary: "audit" (default) | "kill" (revoke the identity that used it)
};
int cmd_server(const GlobalOptions& g, const ServerOptions& o);

struct McpOptions {
  std::string bundle;               // else the .keyzero.toml (--config or found)
  std::string identity_token_file;  // else $KZ_IDENTITY_TOKEN
  std::string audit_log;
  std::string on_canary;            // --on-canary: "audit" | "kill"; "" ([canary] on_canary with --config)
};
int cmd_mcp(const GlobalOptions& g, const McpOptions& o);

inline constexpr const char* kKzVersion = "0.1.0";

}  // namespace kz
