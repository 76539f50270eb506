// MCP's JSON-RPC layer: version negotiation, the handshake, and the error each kind of
// bad message gets; and resolve through it with a bundle (policy, reveal, refusals).
#include "mcp/mcp_protocol.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <random>

#include "policy/bundle.h"

namespace kz::mcp {
namespace {

using nlohmann::json;

constexpr const char* kBundle = R"Y(
policies:
- match: "KZ_MCP_UNIT_VALUE"
  rules:
  - cel: "identity.service == 'agent'"
    effect: allow
  - cel: "identity.service == 'revealer'"
    effect: allow
    reveal: true
secrets:
  KEY: { provider: env, ref: KZ_MCP_UNIT_VALUE, hosts: [api.example.com] }
  NOHOSTS: { provider: env, ref: KZ_MCP_UNIT_VALUE }
)Y";

struct Protocol : ::testing::Test {
  TokenTable tokens;
  std::vector<json> audit;
  // Each record as it would be written, into `audit` (the calls come from this thread).
  struct Collect final : AuditRecorder {
    std::vector<json>& out;
    explicit Collect(std::vector<json>& o) : out(o) {}
    void record(AuditEvent e) override { out.push_back(to_record(e)); }
  } collect{audit};
  McpTools tools{tokens, collect};
  McpProtocol protocol{tools, "9.9", collect};
  CallContext ctx;
  SessionState s;

  void SetUp() override {
    ::setenv("KZ_MCP_UNIT_VALUE", "unit-VALUE-abcdef123456", 1);
    auto b = policy::parse_bundle(kBundle, "/etc/kz/bundle.yaml");
    ASSERT_TRUE(b) << b.error().message;
    auto st = std::make_shared<PdpState>();
    st->bundle = std::move(*b);
    st->providers.path = "/etc/kz/bundle.yaml";
    ctx.state = st;
    ctx.identity = make_identity({{"iss", "i"}, {"sub", "a"}, {"service", "agent"}});
    ctx.transport = "stdio";
  }

  json send(const std::string& text) {
    auto r = protocol.handle_text(text, s, ctx);
    return r ? *r : json();
  }
  json request(const std::string& method, json params = json::object(), json id = 1) {
    return send(json({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}).dump());
  }
  void init(const std::string& version = "2025-06-18") {
    const json r = request("initialize", {{"protocolVersion", version}, {"capabilities", json::object()},
                                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    ASSERT_TRUE(r.contains("result")) << r.dump();
    EXPECT_TRUE(send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").is_null());
  }
};

TEST_F(Protocol, NegotiatesTheVersion) {
  json r = request("initialize", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()}});
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "keyzero");
  EXPECT_EQ(r["result"]["serverInfo"]["version"], "9.9");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_EQ(request("initialize", {{"protocolVersion", "2025-06-18"}})["error"]["code"], kInvalidRequest);
  SessionState other;
  auto r2 = protocol.handle(json({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "initialize"},
                                  {"params", {{"protocolVersion", "2030-01-01"}}}}), other, ctx);
  EXPECT_EQ((*r2)["result"]["protocolVersion"], kLatestVersion);   // kz's latest; the client decides
  SessionState third;
  auto r3 = protocol.handle(json({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "initialize"}, {"params", json::object()}}),
                            third, ctx);
  EXPECT_EQ((*r3)["error"]["code"], kInvalidParams);
}

TEST_F(Protocol, ErrorsForBadMessages) {
  EXPECT_EQ(send("{nope")["error"]["code"], kParseError);
  EXPECT_TRUE(send("{nope")["id"].is_null());
  EXPECT_EQ(send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(send(R"("just a string")")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(send(R"({"jsonrpc":"2.0","id":null,"method":"ping"})")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(send(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(send(R"({"id":1,"method":"ping"})")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(send(R"({"jsonrpc":"2.0","id":"x","method":7})")["id"], "x");
  EXPECT_EQ(send(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"), json::parse(R"({"jsonrpc":"2.0","id":1,"result":{}})"));
  EXPECT_EQ(request("tools/list")["error"]["code"], kInvalidRequest);   // before initialize
  init();
  EXPECT_EQ(request("tools/list", json::object(), "abc")["id"], "abc");
  EXPECT_EQ(request("no/such")["error"]["code"], kMethodNotFound);
  EXPECT_EQ(request("tools/call", {{"name", "nope"}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(request("tools/call", {{"arguments", json::object()}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(send(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]})")["error"]["code"], kInvalidParams);
  EXPECT_EQ(request("logging/setLevel", {{"level", "info"}})["result"], json::object());
  EXPECT_EQ(request("logging/setLevel", {{"level", "loud"}})["error"]["code"], kInvalidParams);
  EXPECT_TRUE(send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})").is_null());
  EXPECT_TRUE(send(R"({"jsonrpc":"2.0","id":5,"result":{}})").is_null());   // a response: no reply
  // Every error answer was audited, none of the successes.
  std::size_t refused = 0;
  for (const auto& r : audit) refused += r["event"] == "mcp.refused";
  EXPECT_EQ(refused, 14u);
}

TEST_F(Protocol, ToolsListHasSchemas) {
  init();
  const json tools = request("tools/list")["result"]["tools"];
  ASSERT_EQ(tools.size(), 2u);
  for (const auto& t : tools) {
    EXPECT_FALSE(t["description"].get<std::string>().empty());
    EXPECT_EQ(t["inputSchema"]["type"], "object");
  }
  EXPECT_EQ(tools[1]["inputSchema"]["required"], json::array({"url"}));
}

TEST_F(Protocol, InvalidArgumentsByVersion) {
  init("2025-06-18");
  EXPECT_EQ(request("tools/call", {{"name", "resolve"}, {"arguments", {{"bogus", 1}}}})["error"]["code"], kInvalidParams);
  s = {};
  init("2025-11-25");
  const json r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"bogus", 1}}}});
  EXPECT_TRUE(r["result"]["isError"]);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("unknown argument \"bogus\""), std::string::npos);
}

TEST_F(Protocol, ResolveUnderPolicy) {
  init();
  json r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"name", "KEY"}}}});
  const json sc = r["result"]["structuredContent"];
  EXPECT_FALSE(r["result"]["isError"]);
  EXPECT_EQ(sc["hosts"], json::array({"api.example.com"}));
  EXPECT_FALSE(sc.contains("value"));
  EXPECT_EQ(r.dump().find("unit-VALUE"), std::string::npos);
  ASSERT_TRUE(tokens.find(sc["token"].get<std::string>(), unix_now()));
  EXPECT_EQ(tokens.find(sc["token"].get<std::string>(), unix_now())->owner, "i a");

  r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"name", "NOHOSTS"}}}});
  EXPECT_TRUE(r["result"]["isError"]);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("has no hosts"), std::string::npos);
  r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"ref", "KZ_MCP_UNIT_VALUE"}}}});
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("several secrets have ref"), std::string::npos);
  r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"name", "MISSING"}}}});
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("no secret named MISSING"), std::string::npos);

  ctx.identity = make_identity({{"iss", "i"}, {"sub", "r"}, {"service", "revealer"}});
  r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"name", "NOHOSTS"}}}});
  EXPECT_EQ(r["result"]["structuredContent"]["value"], "unit-VALUE-abcdef123456");   // reveal: true

  ctx.identity = make_identity({{"iss", "i"}, {"sub", "x"}, {"service", "stranger"}});
  r = request("tools/call", {{"name", "resolve"}, {"arguments", {{"name", "KEY"}}}});
  EXPECT_TRUE(r["result"]["isError"]);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("denied by policy"), std::string::npos);
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.back()["decision"], "deny");
  EXPECT_EQ(audit.back()["sub"], "x");
  for (const auto& a : audit) EXPECT_EQ(a.dump().find("unit-VALUE"), std::string::npos) << a.dump();
}

// Mutated messages (a fixed seed, so a failure reproduces): every one gets no reply or
// a well-formed JSON-RPC reply, and nothing crashes (this runs under ASan and UBSan).
TEST_F(Protocol, MutatedMessagesGetWellFormedAnswers) {
  init("2025-11-25");
  const std::vector<std::string> seeds = {
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"resolve","arguments":{"name":"KEY"}}})",
      R"({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"fetch","arguments":{"url":"https://x/","headers":{"A":"b"}}}})",
      R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})",
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
      R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"info"}})"};
  std::mt19937 rng(20261126);
  const std::string alphabet = "{}[]\":,0123456789-.eE truefalsnul\\u00\x01\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string m = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !m.empty(); ++e) {
      const std::size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: m.erase(at, 1 + rng() % 8); break;
        default: m.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    // Fetch would go to the network: turn it into resolve, which stays local.
    for (std::size_t p; (p = m.find("fetch")) != std::string::npos;) m.replace(p, 5, "resolv");
    SessionState fresh = s;
    auto r = protocol.handle_text(m, fresh, ctx);
    if (!r) continue;
    ASSERT_TRUE(r->is_object()) << m;
    EXPECT_EQ((*r)["jsonrpc"], "2.0") << m;
    EXPECT_NE(r->contains("result"), r->contains("error")) << m;
    if (r->contains("error")) {
      EXPECT_TRUE((*r)["error"]["code"].is_number_integer()) << m;
    }
  }
}

}  // namespace
}  // namespace kz::mcp
