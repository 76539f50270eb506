// Host binding, method/path restrictions, the catalogue and the start-up check.
#include <gtest/gtest.h>

#include "blind/binding.h"
#include "blind/host_catalogue.h"
#include "blind/token_table.h"
#include "config/config.h"

namespace kz {
namespace {

TEST(HostPattern, ExactNamesIgnoreCaseAndTrailingDot) {
  EXPECT_TRUE(host_pattern_matches("api.openai.com", "api.openai.com"));
  EXPECT_TRUE(host_pattern_matches("api.openai.com", "API.OpenAI.com."));
  EXPECT_FALSE(host_pattern_matches("api.openai.com", "api.openai.com.evil.net"));
  EXPECT_FALSE(host_pattern_matches("api.openai.com", "xapi.openai.com"));
  EXPECT_FALSE(host_pattern_matches("api.openai.com", ""));
  EXPECT_TRUE(host_pattern_matches("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(host_pattern_matches("127.0.0.1", "127.0.0.10"));
}

TEST(HostPattern, WildcardCoversSubdomainsOnly) {
  EXPECT_TRUE(host_pattern_matches("*.slack.com", "hooks.slack.com"));
  EXPECT_TRUE(host_pattern_matches("*.slack.com", "a.b.slack.com"));
  EXPECT_FALSE(host_pattern_matches("*.slack.com", "slack.com"));
  EXPECT_FALSE(host_pattern_matches("*.slack.com", "evilslack.com"));
  EXPECT_FALSE(host_pattern_matches("*.slack.com", "slack.com.evil.net"));
}

TEST(HostPattern, ProblemsAreExplained) {
  EXPECT_EQ(host_pattern_problem("api.example.com"), "");
  EXPECT_EQ(host_pattern_problem("*.example.com"), "");
  EXPECT_EQ(host_pattern_problem("::1"), "");
  EXPECT_NE(host_pattern_problem("*"), "");
  EXPECT_NE(host_pattern_problem("api.*.com"), "");
  EXPECT_NE(host_pattern_problem("a b"), "");
  EXPECT_NE(host_pattern_problem(""), "");
}

TEST(Binding, MethodsAndPathPrefixGlobs) {
  Binding b;
  b.hosts = {"api.github.com"};
  EXPECT_TRUE(method_allowed(b, "DELETE"));
  EXPECT_TRUE(path_allowed(b, ""));
  b.methods = {"GET", "POST"};
  b.paths = {"/repos/*/issues", "/v1/"};
  EXPECT_TRUE(method_allowed(b, "GET"));
  EXPECT_FALSE(method_allowed(b, "get"));
  EXPECT_FALSE(method_allowed(b, "DELETE"));
  EXPECT_FALSE(method_allowed(b, ""));
  EXPECT_TRUE(path_allowed(b, "/repos/a/b/issues/3"));
  EXPECT_TRUE(path_allowed(b, "/v1/chat?x=/admin"));
  EXPECT_FALSE(path_allowed(b, "/admin?/v1/"));   // the query is not the path
  EXPECT_FALSE(path_allowed(b, "/v2/x"));
  EXPECT_FALSE(path_allowed(b, ""));
  // Dot segments would let a server resolve the path out of the allowed prefix.
  EXPECT_FALSE(path_allowed(b, "/v1/../admin"));
  EXPECT_FALSE(path_allowed(b, "/v1/%2e%2E/admin"));
  EXPECT_FALSE(path_allowed(b, "/v1/x%2f..%2fadmin"));
  EXPECT_FALSE(path_allowed(b, "/v1/..\\admin"));
  EXPECT_FALSE(path_allowed(b, "/v1/./x"));
  EXPECT_FALSE(path_allowed(b, "/v1/.."));
  EXPECT_TRUE(path_allowed(b, "/v1/a..b/.well-known/x"));
  EXPECT_TRUE(path_allowed(b, "/v1/x?p=../admin"));
}

TEST(Binding, AnyHostOnlyWhenAllowed) {
  Binding b;
  EXPECT_FALSE(host_allowed(b, "x.example"));
  b.allow_any = true;
  EXPECT_TRUE(host_allowed(b, "x.example"));
  EXPECT_FALSE(host_allowed(b, ""));
}

TEST(Catalogue, KnowsTheCommonKeys) {
  for (const char* n : {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "GH_TOKEN", "SLACK_BOT_TOKEN",
                        "HF_TOKEN", "SERPAPI_API_KEY"})
    EXPECT_FALSE(catalogue_hosts(n).empty()) << n;
  EXPECT_EQ(catalogue_hosts("OPENAI_API_KEY"), std::vector<std::string>{"api.openai.com"});
  EXPECT_TRUE(catalogue_hosts("MY_OWN_KEY").empty());
  for (const auto& e : host_catalogue())
    for (const auto& h : e.hosts) EXPECT_EQ(host_pattern_problem(h), "") << e.name << " " << h;
}

Config parse(const std::string& text) {
  auto c = parse_config(text, "/p/.keyzero.toml");
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : Config{};
}

TEST(BlindBindings, SecretWithoutHostsIsNamedWithItsPosition) {
  Config c = parse(
      "[secrets]\n"
      "A = { provider = \"env\", ref = \"X\", hosts = [\"a.example\"] }\n"
      "OPENAI_API_KEY = { provider = \"env\", ref = \"Y\" }\n"
      "MINE = { provider = \"env\", ref = \"Z\" }\n");
  auto r = blind_bindings(c, {"A", "OPENAI_API_KEY", "MINE"}, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/p/.keyzero.toml:4:"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("MINE"), std::string::npos);
  EXPECT_EQ(r.error().message.find("OPENAI_API_KEY has no"), std::string::npos);   // the catalogue knows it
  EXPECT_NE(r.error().message.find("--allow-any-host"), std::string::npos);

  auto ok = blind_bindings(c, {"A", "OPENAI_API_KEY", "MINE"}, true);
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[1].second.hosts, std::vector<std::string>{"api.openai.com"});
  EXPECT_FALSE((*ok)[1].second.allow_any);
  EXPECT_TRUE((*ok)[2].second.allow_any);
}

TEST(BlindBindings, ConfigRejectsBadHostsMethodsPaths) {
  for (const char* bad : {"hosts = [\"*\"]", "hosts = [\"a.*.com\"]", "methods = [\"get\"]", "paths = [\"v1/\"]"}) {
    auto c = parse_config(std::string("[secrets]\nA = { provider = \"env\", ref = \"X\", ") + bad + " }\n",
                          "/p/.keyzero.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.error().message.find("/p/.keyzero.toml:2:"), std::string::npos) << c.error().message;
    EXPECT_NE(c.error().message.find("secrets.A."), std::string::npos) << c.error().message;
  }
}

TEST(BlindConfig, CaFileIsRelativeToTheConfig) {
  Config c = parse("[blind]\nca_file = \"certs/ca.pem\"\n");
  EXPECT_EQ(c.blind.ca_file, "/p/certs/ca.pem");
  auto bad = parse_config("[blind]\nca = \"x\"\n", "/p/.keyzero.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("known: ca_file, reuse, proxy_ports, redirector"), std::string::npos);
  EXPECT_TRUE(c.blind.grant_connections);   // default: grants per connection
  EXPECT_FALSE(parse("[blind]\nreuse = \"request\"\n").blind.grant_connections);
  EXPECT_TRUE(parse("[blind]\nreuse = \"connection\"\n").blind.grant_connections);
  auto bad_reuse = parse_config("[blind]\nreuse = \"always\"\n", "/p/.keyzero.toml");
  ASSERT_FALSE(bad_reuse.ok());
  EXPECT_NE(bad_reuse.error().message.find("/p/.keyzero.toml:2:"), std::string::npos) << bad_reuse.error().message;
  EXPECT_NE(bad_reuse.error().message.find("blind.reuse"), std::string::npos);
}

TEST(BlindConfig, ProxyPortsAndRedirector) {
  Config d = parse("[blind]\n");
  EXPECT_TRUE(d.blind.proxy_ports.empty());
  EXPECT_EQ(d.blind.redirector, "auto");
  Config c = parse("[blind]\nproxy_ports = [8443, 9443]\nredirector = \"seccomp\"\n");
  EXPECT_EQ(c.blind.proxy_ports, (std::vector<std::uint16_t>{8443, 9443}));
  EXPECT_EQ(c.blind.redirector, "seccomp");
  for (const char* bad : {"[blind]\nproxy_ports = [0]\n", "[blind]\nproxy_ports = [70000]\n",
                          "[blind]\nproxy_ports = 443\n", "[blind]\nproxy_ports = [\"443\"]\n",
                          "[blind]\nredirector = \"iptables\"\n"}) {
    auto r = parse_config(bad, "/p/.keyzero.toml");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("/p/.keyzero.toml:2:"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("blind."), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace kz
