#include "config/config.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace kz {
namespace {

using ::kz::test::contains;

// The example from the README / issue, exactly as written.
constexpr const char* kSeedExample = R"(
[secrets]
OPENAI_API_KEY = { provider = "1password", ref = "op://Dev/OpenAI/api-key", hosts = ["api.openai.com"] }
GITHUB_TOKEN   = { provider = "vault",     ref = "secret/data/prod/github/token" }
SLACK_BOT_TOKEN = { provider = "aws-sm",   ref = "prod/slack-bot-token" }
DB_PASSWORD    = { provider = "aws-sm",    ref = "prod/db#password" }   # JSON key inside the secret string
LOCAL_KEY      = { provider = "file",      ref = "~/.config/app/key" }
FROM_ENV       = { provider = "env",       ref = "UPSTREAM_VAR" }
FROM_CMD       = { provider = "exec",      ref = "pass show app/key" }

[providers.vault]
address = "https://vault.example:8200"   # or VAULT_ADDR
# auth: token (VAULT_TOKEN / ~/.vault-token) or approle (role_id, secret_id_file); namespace; ca_cert
[providers.aws-sm]
region = "eu-west-1"                     # or AWS_REGION; credentials: env, ~/.aws/credentials profile, session token
[providers.1password]
# `op` CLI (op read) by default; or Connect: connect_host + OP_CONNECT_TOKEN
)";

TEST(Config, SeedExampleParses) {
  auto c = parse_config(kSeedExample, "/p/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->secrets.size(), 7u);
  EXPECT_EQ(c->secrets[0].name, "OPENAI_API_KEY");   // file order kept
  EXPECT_EQ(c->secrets[0].provider, "1password");
  EXPECT_EQ(c->secrets[0].hosts, std::vector<std::string>{"api.openai.com"});
  EXPECT_EQ(c->secrets[3].ref, "prod/db#password");
  EXPECT_EQ(c->secrets[6].name, "FROM_CMD");
  EXPECT_EQ(c->providers.at("vault").settings.at("address").text, "https://vault.example:8200");
  EXPECT_EQ(c->providers.at("aws-sm").settings.at("region").text, "eu-west-1");
  EXPECT_EQ(c->providers.at("vault").timeout, kDefaultProviderTimeout);
  EXPECT_EQ(c->dir, "/p");
  EXPECT_EQ(c->secrets[1].pos.line, 4);
}

struct BadCase {
  const char* name;
  const char* toml;
  const char* position;   // "file:line:col" prefix expected
  const char* words;      // expected in the message
};

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NamesFileLineColumnAndField) {
  const auto& bc = GetParam();
  auto c = parse_config(bc.toml, "/x/.keyzero.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::Config);
  EXPECT_TRUE(contains(c.error().message, bc.position)) << c.error().message;
  EXPECT_TRUE(contains(c.error().message, bc.words)) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(
        BadCase{"unknown_secret_key", "[secrets]\nA = { provider = \"env\", ref = \"X\", hots = [\"a\"] }\n",
                "/x/.keyzero.toml:2:", "unknown key \"hots\""},
        BadCase{"wrong_type", "[secrets]\nA = { provider = \"env\", ref = 5 }\n", "/x/.keyzero.toml:2:",
                "secrets.A.ref must be a string, not a integer"},
        BadCase{"hosts_not_strings", "[secrets]\nA = { provider = \"env\", ref = \"X\", hosts = [1] }\n",
                "/x/.keyzero.toml:2:", "secrets.A.hosts must contain only strings"},
        BadCase{"unknown_provider", "[secrets]\n\nA = { provider = \"keychain\", ref = \"X\" }\n",
                "/x/.keyzero.toml:3:", "unknown provider \"keychain\""},
        BadCase{"missing_ref", "[secrets]\nA = { provider = \"env\" }\n", "/x/.keyzero.toml:2:",
                "missing required key \"ref\""},
        BadCase{"duplicate_name",
                "[secrets]\nA = { provider = \"env\", ref = \"X\" }\nA = { provider = \"env\", ref = \"Y\" }\n",
                "/x/.keyzero.toml:3:", "A"},
        BadCase{"bad_env_name", "[secrets]\n\"1BAD\" = { provider = \"env\", ref = \"X\" }\n",
                "/x/.keyzero.toml:2:", "not a valid environment variable name"},
        BadCase{"unknown_section", "[secret]\nA = 1\n", "/x/.keyzero.toml:", "unknown section \"secret\""},
        BadCase{"unknown_provider_section", "[providers.keychain]\nx = 1\n", "/x/.keyzero.toml:",
                "unknown provider \"keychain\""},
        BadCase{"unknown_provider_key", "[providers.env]\nregion = \"x\"\n", "/x/.keyzero.toml:2:",
                "providers.env: unknown key \"region\""},
        BadCase{"bad_timeout", "[providers.exec]\ntimeout = \"soon\"\n", "/x/.keyzero.toml:2:",
                "providers.exec.timeout"},
        BadCase{"toml_syntax", "[secrets]\nA = { provider = \"env\" ref = \"X\" }\n", "/x/.keyzero.toml:2:", ""},
        BadCase{"masking_type", "[masking]\nenabled = \"yes\"\n", "/x/.keyzero.toml:2:",
                "masking.enabled must be true or false"},
        BadCase{"audit_plain_http", "[audit]\nhttp_url = \"http://siem.example/x\"\n", "/x/.keyzero.toml:2:",
                "audit.http_url must be an https:// URL"},
        BadCase{"audit_http_lookalike", "[audit]\nhttp_url = \"http://127.evil.example/x\"\n",
                "/x/.keyzero.toml:2:", "audit.http_url must be an https:// URL"},
        BadCase{"audit_token_literal", "[audit]\nhttp_url = \"https://s/\"\nhttp_token_env = \"Bearer abc\"\n",
                "/x/.keyzero.toml:3:", "audit.http_token_env must name an environment variable"},
        BadCase{"audit_batch_range", "[audit]\nhttp_url = \"https://s/\"\nhttp_batch = 0\n", "/x/.keyzero.toml:3:",
                "audit.http_batch must be an integer from 1 to 10000"},
        BadCase{"audit_syslog_type", "[audit]\nsyslog = \"yes\"\n", "/x/.keyzero.toml:2:",
                "audit.syslog must be true or false"},
        BadCase{"audit_unknown_key", "[audit]\nhttp_header = \"Authorization: x\"\n", "/x/.keyzero.toml:2:",
                "audit: unknown key \"http_header\""},
        BadCase{"refresh_not_a_duration",
                "[secrets.A]\nprovider = \"env\"\nref = \"X\"\nrefresh = \"5x\"\n", "/x/.keyzero.toml:4:",
                "secrets.A.refresh: \"5x\" is not a duration"},
        BadCase{"refresh_below_minimum", "[secrets]\nA = { provider = \"env\", ref = \"X\", refresh = \"2s\" }\n",
                "/x/.keyzero.toml:2:", "secrets.A.refresh: \"2s\" is shorter than the minimum, 5s"},
        BadCase{"refresh_type", "[secrets]\nA = { provider = \"env\", ref = \"X\", refresh = 300 }\n",
                "/x/.keyzero.toml:2:", "secrets.A.refresh must be a string"},
        BadCase{"max_stale_without_refresh", "[secrets]\nA = { provider = \"env\", ref = \"X\", max_stale = \"1h\" }\n",
                "/x/.keyzero.toml:2:", "secrets.A.max_stale needs refresh"},
        BadCase{"minted_refresh",
                "[secrets.T]\nkind = \"oauth2-client-credentials\"\ntoken_url = \"https://auth.example.com/token\"\n"
                "client_id = \"c\"\nclient_secret = { provider = \"env\", ref = \"S\" }\nrefresh = \"1m\"\n",
                "/x/.keyzero.toml:", "secrets.T.refresh: a minted credential renews itself"},
        BadCase{"canary_refresh", "[secrets]\nA = { canary = true, refresh = \"1m\" }\n",
                "/x/.keyzero.toml:2:", "a canary has no provider"},
        BadCase{"audit_token_without_url", "[audit]\nhttp_token_env = \"T\"\n", "/x/.keyzero.toml:",
                "http_token_env need http_url"}),
    [](const auto& info) { return std::string(info.param.name); });

// [blind] http2 (issue 18): on by default; false brings back the ALPN downgrade.
TEST(Config, BlindHttp2Switch) {
  auto d = parse_config("[blind]\nmode = \"shim\"\n", "/x/.keyzero.toml");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->blind.http2);
  auto off = parse_config("[blind]\nhttp2 = false\n", "/x/.keyzero.toml");
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_FALSE(off->blind.http2);
  auto bad = parse_config("[blind]\nhttp2 = \"no\"\n", "/x/.keyzero.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("/x/.keyzero.toml:2:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("blind.http2 must be true or false"), std::string::npos);
}

TEST(Config, AuditSinks) {
  auto c = parse_config(
      "[audit]\npath = \"a.jsonl\"\nsyslog = true\nhttp_url = \"https://siem.example/ingest\"\n"
      "http_ca_file = \"ca.pem\"\nhttp_token_env = \"KZ_SIEM_TOKEN\"\nhttp_batch = 50\nhttp_flush_ms = 250\n"
      "queue = 99\n",
      "/x/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->audit.path, "/x/a.jsonl");
  EXPECT_TRUE(c->audit.syslog);
  EXPECT_EQ(c->audit.http_url, "https://siem.example/ingest");
  EXPECT_EQ(c->audit.http_ca_file, "/x/ca.pem");
  EXPECT_EQ(c->audit.http_token_env, "KZ_SIEM_TOKEN");
  EXPECT_EQ(c->audit.http_batch, 50u);
  EXPECT_EQ(c->audit.http_flush, std::chrono::milliseconds(250));
  EXPECT_EQ(c->audit.queue_max, 99u);
  for (const char* ok : {"http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"}) {
    auto l = parse_config(std::string("[audit]\nhttp_url = \"") + ok + "\"\n", "/x/.keyzero.toml");
    EXPECT_TRUE(l.ok()) << ok;
  }
}

TEST(Config, McpSection) {
  auto c = parse_config(
      "[mcp]\ntoken_ttl = \"90s\"\nallowed_hosts = [\"mcp.internal\"]\n"
      "[mcp.fetch]\nallow_addresses = [\"loopback\"]\nca_file = \"ca.pem\"\nmax_body = 2048\ntimeout = \"2s\"\n",
      "/x/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->mcp.token_ttl, std::chrono::seconds(90));
  EXPECT_EQ(c->mcp.allowed_hosts, std::vector<std::string>{"mcp.internal"});
  EXPECT_TRUE(c->mcp.fetch.allow_loopback);
  EXPECT_FALSE(c->mcp.fetch.allow_metadata);
  EXPECT_EQ(c->mcp.fetch.ca_file, "/x/ca.pem");
  EXPECT_EQ(c->mcp.fetch.max_body, 2048u);
  EXPECT_EQ(c->mcp.fetch.timeout, std::chrono::seconds(2));
  auto bad = parse_config("[mcp.fetch]\nmax_redirects = 99\n", "/x/.keyzero.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.error().message, "/x/.keyzero.toml:2:")) << bad.error().message;
  EXPECT_TRUE(contains(bad.error().message, "mcp.fetch.max_redirects must be an integer between 0 and 20"));
  auto unknown = parse_config("[mcp]\nport = 1\n", "/x/.keyzero.toml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message, "known: token_ttl, allowed_hosts, fetch")) << unknown.error().message;
}

TEST(Config, ProviderTimeouts) {
  auto c = parse_config("[providers.exec]\ntimeout = \"250ms\"\n[providers.env]\ntimeout = 3\n", "/x/c.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->providers.at("exec").timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c->providers.at("env").timeout, std::chrono::milliseconds(3000));
}

TEST(Config, Durations) {
  EXPECT_EQ(parse_duration("10"), std::chrono::milliseconds(10000));
  EXPECT_EQ(parse_duration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_EQ(parse_duration("2m"), std::chrono::milliseconds(120000));
  EXPECT_EQ(parse_duration("1h"), std::chrono::milliseconds(3600000));
  EXPECT_FALSE(parse_duration("10d").has_value());
  EXPECT_FALSE(parse_duration("nan").has_value());
  EXPECT_FALSE(parse_duration("inf").has_value());
  EXPECT_FALSE(parse_duration("-1s").has_value());
  EXPECT_FALSE(parse_duration("").has_value());
}

TEST(Config, Refresh) {
  auto c = parse_config("[secrets]\nA = { provider = \"env\", ref = \"X\", refresh = \"5m\", max_stale = \"1h\" }\n"
                        "B = { provider = \"env\", ref = \"Y\", refresh = \"lease\" }\n"
                        "C = { provider = \"env\", ref = \"Z\" }\n",
                        "/x/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->secrets[0].refresh, std::chrono::minutes(5));
  EXPECT_EQ(c->secrets[0].max_stale, std::chrono::hours(1));
  EXPECT_TRUE(c->secrets[1].refresh_lease);
  EXPECT_TRUE(c->secrets[1].refreshes());
  EXPECT_FALSE(c->secrets[2].refreshes());
}

TEST(Config, FoundInParentDirectory) {
  test::TempDir d;
  d.write(".keyzero.toml", "[secrets]\n");
  d.write("a/b/c/placeholder", "");
  auto found = find_config_file(d.file("a/b/c"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, d.file(".keyzero.toml"));
  test::TempDir empty;
  // Nothing from the temp dir up (assuming / has none).
  if (!find_config_file("/").has_value()) {
    EXPECT_FALSE(find_config_file(empty.path()).has_value());
  }
}

TEST(Config, EnvNames) {
  EXPECT_TRUE(is_env_name("OPENAI_API_KEY"));
  EXPECT_TRUE(is_env_name("_x1"));
  EXPECT_FALSE(is_env_name("1X"));
  EXPECT_FALSE(is_env_name("A-B"));
  EXPECT_FALSE(is_env_name(""));
}

}  // namespace
}  // namespace kz
