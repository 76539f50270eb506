// 1password provider in both modes: CLI mode against tests/fixtures/fake-op/op (a fake `op`
// CLI), Connect mode against tests/servers/op_connect_server.py (a local HTTPS Connect
// server). Every test goes through onepassword_provider_spec().make(settings, ctx) with a
// test Environment. Failure tests check that no secret value and no token is in the message.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kz/providers/registry.h"
#include "provider_server_fixture.h"
#include "provider_test_support.h"
#include "test_support.h"

using kz::ErrorKind;
using kz::test::ServerProcess;
using kz::test::TempDir;
using kz::test::MapEnv;
using kz::test::settings;

namespace {

const char* kSaToken = "ops_CANARY-service-account-token";
const char* kConnectToken = "eyJCANARY-connect-token.sig";

const char* kCanaries[] = {"CANARY-openai", "CANARY-db-pass", "CANARY-section-pass",
                           "CANARY-slow", "CANARY-dup", "CANARY-user", kSaToken, kConnectToken,
                           "CANARY-wrong-token"};

const char* kOpSecrets = R"({
  "op://Dev/OpenAI/api-key": "CANARY-openai",
  "op://Dev/Database/prod/password": "CANARY-section-pass",
  "op://Dev/slow-item/password": "CANARY-slow"
})";

const char* kConnectData = R"({
  "Dev": {
    "OpenAI": {"fields": [{"label": "api-key", "value": "CANARY-openai"},
                          {"label": "notes", "value": "CANARY-user", "type": "STRING"}]},
    "Database": {"fields": [{"label": "username", "value": "CANARY-user", "id": "username"},
                            {"label": "password", "value": "CANARY-db-pass", "purpose": "PASSWORD"},
                            {"label": "password", "value": "CANARY-section-pass", "section": "prod"}]},
    "Twice": [{"fields": [{"label": "password", "value": "CANARY-dup"}]},
              {"fields": [{"label": "password", "value": "CANARY-dup"}]}],
    "broken": {"fields": [{"label": "password", "value": "x"}]}
  },
  "Slow": {"Item": {"fields": [{"label": "password", "value": "CANARY-slow"}]}}
})";


void expect_clean(const kz::Error& e) { kz::test::expect_no_canary(e, kCanaries); }


class OnePassword : public kz::test::ProviderServerTest<OnePassword> {
 public:
  OnePassword() : ProviderServerTest(kz::onepassword_provider_spec(), "OPENAI_API_KEY") {}

  static std::unique_ptr<ServerProcess> start_server(const TempDir& dir) {
    op_secrets_ = dir.write("op-secrets.json", kOpSecrets);
    connect_data_ = dir.write("connect.json", kConnectData);
    return std::make_unique<ServerProcess>("op_connect_server.py", server_args(false));
  }
  static std::vector<std::string> server_args(bool rogue) {
    auto a = kz::test::tls_args(rogue);
    a.insert(a.end(), {"--data", connect_data_, "--token", kConnectToken});
    return a;
  }

 protected:
  void SetUp() override {
    // The fake op reads these from the real process environment (inherited); the service
    // account token must come only from the provider's Environment.
    ::setenv("FAKE_OP_SECRETS", op_secrets_.c_str(), 1);
    ::setenv("FAKE_OP_EXPECT_TOKEN", kSaToken, 1);
    ::unsetenv("FAKE_OP_EXPECT_ACCOUNT");
    ::unsetenv("OP_SERVICE_ACCOUNT_TOKEN");
    ::unsetenv("OP_CONNECT_HOST");
    ::unsetenv("OP_CONNECT_TOKEN");
    env_ = MapEnv{{"OP_SERVICE_ACCOUNT_TOKEN", kSaToken}};
  }

  static std::string fake_op() { return kz::test::source_dir() + "/tests/fixtures/fake-op/op"; }

  kz::ProviderSettings cli_settings() const { return settings({{"op_path", fake_op()}}); }
  kz::ProviderSettings connect_settings(const ServerProcess* srv = nullptr) const {
    return settings({{"connect_host", (srv ? srv : server_.get())->url()},
                     {"ca_cert", kz::test::test_ca().ca}});
  }

  static inline std::string op_secrets_, connect_data_;
};

TEST_F(OnePassword, SpecDeclaresSettingsWithHelp) {
  auto spec = kz::onepassword_provider_spec();
  EXPECT_EQ(spec.name, "1password");
  std::map<std::string, std::string> keys;
  for (const auto& s : spec.settings) keys[s.key] = s.help;
  for (const char* k : {"connect_host", "connect_token_file", "op_path", "account", "ca_cert"}) {
    ASSERT_TRUE(keys.count(k)) << k;
    EXPECT_FALSE(keys[k].empty()) << k;
  }
  EXPECT_EQ(keys.size(), 5u);
}

TEST_F(OnePassword, MalformedRefsAreConfigErrors) {
  for (const auto& s : {cli_settings(), connect_settings()}) {
    env_.set("OP_CONNECT_TOKEN", kConnectToken);
    for (const char* ref : {"Dev/OpenAI/api-key", "op://Dev/OpenAI", "op://Dev//api-key",
                            "op://a/b/c/d/e", "op://Dev/OpenAI/api-key/", "op:/Dev/x/y"}) {
      auto r = resolve_with(s, ref);
      ASSERT_FALSE(r.ok()) << ref;
      EXPECT_EQ(r.error().kind, ErrorKind::Config) << ref << ": " << r.error().message;
      EXPECT_NE(r.error().message.find("op://VAULT/ITEM/FIELD"), std::string::npos)
          << r.error().message;
    }
  }
}

// ------------------------------------------------------------------ CLI mode

TEST_F(OnePassword, CliReadsSecret) {
  EXPECT_EQ(value(resolve_with(cli_settings(), "op://Dev/OpenAI/api-key")), "CANARY-openai");
}

TEST_F(OnePassword, CliSectionField) {
  EXPECT_EQ(value(resolve_with(cli_settings(), "op://Dev/Database/prod/password")),
            "CANARY-section-pass");
}

TEST_F(OnePassword, CliPassesAccount) {
  ::setenv("FAKE_OP_EXPECT_ACCOUNT", "my.1password.com", 1);
  auto s = cli_settings();
  auto r = resolve_with(s, "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  expect_clean(r.error());
  s["account"] = kz::SettingValue{"my.1password.com", {}};
  EXPECT_EQ(value(resolve_with(s, "op://Dev/OpenAI/api-key")), "CANARY-openai");
}

TEST_F(OnePassword, CliMissingItemQuotesStderr) {
  auto r = resolve_with(cli_settings(), "op://Dev/Nope/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound) << r.error().message;
  EXPECT_NE(r.error().message.find("could not read secret 'op://Dev/Nope/api-key'"), std::string::npos)
      << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, CliNotSignedIn) {
  env_ = MapEnv{};
  auto r = resolve_with(cli_settings(), "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("not currently signed in"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, CliBadToken) {
  env_.set("OP_SERVICE_ACCOUNT_TOKEN", "ops_CANARY-wrong-token");
  auto r = resolve_with(cli_settings(), "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, CliTimeout) {
  auto t0 = kz::Clock::now();
  auto r = resolve_with(cli_settings(), "op://Dev/slow-item/password", std::chrono::milliseconds(800));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_LT(kz::Clock::now() - t0, std::chrono::milliseconds(2500));
  expect_clean(r.error());
}

TEST_F(OnePassword, CliMissingBinary) {
  auto s = settings({{"op_path", home_.file("no-such-op")}});
  auto r = resolve_with(s, "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no-such-op"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

// ------------------------------------------------------------------ Connect mode

TEST_F(OnePassword, ConnectReadsSecret) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto s = connect_settings();
  EXPECT_EQ(value(resolve_with(s, "op://Dev/OpenAI/api-key")), "CANARY-openai");
  // Field by id, and the unsectioned field when a sectioned one has the same label.
  EXPECT_EQ(value(resolve_with(s, "op://Dev/Database/username")), "CANARY-user");
}

TEST_F(OnePassword, ConnectSectionField) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  EXPECT_EQ(value(resolve_with(connect_settings(), "op://Dev/Database/prod/password")),
            "CANARY-section-pass");
}

TEST_F(OnePassword, ConnectAmbiguousFieldNeedsSection) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto r = resolve_with(connect_settings(), "op://Dev/Database/password");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("section"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, ConnectHostAndTokenFromEnvironmentOrFile) {
  env_.set("OP_CONNECT_HOST", server_->url());
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto s = settings({{"ca_cert", kz::test::test_ca().ca}});
  EXPECT_EQ(value(resolve_with(s, "op://Dev/OpenAI/api-key")), "CANARY-openai");
  // connect_token_file wins over OP_CONNECT_TOKEN; relative to config_dir.
  env_.set("OP_CONNECT_TOKEN", "CANARY-wrong-token");
  home_.write("connect-token", std::string(kConnectToken) + "\n");
  s["connect_token_file"] = kz::SettingValue{"connect-token", {}};
  EXPECT_EQ(value(resolve_with(s, "op://Dev/OpenAI/api-key")), "CANARY-openai");
}

TEST_F(OnePassword, ConnectMissingItemVaultAndField) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto s = connect_settings();
  auto r = resolve_with(s, "op://Dev/Nope/password");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound) << r.error().message;
  EXPECT_NE(r.error().message.find("Nope"), std::string::npos);
  expect_clean(r.error());
  auto v = resolve_with(s, "op://Prod/OpenAI/api-key");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().kind, ErrorKind::NotFound) << v.error().message;
  expect_clean(v.error());
  auto f = resolve_with(s, "op://Dev/OpenAI/apikey");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().kind, ErrorKind::NotFound) << f.error().message;
  EXPECT_NE(f.error().message.find("api-key"), std::string::npos) << f.error().message;
  EXPECT_NE(f.error().message.find("notes"), std::string::npos) << f.error().message;
  expect_clean(f.error());
  auto d = resolve_with(s, "op://Dev/Twice/password");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("2 items"), std::string::npos) << d.error().message;
  expect_clean(d.error());
}

TEST_F(OnePassword, ConnectBadTokenIsDenied) {
  env_.set("OP_CONNECT_TOKEN", "CANARY-wrong-token");
  auto r = resolve_with(connect_settings(), "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("Invalid token signature"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("OP_CONNECT_TOKEN"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, ConnectTimeout) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto t0 = kz::Clock::now();
  auto r = resolve_with(connect_settings(), "op://Slow/Item/password", std::chrono::milliseconds(800));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_LT(kz::Clock::now() - t0, std::chrono::milliseconds(2500));
  expect_clean(r.error());
}

TEST_F(OnePassword, ConnectMalformedJson) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  auto r = resolve_with(connect_settings(), "op://Dev/broken/password");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Protocol) << r.error().message;
  EXPECT_EQ(r.error().message.find("unterminated"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(OnePassword, ConnectRogueCertificateIsTlsError) {
  env_.set("OP_CONNECT_TOKEN", kConnectToken);
  ServerProcess rogue("op_connect_server.py", server_args(true));
  auto r = resolve_with(connect_settings(&rogue), "op://Dev/OpenAI/api-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Tls) << r.error().message;
  expect_clean(r.error());
}

TEST_F(OnePassword, ConnectMissingTokenIsConfigError) {
  auto r = make(connect_settings());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("OP_CONNECT_TOKEN"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("connect_token_file"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

}  // namespace
