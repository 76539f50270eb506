// Each secret's binding (binding_of: what blind mode and MCP both use), the [blind]
// table and the start-up check that every secret has somewhere to go.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/secret_bindings.h"

namespace kz {
namespace {

Config parse(const std::string& text) {
  auto c = parse_config(text, "/p/.keyzero.toml");
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : Config{};
}

TEST(BindingOf, OwnHostsElseTheCatalogueElseAnyHostOnlyWhenAllowed) {
  Config c = parse(
      "[secrets]\n"
      "A = { provider = \"env\", ref = \"X\", hosts = [\"a.example\", \"*.b.example\"], methods = [\"GET\"], "
      "paths = [\"/v1/\"] }\n"
      "OPENAI_API_KEY = { provider = \"env\", ref = \"Y\", hosts = [\"proxy.example\"] }\n"
      "GITHUB_TOKEN = { provider = \"env\", ref = \"G\" }\n"
      "MINE = { provider = \"env\", ref = \"Z\" }\n");
  const Binding a = binding_of(*c.find_secret("A"), false);
  EXPECT_EQ(a.hosts, (std::vector<std::string>{"a.example", "*.b.example"}));
  EXPECT_EQ(a.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(a.paths, std::vector<std::string>{"/v1/"});
  EXPECT_FALSE(a.allow_any);
  // Declared hosts replace the catalogue's.
  EXPECT_EQ(binding_of(*c.find_secret("OPENAI_API_KEY"), false).hosts, std::vector<std::string>{"proxy.example"});
  const Binding gh = binding_of(*c.find_secret("GITHUB_TOKEN"), true);
  EXPECT_FALSE(gh.hosts.empty());
  EXPECT_FALSE(gh.allow_any);   // the catalogue knows it: --allow-any-host does not widen it
  EXPECT_TRUE(binding_of(*c.find_secret("MINE"), false).hosts.empty());
  EXPECT_FALSE(binding_of(*c.find_secret("MINE"), false).allow_any);
  EXPECT_TRUE(binding_of(*c.find_secret("MINE"), true).allow_any);
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
