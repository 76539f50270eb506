// vault provider against tests/servers/vault_server.py, a local HTTPS Vault (KV v1/v2,
// AppRole, namespaces). Every test goes through vault_provider_spec().make(settings, ctx)
// with a test Environment. Failure tests check that no secret value and no token is in
// the message.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
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

const char* kToken = "hvs.CANARY-root-token-7731";
const char* kRoleId = "role-1234";
const char* kSecretId = "CANARY-secret-id-5150";

const char* kCanaries[] = {"CANARY-gh-token", "CANARY-v1-value", "CANARY-user", "CANARY-pass",
                           "CANARY-single", "CANARY-slow", "CANARY-ns", kToken, kSecretId,
                           "hvs.approle-"};

const char* kData = R"({
  "kv2": {
    "secret": {
      "prod/github": {"token": "CANARY-gh-token"},
      "prod/db": {"username": "CANARY-user", "password": "CANARY-pass"},
      "prod/default": {"value": "CANARY-default", "other": "CANARY-other"},
      "prod/num": {"port": 5432, "opts": {"tls": true}}
    },
    "slow": {"x": {"value": "CANARY-slow"}}
  },
  "database": {"database": {"app": {"default_ttl": 600}}},
  "kv1": {
    "kv": {
      "prod/x": {"value": "CANARY-v1-value"},
      "prod/single": {"only": "CANARY-single"},
      "prod/looks2": {"data": {"inner": "CANARY-inner"}, "metadata": {"version": 1}}
    }
  }
})";


void expect_clean(const kz::Error& e) { kz::test::expect_no_canary(e, kCanaries); }


std::vector<std::string> server_args(const std::string& data, bool rogue = false,
                                     std::vector<std::string> extra = {}) {
  auto a = kz::test::tls_args(rogue);
  a.insert(a.end(), {"--data", data, "--token", kToken, "--role-id", kRoleId, "--secret-id",
                     kSecretId});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

class Vault : public kz::test::ProviderServerTest<Vault> {
 public:
  Vault() : ProviderServerTest(kz::vault_provider_spec(), "GITHUB_TOKEN") {}

  static std::unique_ptr<ServerProcess> start_server(const TempDir& dir) {
    data_ = dir.write("data.json", kData);
    return std::make_unique<ServerProcess>("vault_server.py", server_args(data_));
  }

  kz::ProviderSettings base_settings(const ServerProcess* srv = nullptr) const {
    return settings({{"address", (srv ? srv : server_.get())->url()},
                     {"ca_cert", kz::test::test_ca().ca}});
  }

 protected:
  void SetUp() override { env_ = MapEnv{{"VAULT_TOKEN", kToken}}; }

  static inline std::string data_;
};

// ------------------------------------------------------------------ success

TEST_F(Vault, SpecDeclaresSettingsWithHelp) {
  auto spec = kz::vault_provider_spec();
  EXPECT_EQ(spec.name, "vault");
  std::map<std::string, std::string> keys;
  for (const auto& s : spec.settings) keys[s.key] = s.help;
  for (const char* k : {"address", "token_file", "namespace", "ca_cert", "auth", "role_id",
                        "secret_id_file", "approle_mount", "kv_version"}) {
    ASSERT_TRUE(keys.count(k)) << k;
    EXPECT_FALSE(keys[k].empty()) << k;
  }
  EXPECT_EQ(keys.size(), 9u);
}

TEST_F(Vault, KvV2WithFieldAndVaultToken) {
  EXPECT_EQ(value(resolve("secret/data/prod/github#token")), "CANARY-gh-token");
  EXPECT_EQ(value(resolve("secret/data/prod/db#password")), "CANARY-pass");
  EXPECT_EQ(value(resolve("/v1/secret/data/prod/db#username")), "CANARY-user");
}

TEST_F(Vault, SingleFieldAndDefaultValueField) {
  EXPECT_EQ(value(resolve("secret/data/prod/github")), "CANARY-gh-token");
  EXPECT_EQ(value(resolve("secret/data/prod/default")), "CANARY-default");
  EXPECT_EQ(value(resolve("kv/prod/single")), "CANARY-single");
}

TEST_F(Vault, NonStringFieldsAreJsonText) {
  EXPECT_EQ(value(resolve("secret/data/prod/num#port")), "5432");
  EXPECT_EQ(value(resolve("secret/data/prod/num#opts")), R"({"tls":true})");
}

// Rotation (resolve/refresher.h): what Vault says of a value's lifetime and version.
TEST_F(Vault, LeaseAndVersionAreReported) {
  auto p = make(base_settings());
  ASSERT_TRUE(p.ok()) << p.error().message;
  kz::ValueLease kv;
  auto v = (*p)->resolve_leased({"GITHUB_TOKEN", "secret/data/prod/github#token", {}}, kz::Clock::now() + std::chrono::seconds(15), kv);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(kv.version, "1");
  EXPECT_EQ(kv.duration.count(), 0) << "KV v2 has no lease";
  kz::ValueLease db;
  auto first = (*p)->resolve_leased({"DB", "database/creds/app#password", {}}, kz::Clock::now() + std::chrono::seconds(15), db);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(db.duration, std::chrono::seconds(600));
  EXPECT_TRUE(db.renewable);
  EXPECT_EQ(db.lease_id.rfind("database/creds/app/", 0), 0u) << db.lease_id;
  kz::ValueLease again;
  auto second = (*p)->resolve_leased({"DB", "database/creds/app#password", {}}, kz::Clock::now() + std::chrono::seconds(15), again);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(std::string(first->view()), std::string(second->view())) << "dynamic credentials are new on every read";
  EXPECT_NE(again.lease_id, db.lease_id);
}

TEST_F(Vault, KvV1) {
  EXPECT_EQ(value(resolve("kv/prod/x")), "CANARY-v1-value");
  EXPECT_EQ(value(resolve("kv/prod/x#value")), "CANARY-v1-value");
  auto s = base_settings();
  s["kv_version"] = kz::SettingValue{"1", {}};
  // Forced v1: a data/metadata-shaped v1 secret is not unwrapped.
  EXPECT_EQ(value(resolve_with(s, "kv/prod/looks2#metadata")), R"({"version":1})");
}

TEST_F(Vault, KvVersionAutoDetectsV2Response) {
  // kv_version=auto and a v1 path: the v2-shaped response is unwrapped.
  EXPECT_EQ(value(resolve("kv/prod/looks2#inner")), "CANARY-inner");
}

TEST_F(Vault, KvVersion2InsertsData) {
  auto s = base_settings();
  s["kv_version"] = kz::SettingValue{"2", {}};
  EXPECT_EQ(value(resolve_with(s, "secret/prod/github#token")), "CANARY-gh-token");
  EXPECT_EQ(value(resolve_with(s, "secret/data/prod/github#token")), "CANARY-gh-token");
}

TEST_F(Vault, TokenFromDotFile) {
  env_ = MapEnv{};
  home_.write(".vault-token", std::string(kToken) + "\n");
  EXPECT_EQ(value(resolve("secret/data/prod/github#token")), "CANARY-gh-token");
}

TEST_F(Vault, TokenFileSettingBeatsEnvironment) {
  env_.set("VAULT_TOKEN", "hvs.wrong");
  home_.write("tok", kToken);
  auto s = base_settings();
  s["token_file"] = kz::SettingValue{"tok", {}};   // relative to config_dir
  EXPECT_EQ(value(resolve_with(s, "secret/data/prod/github#token")), "CANARY-gh-token");
}

TEST_F(Vault, AddressAndCaFromEnvironment) {
  env_.set("VAULT_ADDR", server_->url());
  env_.set("VAULT_CACERT", kz::test::test_ca().ca);
  EXPECT_EQ(value(resolve_with({}, "secret/data/prod/github#token")), "CANARY-gh-token");
  // The setting wins over VAULT_ADDR.
  env_.set("VAULT_ADDR", "https://127.0.0.1:1");
  EXPECT_EQ(value(resolve_with(base_settings(), "secret/data/prod/github#token")), "CANARY-gh-token");
}

TEST_F(Vault, AppRoleLogsInOnce) {
  env_ = MapEnv{};
  home_.write("secret-id", std::string(kSecretId) + "\n");
  auto s = base_settings();
  s["auth"] = kz::SettingValue{"approle", {}};
  s["role_id"] = kz::SettingValue{kRoleId, {}};
  s["secret_id_file"] = kz::SettingValue{home_.file("secret-id"), {}};
  ServerProcess srv("vault_server.py", server_args(data_));
  s["address"] = kz::SettingValue{srv.url(), {}};
  auto p = make(s);
  ASSERT_TRUE(p.ok()) << p.error().message;
  std::vector<std::thread> ts;
  std::vector<std::string> got(4);
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&, i] {
      kz::SecretRef r{"X", "secret/data/prod/db#password", {}};
      got[i] = value((*p)->resolve(r, kz::Clock::now() + std::chrono::seconds(15)));
    });
  for (auto& t : ts) t.join();
  for (const auto& g : got) EXPECT_EQ(g, "CANARY-pass");
  auto r = kz::test::run({"curl", "-s", "--cacert", kz::test::test_ca().ca, srv.url() + "/v1/sys/test/logins"});
  if (r.status == 0) {
    EXPECT_NE(r.out.find("\"logins\": 1"), std::string::npos) << r.out;
  }
}

TEST_F(Vault, AppRoleBadSecretIdIsDenied) {
  home_.write("secret-id", "CANARY-wrong-secret-id");
  auto s = base_settings();
  s["auth"] = kz::SettingValue{"approle", {}};
  s["role_id"] = kz::SettingValue{kRoleId, {}};
  s["secret_id_file"] = kz::SettingValue{"secret-id", {}};
  auto r = resolve_with(s, "secret/data/prod/db#password");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("invalid role or secret ID"), std::string::npos);
  EXPECT_EQ(r.error().message.find("CANARY-wrong-secret-id"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(Vault, AppRoleNeedsRoleIdAndSecretIdFile) {
  auto s = base_settings();
  s["auth"] = kz::SettingValue{"approle", {}};
  auto r = make(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("role_id"), std::string::npos);
  s["role_id"] = kz::SettingValue{kRoleId, {}};
  auto r2 = make(s);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("secret_id_file"), std::string::npos);
}

TEST_F(Vault, Namespace) {
  ServerProcess ns("vault_server.py", server_args(data_, false, {"--namespace", "team-a"}));
  auto s = base_settings(&ns);
  auto no = resolve_with(s, "secret/data/prod/github#token");
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error().kind, ErrorKind::Denied) << no.error().message;
  expect_clean(no.error());
  env_.set("VAULT_NAMESPACE", "team-a");
  EXPECT_EQ(value(resolve_with(s, "secret/data/prod/github#token")), "CANARY-gh-token");
  env_.unset("VAULT_NAMESPACE");
  s["namespace"] = kz::SettingValue{"team-a", {}};
  EXPECT_EQ(value(resolve_with(s, "secret/data/prod/github#token")), "CANARY-gh-token");
}

// ------------------------------------------------------------------ failures

TEST_F(Vault, MultipleFieldsListsNamesOnly) {
  auto r = resolve("secret/data/prod/db");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("username"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("password"), std::string::npos) << r.error().message;
  expect_clean(r.error());
  auto m = resolve("secret/data/prod/db#pasword");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().kind, ErrorKind::NotFound);
  EXPECT_NE(m.error().message.find("username"), std::string::npos) << m.error().message;
  expect_clean(m.error());
}

TEST_F(Vault, WrongTokenIsDenied) {
  env_.set("VAULT_TOKEN", "hvs.CANARY-wrong-token");
  auto r = resolve("secret/data/prod/github#token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("permission denied"), std::string::npos);
  EXPECT_NE(r.error().message.find("VAULT_TOKEN"), std::string::npos);
  EXPECT_EQ(r.error().message.find("CANARY-wrong-token"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(Vault, UnknownPathIsNotFound) {
  auto r = resolve("secret/data/prod/nope#token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound) << r.error().message;
  EXPECT_NE(r.error().message.find("prod/nope"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(Vault, SealedIsReported) {
  auto r = resolve("sealed/data/x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("sealed"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(Vault, SlowServerTimesOut) {
  auto t0 = kz::Clock::now();
  auto r = resolve_with(base_settings(), "slow/data/x", std::chrono::milliseconds(800));
  auto took = kz::Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_LT(took, std::chrono::milliseconds(2500));
  expect_clean(r.error());
}

TEST_F(Vault, MalformedJsonIsProtocolError) {
  auto r = resolve("broken/data/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Protocol) << r.error().message;
  EXPECT_EQ(r.error().message.find("unterminated"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(Vault, RogueCertificateIsTlsError) {
  ServerProcess rogue("vault_server.py", server_args(data_, /*rogue=*/true));
  auto r = resolve_with(base_settings(&rogue), "secret/data/prod/github#token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Tls) << r.error().message;
  expect_clean(r.error());
}

TEST_F(Vault, MissingTokenIsConfigError) {
  env_ = MapEnv{};
  auto r = make(base_settings());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("VAULT_TOKEN"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(home_.path() + "/.vault-token"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("token_file"), std::string::npos) << r.error().message;
}

TEST_F(Vault, MissingAddressIsConfigError) {
  auto r = make(settings({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("VAULT_ADDR"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("address"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(Vault, BadSettingsAndRefs) {
  auto s = base_settings();
  s["kv_version"] = kz::SettingValue{"3", {}};
  EXPECT_EQ(make(s).error().kind, ErrorKind::Config);
  s = base_settings();
  s["auth"] = kz::SettingValue{"ldap", {}};
  EXPECT_EQ(make(s).error().kind, ErrorKind::Config);
  for (const char* ref : {"", "secret", "secret/data", "secret/data/x#", "secret//x", "a/../b"}) {
    auto r = resolve(ref);
    ASSERT_FALSE(r.ok()) << ref;
    EXPECT_EQ(r.error().kind, ErrorKind::Config) << ref << ": " << r.error().message;
  }
}

}  // namespace
