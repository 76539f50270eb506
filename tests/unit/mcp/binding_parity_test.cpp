// Blind mode's broker (decide) and MCP's fetch tool decide where a secret may go with
// the one binding check: for the same binding and request they give the same verdict,
// in the same words.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "mcp/mcp_tools.h"
#include "secrets/binding.h"
#include "secrets/decide.h"
#include "test_support.h"

namespace kz::mcp {
namespace {

using nlohmann::json;

constexpr std::string_view kValue = "sk-live-PARITY-0123456789abcdef";

Binding the_binding() {
  Binding b;
  b.hosts = {"localhost", "*.example.org"};
  b.methods = {"GET", "POST"};
  b.paths = {"/v1/"};
  return b;
}

struct Parity : ::testing::Test {
  // Blind: the run's table, the broker's verifier.
  TokenTable blind;
  std::unique_ptr<PeerVerifier> verifier;
  std::string chain;
  // MCP: a token issued to the caller, the tools that fetch with it.
  TokenTable issued;
  std::string mcp_token;
  std::vector<json> audit;
  struct Collect final : AuditRecorder {   // each record as written, into `audit`
    std::vector<json>& out;
    explicit Collect(std::vector<json>& o) : out(o) {}
    void record(AuditEvent e) override { out.push_back(to_record(e)); }
  } collect{audit};
  McpTools tools{issued, collect};
  CallContext ctx;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from(kValue)});
    auto t = TokenTable::build(std::move(s), {{"API_KEY", the_binding()}});
    ASSERT_TRUE(t.ok());
    blind = std::move(*t);
    auto v = PeerVerifier::create(test::test_ca().ca);
    ASSERT_TRUE(v.ok());
    verifier = std::make_unique<PeerVerifier>(std::move(*v));
    chain = test::der_of_pem_file(test::test_ca().server_cert);   // the chain the shim would send
    ASSERT_FALSE(chain.empty());

    ctx.state = std::make_shared<PdpState>();   // no bundle: kz mcp --config, no policy
    ctx.enforce_policy = false;
    ctx.identity = make_identity({{"iss", "i"}, {"sub", "a"}});
    ctx.transport = "stdio";
    TokenEntry e;
    e.name = "API_KEY";
    e.provider = "env";
    e.ref = "API_KEY";
    e.owner = ctx.identity->key;
    e.value = SecretValue::from(kValue);
    e.binding = the_binding();
    e.expires_at = unix_now() + 600;
    auto m = issued.issue(std::move(e));
    ASSERT_TRUE(m) << m.error().message;
    mcp_token = m->token;
  }

  // The broker's answer to a swap of the run's token on a TLS connection to `host`.
  std::pair<bool, std::string> blind_verdict(const std::string& host, const std::string& method, const std::string& target) {
    auto r = std::make_unique<wire::Request>();
    std::memset(r.get(), 0, sizeof(wire::Request));
    r->version = wire::kProtocolVersion;
    r->op = wire::Op::Swap;
    r->channel = wire::Channel::OpenSSL;
    const std::string token(blind.secrets()[0].token.view());
    auto put = [](char* dst, auto& len, const std::string& src) {
      len = static_cast<std::remove_reference_t<decltype(len)>>(src.size());
      std::memcpy(dst, src.data(), src.size());
    };
    put(r->host, r->host_len, host);
    put(r->method, r->method_len, method);
    put(r->path, r->path_len, target);
    put(r->http_host, r->http_host_len, host);   // the request names the connection's host
    r->data_len = static_cast<std::uint32_t>(token.size());
    std::memcpy(r->data, token.data(), token.size());
    r->flags |= wire::kFlagPeerHasChain;
    r->chain_len = static_cast<std::uint32_t>(chain.size());
    std::memcpy(r->chain, chain.data(), chain.size());
    EXPECT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
    const DecideOutcome o = decide({&blind, verifier.get()}, *r, PeerProcess{4242, "/usr/bin/curl"});
    return {o.reply.decision == wire::Decision::Allow, std::string(o.reply.reason, o.reply.reason_len)};
  }

  // MCP fetch of https://host+target with the issued token in a header: the reason it
  // was refused ("" when the call succeeded).
  std::string mcp_refusal(const std::string& host, const std::string& method, const std::string& target) {
    json args = {{"url", "https://" + host + target},
                 {"method", method},
                 {"headers", {{"Authorization", "Bearer " + mcp_token}}},
                 {"timeout_ms", 5000}};
    audit.clear();
    auto r = tools.call(ctx, "fetch", args);
    EXPECT_TRUE(r) << r.error().message;
    if (!r || !(*r)["isError"].get<bool>()) return "";
    EXPECT_EQ(audit.size(), 1u);
    return audit.empty() ? "?" : audit.back()["reason"].get<std::string>();
  }
};

TEST_F(Parity, RefusalsAreTheSameInBothModes) {
  struct Case {
    const char* host;
    const char* method;
    const char* target;
    BindingRefusal expected;
  };
  const Case cases[] = {
      {"evil.example", "GET", "/v1/x", BindingRefusal::Host},
      {"example.org", "GET", "/v1/x", BindingRefusal::Host},   // "*.example.org" needs a label in front
      {"localhost", "DELETE", "/v1/x", BindingRefusal::Method},
      {"localhost", "GET", "/admin?q=KZ_secret_query", BindingRefusal::Path},
      {"localhost", "POST", "/v2/", BindingRefusal::Path},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.host + c.target);
    const BindingVerdict direct = check_binding(the_binding(), "API_KEY", c.host, c.method, c.target);
    ASSERT_EQ(direct.refusal, c.expected);
    const auto [allowed, blind_reason] = blind_verdict(c.host, c.method, c.target);
    EXPECT_FALSE(allowed);
    EXPECT_EQ(blind_reason, direct.reason);
    EXPECT_EQ(mcp_refusal(c.host, c.method, c.target), direct.reason);
  }
}

TEST_F(Parity, AllowedInBothModes) {
  ASSERT_TRUE(check_binding(the_binding(), "API_KEY", "localhost", "GET", "/v1/models?x=1"));
  const auto [allowed, reason] = blind_verdict("localhost", "GET", "/v1/models?x=1");
  EXPECT_TRUE(allowed) << reason;
  // MCP gets past the binding (and swaps the token) to the network, where the address
  // guard stops it: localhost is a loopback address, refused by default.
  const std::string why = mcp_refusal("localhost", "GET", "/v1/models?x=1");
  EXPECT_NE(why.find("loopback"), std::string::npos) << why;
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.back()["secrets"], json::array({"API_KEY"}));
}

}  // namespace
}  // namespace kz::mcp
