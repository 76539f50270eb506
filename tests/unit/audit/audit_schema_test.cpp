// The record schema: every kind serialises to the fields its row in the table names (all
// of the required ones, nothing undeclared), the table covers every alternative of
// AuditEvent, and the records are the ones kz wrote before the schema existed.
#include "audit/audit_schema.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace kz {
namespace {

using json = nlohmann::json;

struct Declared {
  std::set<std::string> all, required;
};

// "a b? c[] d[]? e{}" → names, and which are required.
Declared declared(std::string_view fields) {
  Declared d;
  while (!fields.empty()) {
    const auto sp = fields.find(' ');
    std::string w(fields.substr(0, sp));
    fields = sp == std::string_view::npos ? std::string_view() : fields.substr(sp + 1);
    const bool optional = !w.empty() && w.back() == '?';
    if (optional) w.pop_back();
    if (w.size() > 2 && (w.compare(w.size() - 2, 2, "[]") == 0 || w.compare(w.size() - 2, 2, "{}") == 0))
      w.resize(w.size() - 2);
    d.all.insert(w);
    if (!optional) d.required.insert(w);
  }
  return d;
}

const AuditKind* kind_named(std::string_view name) {
  for (const auto& k : audit_kinds())
    if (k.name == name) return &k;
  return nullptr;
}

// One event per kind with every optional field set (the kinds that share a struct
// appear once per kind), and one with only what is required.
std::vector<AuditEvent> full_samples() {
  std::vector<AuditEvent> v;
  v.push_back(RunStart{"blind", "/usr/bin/curl", "/p/.keyzero.toml", std::string(64, 'a'), "1"});
  v.push_back(RunStop{"error", "resolution failed", 78, {"4242 /usr/bin/python3 (killed)"}});
  v.push_back(TrustDecision{"refuse", "/p/.keyzero.toml", std::string(64, 'b'), {"+ API: host evil.example"}});
  v.push_back(SecretResolved{"GH", "vault", "kv/gh", "curl", "deny", "denied", "https://pdp", "d-1"});
  v.push_back(TokenMinted{"GH", "abc123", {"api.github.com"}, true});
  TokenUse swap{UseOp::Swap, "allow", 7, "/bin/curl", "h", "openssl", {"bash", "curl"}, "1.2.3.4:443", "GET",
                "/v1", "GH", "abc", "why", "connection", 3u, 9u, "proxy", "api.github.com"};
  v.push_back(swap);
  TokenUse redact = swap;
  redact.op = UseOp::Redact;
  redact.http_host.reset();
  redact.grant.reset();
  redact.uses.reset();
  v.push_back(redact);
  TokenUse sign = swap;   // an AWS SigV4 request kz signed
  sign.op = UseOp::Sign;
  sign.grant.reset();
  sign.uses.reset();
  sign.service = "s3";
  sign.region = "us-east-1";
  v.push_back(sign);
  v.push_back(BrokerRefusal{7, "/bin/sh", "process is not part of this run"});
  v.push_back(ProgramRouted{7, "/bin/go", "proxy", "static binary"});
  v.push_back(FallbackStarted{"ebpf", false, {443, 8443}});
  v.push_back(ProxyConnection{"refuse", "why", 7L, "/bin/x", "h", "1.2.3.4:443", "127.0.0.1:5", 4u});
  for (TapKind k : {TapKind::Leak, TapKind::Exfil, TapKind::SensorError})
    v.push_back(TapFinding{k, "audit", "why", 7, "h", "SSL_write", "GH", "1.2.3.4:443", "/bin/x", {"bash"}});
  v.push_back(SensorSummary{10, 1, 0, 2, {{"GH", "h", "token", 4}}, {"openssl"}, "error", "lost",
                            {{"shim", 6}, {"uprobe", 4}}, {{"/usr/bin/curl", "shim"}}, "default", 1, 900, 900});
  v.push_back(SinkShortfall{"http", "r1", 3, 2, "records not delivered to the sink"});
  v.push_back(SinkDropped{"http", "2026-01-01T00:00:00Z", 5, "queue full"});
  v.push_back(McpStart{"stdio", "alice", "/b.yaml", true});
  v.push_back(McpStop{"stdio"});
  McpCall call{"fetch", "http", "alice", "1.2.3.4", "s1", "allow", "why", "GH", "kv/gh", "vault", "p", "r", "rev",
               "abc", true, "GET", "h", "/x", "h2", std::vector<std::string>{"GH"}, std::vector<std::string>{"abc"},
               200L, 1, std::size_t{2}};
  v.push_back(call);
  for (McpRefusalKind k : {McpRefusalKind::Refused, McpRefusalKind::Auth})
    v.push_back(McpRefusal{k, "http", "why", -32600, "tools/call", "alice", "1.2.3.4", "s1"});
  v.push_back(PdpStart{"http://127.0.0.1:8787", "/b.yaml", "rev"});
  v.push_back(PdpStop{});
  v.push_back(PdpReload{"error", "SIGHUP", "rev", "bad yaml"});
  v.push_back(PdpAuthRefusal{"decide", "1.2.3.4", "rev", "expired"});
  v.push_back(PdpDecision{"allow", "d-1", "decide", "rev", "1.2.3.4", "alice", json::object(), json::array()});
  v.push_back(CanarySeen{"OPENAI_API_KEY", "shim", "kill", "why", 7L, "/bin/curl", "h", "1.2.3.4:443", "POST", "/x",
                         "abc", "stdout", "proxy", "alice", "1.2.3.4", "s1", {"bash", "curl"}});
  v.push_back(SecretRotated{"API_KEY", "vault", "error", "sealed", "2", 3600, "2026-01-01T00:00:00Z", true, "tid"});
  v.push_back(RunRestarted{{"API_KEY"}, "SIGTERM", 10000, 41, "killed", 137, 42});
  v.push_back(ApprovalEvent{"API_KEY", "approved", "tty", "hash", "tty", "h", "POST", "/x", "tid", "why", 7L,
                            "/bin/curl", "sub", "ref", "did"});
  v.push_back(OAuthMint{"API_TOKEN", "refresh", "error", "abc", "auth.example.com", "invalid_client", 3600, 7L});
  return v;
}

std::vector<AuditEvent> minimal_samples() {
  std::vector<AuditEvent> v;
  for (std::size_t i = 0; i < std::variant_size_v<AuditEvent>; ++i) {
    // Default-constructed alternative i.
    AuditEvent e;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == i ? (void)e.emplace<I>() : (void)0), ...);
    }(std::make_index_sequence<std::variant_size_v<AuditEvent>>());
    v.push_back(std::move(e));
  }
  return v;
}

TEST(AuditSchema, TheTableCoversEveryAlternativeOnce) {
  std::set<std::size_t> covered;
  std::set<std::string_view> names;
  for (const auto& k : audit_kinds()) {
    EXPECT_LT(k.alternative, std::variant_size_v<AuditEvent>) << k.name;
    covered.insert(k.alternative);
    EXPECT_TRUE(names.insert(k.name).second) << "two rows for " << k.name;
    EXPECT_FALSE(k.meaning.empty()) << k.name;
  }
  EXPECT_EQ(covered.size(), std::variant_size_v<AuditEvent>);
}

TEST(AuditSchema, EachKindHasTheFieldsItsRowDeclares) {
  std::set<std::string_view> seen;
  for (const auto& e : full_samples()) {
    const json j = to_record(e);
    const std::string name = j.at("event").get<std::string>();
    EXPECT_EQ(name, event_name(e));
    const AuditKind* k = kind_named(name);
    ASSERT_NE(k, nullptr) << name << " is not in the table";
    EXPECT_EQ(k->alternative, e.index()) << name;
    seen.insert(k->name);
    const Declared d = declared(k->fields);
    std::set<std::string> keys;
    for (const auto& [key, value] : j.items())
      if (key != "event") keys.insert(key);
    // With every optional field set, the record has exactly the declared fields.
    EXPECT_EQ(keys, d.all) << name << ": " << j.dump();
  }
  EXPECT_EQ(seen.size(), audit_kinds().size()) << "a kind without a sample";
}

TEST(AuditSchema, RequiredFieldsAreThereEvenWhenEmpty) {
  for (const auto& e : minimal_samples()) {
    const json j = to_record(e);
    const AuditKind* k = kind_named(j.at("event").get<std::string>());
    ASSERT_NE(k, nullptr) << j.dump();
    const Declared d = declared(k->fields);
    for (const auto& f : d.required) EXPECT_TRUE(j.contains(f)) << k->name << " lacks " << f << ": " << j.dump();
    for (const auto& [key, value] : j.items())
      EXPECT_TRUE(key == "event" || d.required.count(key) == 1) << k->name << ": " << key << " is optional";
  }
}

// The records as kz wrote them before the schema (field names, values and types).
TEST(AuditSchema, RecordsAreTheOnesKzAlwaysWrote) {
  EXPECT_EQ(to_record(RunStop{std::nullopt, std::nullopt, 0}), json::parse(R"({"event":"run.stop","exit":0})"));
  EXPECT_EQ(to_record(RunStop{"error", "not started", std::nullopt}),
            json::parse(R"({"event":"run.stop","decision":"error","reason":"not started"})"));
  EXPECT_EQ(to_record(SecretResolved{"A", "exec", std::nullopt, "curl", "ok"}),
            json::parse(R"({"event":"resolve","secret":"A","provider":"exec","exe":"curl","decision":"ok"})"));
  EXPECT_EQ(to_record(TokenMinted{"A", "0123456789ab", {"*"}, false}),
            json::parse(R"({"event":"token","secret":"A","token_id":"0123456789ab","hosts":["*"],)"
                        R"("same_length":false})"));
  TokenUse u;
  u.decision = "refuse";
  u.pid = 42;
  u.exe = "/usr/bin/curl";
  u.host = "example.com";
  u.channel = "plain";
  u.reason = "not a token of this run";
  u.conn = 5;
  EXPECT_EQ(to_record(u), json::parse(R"({"event":"swap","decision":"refuse","pid":42,)"
                                      R"("exe":"/usr/bin/curl","host":"example.com","channel":"plain",)"
                                      R"("reason":"not a token of this run","conn":5})"));
  EXPECT_EQ(to_record(BrokerRefusal{9, "/bin/sh", "malformed request of 3 bytes"}),
            json::parse(R"({"event":"broker.refuse","decision":"refuse","pid":9,"exe":"/bin/sh",)"
                        R"("reason":"malformed request of 3 bytes"})"));
  EXPECT_EQ(to_record(FallbackStarted{"seccomp", true, {443}}),
            json::parse(R"({"event":"fallback","redirector":"seccomp","all_programs":true,"ports":[443]})"));
  TapFinding t{TapKind::Exfil, "observed", "r", 3, "h", "SSL_write"};
  EXPECT_EQ(to_record(t), json::parse(R"({"event":"exfil","decision":"observed","reason":"r","pid":3,)"
                                      R"("host":"h","function":"SSL_write","via":"tls-tap"})"));
  EXPECT_EQ(to_record(SensorSummary{1, 0, 0, 0, {{"A", "h", "value", 1}}, {"openssl"}}),
            json::parse(R"({"event":"sensor.summary","via":"tls-tap","writes":1,"leaks":0,"exfil":0,)"
                        R"("not_inspected":0,"uses":[{"secret":"A","host":"h","form":"value","writes":1}],)"
                        R"("taps":["openssl"]})"));
  EXPECT_EQ(to_record(SinkShortfall{"http", "r", 1, 2, "x"}),
            json::parse(R"({"event":"audit.sink","decision":"error","sink":"http","run":"r","delivered":1,)"
                        R"("dropped":2,"reason":"x"})"));
  EXPECT_EQ(to_record(McpStop{"stdio"}), json::parse(R"({"event":"mcp.stop","decision":"ok","transport":"stdio"})"));
  McpRefusal http;
  http.kind = McpRefusalKind::Auth;
  http.transport = "http";
  http.source = "";
  http.reason = "no token";
  EXPECT_EQ(to_record(http), json::parse(R"({"event":"mcp.auth","decision":"deny","transport":"http",)"
                                         R"("source":"","reason":"no token"})"));
  EXPECT_EQ(to_record(PdpStop{}), json::parse(R"({"event":"pdp.stop","decision":"ok"})"));
  EXPECT_EQ(to_record(PdpReload{"ok", "SIGHUP", "rev", std::nullopt}),
            json::parse(R"({"event":"pdp.reload","decision":"ok","trigger":"SIGHUP","revision":"rev"})"));
}

TEST(AuditSchema, MarkdownListsEveryKindWithItsFields) {
  const std::string md = audit_schema_markdown();
  EXPECT_NE(md.find("Schema version " + std::to_string(kAuditSchemaVersion)), std::string::npos);
  for (const auto& k : audit_kinds()) {
    EXPECT_NE(md.find("| `" + std::string(k.name) + "` |"), std::string::npos) << k.name;
    EXPECT_NE(md.find(std::string(k.meaning)), std::string::npos) << k.name;
  }
}

}  // namespace
}  // namespace kz
