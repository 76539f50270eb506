// The audit log's record schema: every kind of record kz writes, as a C++ struct, and
// the one function that turns an event into its JSON record. Nothing else in kz builds
// an audit record by hand, so a field name lives in exactly one place (audit_schema.cpp)
// and the table below (`kz audit schema`, docs/audit.md "Record schema") lists them all.
//
// Records stay what they were before there was a schema, field for field: `kz audit
// query/summary`, SIEM queries and the tests read them. An optional field that is
// absent is left out of the record; an empty lineage is left out too.
//
// Fields every record may carry besides its own, added by the writer (audit_trail.h)
// and the log (audit_log.h): "ts" and "prev" (always), "run" and "pid" (records of
// `kz run`: the run id, and the launcher's pid when the event names no process).
//
// Never a secret value and never a token in any field: records name secrets, token ids
// (a digest prefix), hosts and decisions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace kz {

// Bumped when a kind or a field changes meaning or goes away (adding one does not).
inline constexpr int kAuditSchemaVersion = 1;

// ---- kz run ---------------------------------------------------------------------------

// "run.start": a run begins (after its log and sinks opened, before anything resolves).
struct RunStart {
  std::string mode{};     // "standard" | "blind" | "blind-proxy"
  std::string exe{};      // the command (argv[0])
  std::string config{};   // the .keyzero.toml used
  std::optional<std::string> config_sha256{};   // SHA-256 of that file as read (absent when unreadable)
  // Yama's ptrace_scope ("0".."3", "absent"): whether other processes of the user could
  // read the agent's memory before the shim makes it non-dumpable.
  std::optional<std::string> ptrace_scope{};
};

// "trust": blind mode checked the project's bindings against those the user trusted
// (`kz trust`): first use (pinned now), or refuse (they widened; nothing started).
struct TrustDecision {
  std::string decision{};   // "first-use" | "refuse"
  std::string config{};
  std::string config_sha256{};
  std::vector<std::string> changes{};   // "+ ..." widening, "- ..." narrowing
};

// "run.stop": the run ended; exactly once per run.start.
struct RunStop {
  std::optional<std::string> decision{};   // "error" when the run failed; absent when the command ran
  std::optional<std::string> reason{};
  std::optional<int> exit{};               // kz's exit status (absent: the run never started)
  // Processes of the run still alive when its command ended: "PID EXE (terminated |
  // killed | kept)" (run/survivors.h); left out when none.
  std::vector<std::string> survivors{};
};

// "resolve": one secret fetched from its provider (or through the PDP) for a run.
struct SecretResolved {
  std::string secret{}, provider{};
  std::optional<std::string> ref{};   // absent for exec (a command line may carry anything)
  std::string exe{};
  std::string decision{};             // "ok" | "deny" (PDP) | "error"
  std::optional<std::string> reason{};
  std::optional<std::string> via{};           // the PDP's URL
  std::optional<std::string> decision_id{};   // the PDP's decision id
};

// "token": blind mode minted a token for a secret.
struct TokenMinted {
  std::string secret{}, token_id{};
  std::vector<std::string> hosts{};   // ["*"] for --allow-any-host
  bool same_length = false;         // token and value have the same length
};

// "swap" | "redact": the broker's decision on one request of the shim or the proxy
// (secrets/decide.h). A redact record means a response carried a value.
enum class UseOp { Swap, Redact, Sign };
struct TokenUse {
  UseOp op = UseOp::Swap;
  std::string decision{};   // "allow" | "refuse"
  long pid = 0;
  std::string exe{}, host{}, channel{};          // channel: "openssl" | "gnutls" | "plain"
  std::vector<std::string> lineage{};        // root first; left out when empty
  std::optional<std::string> peer{}, method{}, path{};   // path without its query
  std::optional<std::string> secret{}, token_id{}, reason{};
  std::optional<std::string> grant{};        // "connection": the answer may be reused on it
  std::optional<std::uint32_t> uses{};       // a use report: swaps under a connection grant
  std::optional<std::uint64_t> conn{};       // the connection, as the shim or the proxy numbers it
  std::optional<std::string> via{};          // "proxy" when the fallback proxy asked
  std::optional<std::string> http_host{};    // the request's Host header (swap), as sent
  std::optional<std::string> service{}, region{};   // sign: the SigV4 credential scope's
};

// "broker.refuse": a process outside the run, or a malformed message, at the broker.
struct BrokerRefusal {
  long pid = 0;
  std::string exe{}, reason{};
};

// "route": which way a program's TLS goes under the fallback (the shim or the proxy).
struct ProgramRouted {
  long pid = 0;
  std::string exe{}, route{}, reason{};   // route: "shim" | "proxy"
};

// "fallback": the fallback proxy and its redirector started.
struct FallbackStarted {
  std::string redirector{};
  bool all_programs = false;
  std::vector<std::uint16_t> ports{};
};

// "proxy": a connection the proxy refused or passed through untouched.
struct ProxyConnection {
  std::string decision{}, reason{};   // decision: "refuse" | "passthrough"
  std::optional<long> pid{};
  std::optional<std::string> exe{}, host{}, peer{};
  std::optional<std::string> client{};   // when the original destination is unknown
  std::optional<std::uint64_t> conn{};
};

// "leak" | "exfil" | "sensor.error": what the TLS tap saw ("via": "tls-tap").
enum class TapKind { Leak, Exfil, SensorError };
struct TapFinding {
  TapKind kind = TapKind::Leak;
  std::string decision{};   // leak: "audit" | "kill"; exfil: "observed"; sensor.error: "error"
  std::string reason{};
  long pid = 0;
  std::string host{}, function{};
  std::optional<std::string> secret{}, peer{}, exe{};
  std::vector<std::string> lineage{};   // left out when empty
  std::string via = "tls-tap";          // the witness: "tls-tap" (kernel uprobes) | "shim" (in process)
};

// "sensor.summary": the TLS tap's counts at the end of a run.
struct TapUse {
  std::string secret{}, host{}, form{};   // form: "value" | "token"
  std::uint64_t writes = 0;
};
struct SensorSummary {
  std::uint64_t writes = 0, leaks = 0, exfil = 0, not_inspected = 0;
  std::vector<TapUse> uses{};
  std::vector<std::string> taps{};
  std::optional<std::string> decision{}, reason{};   // "error" when writes were not inspected
  // Which witness inspected how many of `writes` ("shim", "uprobe"), and which witness
  // covered each program of the run ("shim" | "uprobe" | "none"), when known.
  std::vector<std::pair<std::string, std::uint64_t>> witnesses{};
  std::vector<std::pair<std::string, std::string>> programs{};
  std::optional<std::string> mode{};   // "default" | "full"
  // Processes stopped at exec until their uprobes were in (programs with their own TLS
  // library): how many, and how long they waited (microseconds). Left out when none.
  std::uint64_t held = 0, held_max_us = 0, held_total_us = 0;
};

// "canary": a decoy credential (a secret with `canary = true`; secrets/canary.h) was
// seen. Nothing legitimate ever uses one, so every sight is high severity.
struct CanarySeen {
  std::string secret{};
  // Where: "shim" | "proxy" (TLS plaintext at the shim or the fallback proxy), "plain"
  // (plain TCP), "mcp" (an MCP fetch), "output" (the command's stdout/stderr), "tap"
  // (the eBPF TLS tap's uprobes), "witness" (the shim's in-process witness, standard mode).
  std::string where{};
  std::string decision{};   // "audit" | "kill" (the run was ended)
  std::string reason{};
  std::optional<long> pid{};
  std::optional<std::string> exe{}, host{}, peer{}, method{}, path{}, token_id{}, stream{}, via{};
  std::optional<std::string> sub{}, source{}, session{};   // MCP: who sent it
  std::vector<std::string> lineage{};   // left out when empty
};

// "rotate": a secret with `refresh` was re-read in the background (resolve/refresher.h):
// a new value taken ("ok"), a refresh that failed while the last good value is kept
// ("error", with `expires`), or that value's end with no good refresh ("expired": blind
// mode refuses every swap of it until a refresh succeeds). Never the value.
struct SecretRotated {
  std::string secret{}, provider{};
  std::string decision{};                  // "ok" | "error" | "expired"
  std::optional<std::string> reason{};
  std::optional<std::string> version{};    // the provider's version id of the new value (KV v2, AWS VersionId)
  std::optional<std::int64_t> lease_s{};   // the lease the provider gave the new value, seconds
  std::optional<std::string> expires{};    // when the value in use stops being used (UTC, ISO 8601)
  std::optional<bool> changed{};           // "ok": whether the value differs from the one before
  std::optional<std::string> token_id{};   // blind mode: the token that stays the same
};

// "run.restart": `kz run --restart-on-change` restarted the command because a value
// changed: the old process got `signal`, then SIGKILL after `grace_ms` if still there.
struct RunRestarted {
  std::vector<std::string> secrets{};      // the secrets whose values changed
  std::string signal{};                    // "SIGTERM", ...
  std::int64_t grace_ms = 0;
  long old_pid = 0;
  std::string outcome{};                   // "exited" | "killed" | "gone" (it had ended already)
  std::optional<int> status{};             // the old process's status, as a shell reports it
  std::optional<long> new_pid{};
};

// "mint": a minted credential (resolve/oauth_mint.h). kz fetched an OAuth access token
// (source "start" or "refresh"), or sealed one the agent's own token request returned
// (source "response": the agent got a new token, the value stayed in kz). No values.
struct OAuthMint {
  std::string secret{};
  std::string source{};     // "start" | "refresh" | "response"
  std::string decision{};   // "ok" | "error"
  std::optional<std::string> token_id{}, host{}, reason{};
  std::optional<std::int64_t> expires_in{};   // seconds, as the token endpoint said
  std::optional<long> pid{};
};

// "approve": a use that waits for a person (approve = ... in .keyzero.toml, or a bundle
// rule with effect: approve): asked, then approved, denied or timed out. Never a value,
// a token, nor the query of the path.
struct ApprovalEvent {
  std::string secret{};
  std::string decision{};       // "asked" | "approved" | "denied" | "timeout"
  std::string channel{};        // "tty" | "socket" | "webhook" | "timeout" | "stop" | "pdp"
  std::string request_hash{};   // what the approval is bound to (secrets/approval.h)
  std::optional<std::string> by{}, host{}, method{}, path{}, token_id{}, reason{};
  std::optional<long> pid{};
  std::optional<std::string> exe{};
  std::optional<std::string> sub{}, ref{}, decision_id{};   // the PDP's: who asked, for what
};

// ---- the audit sinks ------------------------------------------------------------------

// "audit.sink": at the end of a run, records a sink did not deliver (decision "error").
struct SinkShortfall {
  std::string sink{};   // "syslog" | "http"
  std::string run{};
  std::size_t delivered = 0, dropped = 0;
  std::string reason{};
};

// "audit.sink.dropped": to the sink only (not the file), ahead of the next batch.
struct SinkDropped {
  std::string sink{}, ts{};
  std::size_t dropped = 0;
  std::string reason{};
};

// ---- kz mcp and the MCP endpoint of kz server -----------------------------------------

// "mcp.start" / "mcp.stop": kz mcp (stdio) began / ended serving (decision "ok").
struct McpStart {
  std::string transport{}, sub{}, bundle{};
  bool policy = false;   // policy decides every call (--bundle)
};
struct McpStop {
  std::string transport{};
};

// "mcp.call": one tool call (resolve or fetch) and its decision.
struct McpCall {
  std::string tool{}, transport{}, sub{};
  std::optional<std::string> source{}, session{};
  std::string decision{};   // "allow" | "deny" | "error"
  std::optional<std::string> reason{};
  // resolve
  std::optional<std::string> secret{}, ref{}, provider{}, policy{}, rule{}, revision{}, token_id{};
  std::optional<bool> revealed{};
  // fetch
  std::optional<std::string> method{}, host{}, path{}, final_host{};
  std::optional<std::vector<std::string>> secrets{}, token_ids{};
  std::optional<long> status{};
  std::optional<int> redirects{};
  std::optional<std::size_t> redacted{};
};

// "mcp.refused" | "mcp.auth": a message or request refused before any tool ran
// (decision "deny").
enum class McpRefusalKind { Refused, Auth };
struct McpRefusal {
  McpRefusalKind kind = McpRefusalKind::Refused;
  std::string transport{}, reason{};
  std::optional<int> code{};   // the JSON-RPC error code
  std::optional<std::string> method{}, sub{}, source{}, session{};
};

// ---- kz server (the PDP) --------------------------------------------------------------

// "pdp.start" / "pdp.stop": the server began / stopped serving (decision "ok").
struct PdpStart {
  std::string listen{}, bundle{}, revision{};
};
struct PdpStop {};
// "pdp.reload": the bundle was reloaded (decision "ok"), or not ("error").
struct PdpReload {
  std::string decision{}, trigger{}, revision{};
  std::optional<std::string> reason{};
};
// "pdp.auth": an API request whose identity did not verify (decision "deny").
struct PdpAuthRefusal {
  std::string endpoint{}, source{}, revision{}, reason{};
};
// "decision": one /v1/decide or /v1/resolve answer, with its input and per-secret results.
struct PdpDecision {
  std::string decision{};   // "allow" (every secret) | "deny"
  std::string decision_id{}, endpoint{}, revision{}, source{}, sub{};
  nlohmann::json input{}, result{};   // the policy input (identity claims, secrets, request); the results
  // The same two already serialised (compact JSON, keys sorted as nlohmann sorts them):
  // when both are set, input and result are not used, and the record is written without
  // a json tree (the PDP writes one per request).
  std::string input_json{}, result_json{};
  bool serialized() const { return !input_json.empty() && !result_json.empty(); }
};

using AuditEvent =
    std::variant<RunStart, RunStop, TrustDecision, SecretResolved, TokenMinted, TokenUse, BrokerRefusal, ProgramRouted,
                 FallbackStarted, ProxyConnection, TapFinding, SensorSummary, SinkShortfall, SinkDropped, McpStart,
                 McpStop, McpCall, McpRefusal, PdpStart, PdpStop, PdpReload, PdpAuthRefusal, PdpDecision, CanarySeen,
                 SecretRotated, RunRestarted, OAuthMint, ApprovalEvent>;

// The JSON record of an event, without "ts", "prev", "run" (the log and the writer add
// those) and without "pid" unless the event names a process.
nlohmann::json to_record(const AuditEvent& event);
nlohmann::json to_record(AuditEvent&& event);   // moves what it can out of the event
// A decision record with input_json and result_json set, field by field for the log
// (audit_log.h), without ts/prev/run.
struct SerializedRecord;
SerializedRecord serialized_record(PdpDecision&& e);
// The "event" field an event is recorded under.
std::string_view event_name(const AuditEvent& event);

// One row of the schema table: a kind of record, its fields, what it means.
struct AuditKind {
  std::string_view name{};      // the "event" field
  std::size_t alternative{};    // index into AuditEvent
  std::string_view fields{};    // "a b c? d[]": ? optional, [] a list, {} an object
  std::string_view meaning{};
};
// Every kind, in the order of AuditEvent.
const std::vector<AuditKind>& audit_kinds();
// The fields every record may carry besides its own (see the top of this file).
inline constexpr std::string_view kAuditCommonFields = "ts prev run? pid? replica?";
// The table as Markdown (`kz audit schema`; docs/audit.md holds the same text).
std::string audit_schema_markdown();

}  // namespace kz
