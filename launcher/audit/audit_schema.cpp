#include "audit/audit_schema.h"

#include "audit/audit_log.h"
#include "core/json_dump.h"

#include <type_traits>

namespace kz {

namespace {

using json = nlohmann::json;

template <class T>
void put(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

void put_lineage(json& j, const std::vector<std::string>& lineage) {
  if (!lineage.empty()) j["lineage"] = lineage;
}

const char* use_name(UseOp op) {
  switch (op) {
    case UseOp::Redact: return "redact";
    case UseOp::Sign: return "sign";
    case UseOp::Swap: break;
  }
  return "swap";
}

const char* tap_name(TapKind k) {
  switch (k) {
    case TapKind::Leak: return "leak";
    case TapKind::Exfil: return "exfil";
    case TapKind::SensorError: return "sensor.error";
  }
  return "leak";
}

const char* refusal_name(McpRefusalKind k) { return k == McpRefusalKind::Auth ? "mcp.auth" : "mcp.refused"; }

// One overload per kind: the record's own fields, "event" included.
json fields(const RunStart& e) {
  json j = {{"event", "run.start"}, {"mode", e.mode}, {"exe", e.exe}, {"config", e.config}};
  put(j, "config_sha256", e.config_sha256);
  put(j, "ptrace_scope", e.ptrace_scope);
  return j;
}

json fields(const TrustDecision& e) {
  return {{"event", "trust"}, {"decision", e.decision}, {"config", e.config}, {"config_sha256", e.config_sha256},
          {"changes", e.changes}};
}

json fields(const RunStop& e) {
  json j = {{"event", "run.stop"}};
  put(j, "decision", e.decision);
  put(j, "reason", e.reason);
  put(j, "exit", e.exit);
  if (!e.survivors.empty()) j["survivors"] = e.survivors;
  return j;
}

json fields(const SecretResolved& e) {
  json j = {{"event", "resolve"}, {"secret", e.secret}, {"provider", e.provider}, {"exe", e.exe},
            {"decision", e.decision}};
  put(j, "ref", e.ref);
  put(j, "reason", e.reason);
  put(j, "via", e.via);
  put(j, "decision_id", e.decision_id);
  return j;
}

json fields(const TokenMinted& e) {
  return {{"event", "token"}, {"secret", e.secret}, {"token_id", e.token_id}, {"hosts", e.hosts},
          {"same_length", e.same_length}};
}

json fields(const TokenUse& e) {
  json j = {{"event", use_name(e.op)}, {"decision", e.decision}, {"pid", e.pid},
            {"exe", e.exe},            {"host", e.host},         {"channel", e.channel}};
  put_lineage(j, e.lineage);
  put(j, "peer", e.peer);
  put(j, "method", e.method);
  put(j, "path", e.path);
  put(j, "http_host", e.http_host);
  put(j, "secret", e.secret);
  put(j, "token_id", e.token_id);
  put(j, "reason", e.reason);
  put(j, "grant", e.grant);
  put(j, "uses", e.uses);
  put(j, "conn", e.conn);
  put(j, "via", e.via);
  put(j, "service", e.service);
  put(j, "region", e.region);
  return j;
}

json fields(const BrokerRefusal& e) {
  return {{"event", "broker.refuse"}, {"decision", "refuse"}, {"pid", e.pid}, {"exe", e.exe}, {"reason", e.reason}};
}

json fields(const ProgramRouted& e) {
  return {{"event", "route"}, {"pid", e.pid}, {"exe", e.exe}, {"route", e.route}, {"reason", e.reason}};
}

json fields(const FallbackStarted& e) {
  return {{"event", "fallback"}, {"redirector", e.redirector}, {"all_programs", e.all_programs}, {"ports", e.ports}};
}

json fields(const ProxyConnection& e) {
  json j = {{"event", "proxy"}, {"decision", e.decision}, {"reason", e.reason}};
  put(j, "pid", e.pid);
  put(j, "exe", e.exe);
  put(j, "host", e.host);
  put(j, "peer", e.peer);
  put(j, "client", e.client);
  put(j, "conn", e.conn);
  return j;
}

json fields(const TapFinding& e) {
  json j = {{"event", tap_name(e.kind)}, {"decision", e.decision}, {"reason", e.reason}, {"pid", e.pid},
            {"host", e.host},            {"function", e.function}, {"via", e.via}};
  put(j, "secret", e.secret);
  put(j, "peer", e.peer);
  put(j, "exe", e.exe);
  put_lineage(j, e.lineage);
  return j;
}

json fields(const SensorSummary& e) {
  json uses = json::array();
  for (const auto& u : e.uses) uses.push_back({{"secret", u.secret}, {"host", u.host}, {"form", u.form}, {"writes", u.writes}});
  json j = {{"event", "sensor.summary"}, {"via", "tls-tap"},         {"writes", e.writes},
            {"leaks", e.leaks},          {"exfil", e.exfil},         {"not_inspected", e.not_inspected},
            {"uses", std::move(uses)},   {"taps", e.taps}};
  if (!e.witnesses.empty()) {
    json w = json::object();
    for (const auto& [name, n] : e.witnesses) w[name] = n;
    j["witnesses"] = std::move(w);
  }
  if (!e.programs.empty()) {
    json p = json::array();
    for (const auto& [exe, witness] : e.programs) p.push_back({{"exe", exe}, {"witness", witness}});
    j["programs"] = std::move(p);
  }
  put(j, "mode", e.mode);
  if (e.held > 0) j["held"] = {{"processes", e.held}, {"max_us", e.held_max_us}, {"total_us", e.held_total_us}};
  put(j, "decision", e.decision);
  put(j, "reason", e.reason);
  return j;
}

json fields(const SinkShortfall& e) {
  return {{"event", "audit.sink"}, {"decision", "error"}, {"sink", e.sink},     {"run", e.run},
          {"delivered", e.delivered}, {"dropped", e.dropped}, {"reason", e.reason}};
}

json fields(const SinkDropped& e) {
  return {{"event", "audit.sink.dropped"}, {"sink", e.sink}, {"ts", e.ts}, {"dropped", e.dropped}, {"reason", e.reason}};
}

json fields(const McpStart& e) {
  return {{"event", "mcp.start"}, {"decision", "ok"}, {"transport", e.transport}, {"sub", e.sub},
          {"bundle", e.bundle},   {"policy", e.policy}};
}

json fields(const McpStop& e) { return {{"event", "mcp.stop"}, {"decision", "ok"}, {"transport", e.transport}}; }

json fields(const McpCall& e) {
  json j = {{"event", "mcp.call"}, {"tool", e.tool}, {"transport", e.transport}, {"sub", e.sub}, {"decision", e.decision}};
  put(j, "source", e.source);
  put(j, "session", e.session);
  put(j, "reason", e.reason);
  put(j, "secret", e.secret);
  put(j, "ref", e.ref);
  put(j, "provider", e.provider);
  put(j, "policy", e.policy);
  put(j, "rule", e.rule);
  put(j, "revision", e.revision);
  put(j, "token_id", e.token_id);
  put(j, "revealed", e.revealed);
  put(j, "method", e.method);
  put(j, "host", e.host);
  put(j, "path", e.path);
  put(j, "final_host", e.final_host);
  put(j, "secrets", e.secrets);
  put(j, "token_ids", e.token_ids);
  put(j, "status", e.status);
  put(j, "redirects", e.redirects);
  put(j, "redacted", e.redacted);
  return j;
}

json fields(const McpRefusal& e) {
  json j = {{"event", refusal_name(e.kind)}, {"decision", "deny"}, {"transport", e.transport}, {"reason", e.reason}};
  put(j, "code", e.code);
  put(j, "method", e.method);
  put(j, "sub", e.sub);
  put(j, "source", e.source);
  put(j, "session", e.session);
  return j;
}

json fields(const PdpStart& e) {
  return {{"event", "pdp.start"}, {"decision", "ok"}, {"listen", e.listen}, {"bundle", e.bundle}, {"revision", e.revision}};
}

json fields(const PdpStop&) { return {{"event", "pdp.stop"}, {"decision", "ok"}}; }

json fields(const PdpReload& e) {
  json j = {{"event", "pdp.reload"}, {"decision", e.decision}, {"trigger", e.trigger}, {"revision", e.revision}};
  put(j, "reason", e.reason);
  return j;
}

json fields(const PdpAuthRefusal& e) {
  return {{"event", "pdp.auth"}, {"decision", "deny"}, {"endpoint", e.endpoint}, {"source", e.source},
          {"revision", e.revision}, {"reason", e.reason}};
}

json fields(const PdpDecision& e) {
  return {{"event", "decision"}, {"decision", e.decision}, {"decision_id", e.decision_id}, {"endpoint", e.endpoint},
          {"revision", e.revision}, {"source", e.source}, {"sub", e.sub},
          {"input", e.serialized() ? json::parse(e.input_json) : e.input},
          {"result", e.serialized() ? json::parse(e.result_json) : e.result}};
}
// The same from an event the caller gives up: its input and result trees are moved, not
// copied (the PDP records one per request).
json fields(PdpDecision&& e) {
  json j = json::object();   // (an initializer list would build a two-element array per field)
  j["event"] = "decision";
  j["decision"] = std::move(e.decision);
  j["decision_id"] = std::move(e.decision_id);
  j["endpoint"] = std::move(e.endpoint);
  j["revision"] = std::move(e.revision);
  j["source"] = std::move(e.source);
  j["sub"] = std::move(e.sub);
  j["input"] = e.serialized() ? json::parse(e.input_json) : std::move(e.input);
  j["result"] = e.serialized() ? json::parse(e.result_json) : std::move(e.result);
  return j;
}

json fields(const CanarySeen& e) {
  json j = {{"event", "canary"}, {"severity", "high"}, {"secret", e.secret}, {"where", e.where},
            {"decision", e.decision}, {"reason", e.reason}};
  put(j, "pid", e.pid);
  put(j, "exe", e.exe);
  put_lineage(j, e.lineage);
  put(j, "host", e.host);
  put(j, "peer", e.peer);
  put(j, "method", e.method);
  put(j, "path", e.path);
  put(j, "token_id", e.token_id);
  put(j, "stream", e.stream);
  put(j, "via", e.via);
  put(j, "sub", e.sub);
  put(j, "source", e.source);
  put(j, "session", e.session);
  return j;
}

json fields(const SecretRotated& e) {
  json j = {{"event", "rotate"}, {"secret", e.secret}, {"provider", e.provider}, {"decision", e.decision}};
  put(j, "reason", e.reason);
  put(j, "version", e.version);
  put(j, "lease_s", e.lease_s);
  put(j, "expires", e.expires);
  put(j, "changed", e.changed);
  put(j, "token_id", e.token_id);
  return j;
}

json fields(const RunRestarted& e) {
  json j = {{"event", "run.restart"}, {"decision", "ok"}, {"secrets", e.secrets}, {"signal", e.signal},
            {"grace_ms", e.grace_ms}, {"old_pid", e.old_pid}, {"outcome", e.outcome}};
  put(j, "status", e.status);
  put(j, "new_pid", e.new_pid);
  return j;
}

json fields(const OAuthMint& e) {
  json j = {{"event", "mint"}, {"secret", e.secret}, {"source", e.source}, {"decision", e.decision}};
  put(j, "pid", e.pid);
  put(j, "token_id", e.token_id);
  put(j, "host", e.host);
  put(j, "expires_in", e.expires_in);
  put(j, "reason", e.reason);
  return j;
}

json fields(const ApprovalEvent& e) {
  json j = {{"event", "approve"}, {"secret", e.secret}, {"decision", e.decision}, {"channel", e.channel},
            {"request_hash", e.request_hash}};
  put(j, "by", e.by);
  put(j, "host", e.host);
  put(j, "method", e.method);
  put(j, "path", e.path);
  put(j, "token_id", e.token_id);
  put(j, "reason", e.reason);
  put(j, "pid", e.pid);
  put(j, "exe", e.exe);
  put(j, "sub", e.sub);
  put(j, "ref", e.ref);
  put(j, "decision_id", e.decision_id);
  return j;
}

// The index of T in AuditEvent, at compile time (a row of the table names its struct).
template <class T, std::size_t I = 0>
constexpr std::size_t index_of() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, AuditEvent>, T>) return I;
  else return index_of<T, I + 1>();
}

}  // namespace

json to_record(const AuditEvent& event) {
  return std::visit([](const auto& e) { return fields(e); }, event);
}

json to_record(AuditEvent&& event) {
  return std::visit([](auto&& e) { return fields(std::move(e)); }, std::move(event));
}

SerializedRecord serialized_record(PdpDecision&& e) {
  auto text = [](std::string_view v) {
    std::string out;
    dump_json_string(v, out);
    return out;
  };
  SerializedRecord r;   // in key order
  r.fields.reserve(12);
  r.fields.emplace_back("decision", text(e.decision));
  r.fields.emplace_back("decision_id", text(e.decision_id));
  r.fields.emplace_back("endpoint", text(e.endpoint));
  r.fields.emplace_back("event", text("decision"));
  r.fields.emplace_back("input", std::move(e.input_json));
  r.fields.emplace_back("result", std::move(e.result_json));
  r.fields.emplace_back("revision", text(e.revision));
  r.fields.emplace_back("source", text(e.source));
  r.fields.emplace_back("sub", text(e.sub));
  return r;
}

std::string_view event_name(const AuditEvent& event) {
  struct Name {
    std::string_view operator()(const RunStart&) const { return "run.start"; }
    std::string_view operator()(const RunStop&) const { return "run.stop"; }
    std::string_view operator()(const TrustDecision&) const { return "trust"; }
    std::string_view operator()(const SecretResolved&) const { return "resolve"; }
    std::string_view operator()(const TokenMinted&) const { return "token"; }
    std::string_view operator()(const TokenUse& e) const { return use_name(e.op); }
    std::string_view operator()(const BrokerRefusal&) const { return "broker.refuse"; }
    std::string_view operator()(const ProgramRouted&) const { return "route"; }
    std::string_view operator()(const FallbackStarted&) const { return "fallback"; }
    std::string_view operator()(const ProxyConnection&) const { return "proxy"; }
    std::string_view operator()(const TapFinding& e) const { return tap_name(e.kind); }
    std::string_view operator()(const SensorSummary&) const { return "sensor.summary"; }
    std::string_view operator()(const SinkShortfall&) const { return "audit.sink"; }
    std::string_view operator()(const SinkDropped&) const { return "audit.sink.dropped"; }
    std::string_view operator()(const McpStart&) const { return "mcp.start"; }
    std::string_view operator()(const McpStop&) const { return "mcp.stop"; }
    std::string_view operator()(const McpCall&) const { return "mcp.call"; }
    std::string_view operator()(const McpRefusal& e) const { return refusal_name(e.kind); }
    std::string_view operator()(const PdpStart&) const { return "pdp.start"; }
    std::string_view operator()(const PdpStop&) const { return "pdp.stop"; }
    std::string_view operator()(const PdpReload&) const { return "pdp.reload"; }
    std::string_view operator()(const PdpAuthRefusal&) const { return "pdp.auth"; }
    std::string_view operator()(const PdpDecision&) const { return "decision"; }
    std::string_view operator()(const CanarySeen&) const { return "canary"; }
    std::string_view operator()(const SecretRotated&) const { return "rotate"; }
    std::string_view operator()(const RunRestarted&) const { return "run.restart"; }
    std::string_view operator()(const OAuthMint&) const { return "mint"; }
    std::string_view operator()(const ApprovalEvent&) const { return "approve"; }
  };
  return std::visit(Name{}, event);
}

const std::vector<AuditKind>& audit_kinds() {
  static const std::vector<AuditKind> kinds = {
      {"run.start", index_of<RunStart>(), "mode exe config config_sha256? ptrace_scope?",
       "a kz run begins (mode standard, blind or blind-proxy)"},
      {"run.stop", index_of<RunStop>(), "decision? reason? exit? survivors[]?", "the run ended (exactly once per run.start)"},
      {"trust", index_of<TrustDecision>(), "decision config config_sha256 changes[]",
       "blind mode checked the project's bindings against those trusted (first-use: pinned now; refuse: they widened)"},
      {"resolve", index_of<SecretResolved>(), "secret provider ref? exe decision reason? via? decision_id?",
       "a secret fetched from its provider or through the PDP (ok, deny, error)"},
      {"token", index_of<TokenMinted>(), "secret token_id hosts[] same_length",
       "blind mode minted a token for a secret"},
      {"swap", index_of<TokenUse>(),
       "decision pid exe host channel lineage[]? peer? method? path? http_host? secret? token_id? reason? grant? "
       "uses? conn? via?",
       "the broker swapped a token for its value, counted reused swaps (uses), or refused"},
      {"redact", index_of<TokenUse>(),
       "decision pid exe host channel lineage[]? peer? method? path? secret? token_id? reason? conn? via?",
       "a response carried a secret's value; the agent saw the token instead"},
      {"sign", index_of<TokenUse>(),
       "decision pid exe host channel lineage[]? peer? method? path? http_host? secret? token_id? reason? conn? via? "
       "service? region?",
       "the broker signed an AWS SigV4 request with the secret key it holds (only the signature left kz), or refused"},
      {"broker.refuse", index_of<BrokerRefusal>(), "decision pid exe reason",
       "a process outside the run, or a malformed message, at the broker"},
      {"route", index_of<ProgramRouted>(), "pid exe route reason",
       "under the fallback, which way a program's TLS goes (shim or proxy)"},
      {"fallback", index_of<FallbackStarted>(), "redirector all_programs ports[]",
       "the fallback TLS proxy and its redirector started"},
      {"proxy", index_of<ProxyConnection>(), "decision reason pid? exe? host? peer? client? conn?",
       "a connection the fallback proxy refused or passed through untouched"},
      {"leak", index_of<TapFinding>(), "decision reason pid host function via secret? peer? exe? lineage[]?",
       "a TLS witness (the shim or the tap, `via`) saw a secret's value go to a host it is not bound to (audit or kill)"},
      {"exfil", index_of<TapFinding>(), "decision reason pid host function via secret? peer? exe? lineage[]?",
       "the TLS tap saw a token go to a host it is not bound to"},
      {"sensor.error", index_of<TapFinding>(), "decision reason pid host function via secret? peer? exe? lineage[]?",
       "the TLS tap could not kill a leaking process"},
      {"sensor.summary", index_of<SensorSummary>(),
       "via writes leaks exfil not_inspected uses[] taps[] witnesses? programs[]? mode? held? decision? reason?",
       "the sensors' counts at the end of a run (uses per secret, host and form; writes per witness)"},
      {"audit.sink", index_of<SinkShortfall>(), "decision sink run delivered dropped reason",
       "records a sink (syslog, http) did not deliver by the end of the run"},
      {"audit.sink.dropped", index_of<SinkDropped>(), "sink ts dropped reason",
       "sent to a sink only: records that sink dropped before this batch"},
      {"mcp.start", index_of<McpStart>(), "decision transport sub bundle policy", "kz mcp began serving"},
      {"mcp.stop", index_of<McpStop>(), "decision transport", "kz mcp stopped serving"},
      {"mcp.call", index_of<McpCall>(),
       "tool transport sub decision source? session? reason? secret? ref? provider? policy? rule? revision? "
       "token_id? revealed? method? host? path? final_host? secrets[]? token_ids[]? status? redirects? redacted?",
       "one MCP tool call (resolve or fetch) and its decision"},
      {"mcp.refused", index_of<McpRefusal>(), "decision transport reason code? method? sub? source? session?",
       "an MCP message refused before any tool ran"},
      {"mcp.auth", index_of<McpRefusal>(), "decision transport reason code? method? sub? source? session?",
       "an MCP HTTP request whose identity did not verify"},
      {"pdp.start", index_of<PdpStart>(), "decision listen bundle revision", "kz server began serving"},
      {"pdp.stop", index_of<PdpStop>(), "decision", "kz server stopped serving"},
      {"pdp.reload", index_of<PdpReload>(), "decision trigger revision reason?",
       "the PDP reloaded its bundle (ok), or kept the old one (error)"},
      {"pdp.auth", index_of<PdpAuthRefusal>(), "decision endpoint source revision reason",
       "a PDP API request whose identity did not verify"},
      {"decision", index_of<PdpDecision>(), "decision decision_id endpoint revision source sub input{} result[]",
       "one PDP answer (/v1/decide, /v1/resolve) with its policy input and results"},
      {"canary", index_of<CanarySeen>(),
       "severity secret where decision reason pid? exe? lineage[]? host? peer? method? path? token_id? stream? via? "
       "sub? source? session?",
       "a canary (decoy credential) was seen: shim, proxy, plain TCP, MCP or output (audit, or kill the run)"},
      {"rotate", index_of<SecretRotated>(), "secret provider decision reason? version? lease_s? expires? changed? token_id?",
       "a secret with refresh was re-read: a new value taken (ok), a failed refresh keeping the last good value "
       "(error), or that value's end (expired: swaps of it refused until a refresh succeeds)"},
      {"run.restart", index_of<RunRestarted>(), "decision secrets[] signal grace_ms old_pid outcome status? new_pid?",
       "kz run --restart-on-change restarted the command with new values (signal, then SIGKILL after the grace)"},
      {"mint", index_of<OAuthMint>(), "secret source decision pid? token_id? host? expires_in? reason?",
       "an OAuth access token kz minted (start, refresh) or sealed from the agent's own token request (response); no values"},
      {"approve", index_of<ApprovalEvent>(),
       "secret decision channel request_hash by? host? method? path? token_id? reason? pid? exe? sub? ref? "
       "decision_id?",
       "a use that waits for a person's approval: asked, approved, denied or timeout (tty, socket, webhook, pdp)"},
  };
  return kinds;
}

std::string audit_schema_markdown() {
  std::string out = "Schema version " + std::to_string(kAuditSchemaVersion) + ". Every record also has " +
                    "`ts` and `prev`; records of `kz run` have `run` and `pid`; records of a `kz server` replica have " +
                    "`replica`. `?`: optional, `[]`: a list, " +
                    "`{}`: an object.\n\n| event | fields | meaning |\n|---|---|---|\n";
  for (const auto& k : audit_kinds()) {
    out += "| `" + std::string(k.name) + "` | ";
    std::string_view f = k.fields;
    bool first = true;
    while (!f.empty()) {
      const auto sp = f.find(' ');
      const std::string_view word = f.substr(0, sp);
      out += (first ? "`" : " `") + std::string(word) + "`";
      first = false;
      f = sp == std::string_view::npos ? std::string_view() : f.substr(sp + 1);
    }
    out += " | " + std::string(k.meaning) + " |\n";
  }
  return out;
}

}  // namespace kz
