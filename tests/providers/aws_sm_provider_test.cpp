// aws-sm provider against tests/servers/aws_sm_server.py, a local HTTPS Secrets Manager
// that verifies SigV4 signatures itself. Every test goes through the real provider made
// by aws_sm_provider_spec().make(settings, ctx) with a test Environment.
// Failure tests also check that no secret value and no AWS secret key is in the message.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "kz/providers/aws_credentials.h"
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

const char* kAkid = "AKIDKZTEST0000000001";
const char* kSecretKey = "CanarySecretKey/kz+0123456789abcdefABCDEF";
const char* kRegion = "eu-west-1";
const char* kArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";

// Every secret value in the server's file; none may ever appear in an error message.
const char* kCanaries[] = {"CANARY-pw-31337", "CANARY-oldpw-1", "CANARY-plain-token-42",
                           "CANARY-bin", "CANARY-slow", "CANARY-malformed", "CANARY-text-9",
                           kSecretKey};

const char* kSecretsJson = R"({
  "prod/db": {
    "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
    "VersionId": "v2",
    "SecretString": "{\"username\":\"admin\",\"password\":\"CANARY-pw-31337\"}",
    "Previous": {"VersionId": "v1",
                 "SecretString": "{\"username\":\"admin\",\"password\":\"CANARY-oldpw-1\"}"}
  },
  "plain/token": {"SecretString": "CANARY-plain-token-42"},
  "plain/text": {"SecretString": "CANARY-text-9 is not json"},
  "bin/key": {"SecretBinary": "AAFDQU5BUlktYmlu/w=="},
  "num/json": {"SecretString": "{\"port\": 5432, \"tls\": true, \"nested\": {\"a\": 1}}"},
  "slow/db": {"SecretString": "CANARY-slow"},
  "malformed/db": {"SecretString": "CANARY-malformed"}
})";


void expect_clean(const kz::Error& e) { kz::test::expect_no_canary(e, kCanaries); }


std::vector<std::string> server_args(const std::string& secrets_file, bool rogue = false,
                                     const std::string& token = "") {
  auto a = kz::test::tls_args(rogue);
  for (const char* x : {"--secrets"}) a.push_back(x);
  a.push_back(secrets_file);
  a.insert(a.end(), {"--access-key-id", kAkid, "--secret-access-key", kSecretKey, "--region",
                     kRegion, "--slow-seconds", "5"});
  if (!token.empty()) a.insert(a.end(), {"--session-token", token});
  return a;
}

class AwsSm : public kz::test::ProviderServerTest<AwsSm> {
 public:
  AwsSm() : ProviderServerTest(kz::aws_sm_provider_spec(), "DB_PASSWORD") {}

  static std::unique_ptr<ServerProcess> start_server(const TempDir& dir) {
    secrets_ = dir.write("secrets.json", kSecretsJson);
    return std::make_unique<ServerProcess>("aws_sm_server.py", server_args(secrets_));
  }

  kz::ProviderSettings base_settings() const {
    return settings({{"region", kRegion},
                     {"endpoint", server_->url()},
                     {"ca_cert", kz::test::test_ca().ca}});
  }

 protected:
  void SetUp() override {
    env_ = MapEnv{{"AWS_ACCESS_KEY_ID", kAkid}, {"AWS_SECRET_ACCESS_KEY", kSecretKey}};
  }

  static inline std::string secrets_;
};

// ------------------------------------------------------------------ success

TEST_F(AwsSm, SpecDeclaresSettingsWithHelp) {
  auto spec = kz::aws_sm_provider_spec();
  EXPECT_EQ(spec.name, "aws-sm");
  std::map<std::string, std::string> keys;
  for (const auto& s : spec.settings) keys[s.key] = s.help;
  for (const char* k : {"region", "profile", "endpoint", "ca_cert", "version_stage"}) {
    ASSERT_TRUE(keys.count(k)) << k;
    EXPECT_FALSE(keys[k].empty()) << k;
  }
  EXPECT_EQ(keys.size(), 5u);
}

TEST_F(AwsSm, ByName) { EXPECT_EQ(value(resolve("plain/token")), "CANARY-plain-token-42"); }

TEST_F(AwsSm, ByArn) {
  EXPECT_EQ(value(resolve(kArn)), R"({"username":"admin","password":"CANARY-pw-31337"})");
  EXPECT_EQ(value(resolve(std::string(kArn) + "#password")), "CANARY-pw-31337");
}

TEST_F(AwsSm, JsonKey) {
  EXPECT_EQ(value(resolve("prod/db#password")), "CANARY-pw-31337");
  EXPECT_EQ(value(resolve("prod/db#username")), "admin");
  EXPECT_EQ(value(resolve("num/json#port")), "5432");
  EXPECT_EQ(value(resolve("num/json#tls")), "true");
  EXPECT_EQ(value(resolve("num/json#nested")), R"({"a":1})");
}

TEST_F(AwsSm, VersionStageAndId) {
  EXPECT_EQ(value(resolve("prod/db?version_stage=AWSPREVIOUS#password")), "CANARY-oldpw-1");
  EXPECT_EQ(value(resolve("prod/db?stage=AWSPREVIOUS#password")), "CANARY-oldpw-1");
  EXPECT_EQ(value(resolve("prod/db?version_id=v1#password")), "CANARY-oldpw-1");
  EXPECT_EQ(value(resolve("prod/db?version_stage=AWSCURRENT#password")), "CANARY-pw-31337");
  auto s = base_settings();
  s["version_stage"] = kz::SettingValue{"AWSPREVIOUS", {}};
  EXPECT_EQ(value(resolve_with(s, "prod/db#password")), "CANARY-oldpw-1");
}

TEST_F(AwsSm, SecretBinaryIsDecoded) {
  auto r = resolve("bin/key");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::string(r->view()), std::string("\x00\x01" "CANARY-bin\xff", 13));
}

TEST_F(AwsSm, SessionToken) {
  const std::string token = "FwoGZXIvYXdzEKZ//////////token+with/chars==";
  ServerProcess sts("aws_sm_server.py", server_args(secrets_, false, token));
  auto s = settings({{"region", kRegion}, {"endpoint", sts.url()},
                     {"ca_cert", kz::test::test_ca().ca}});
  env_.set("AWS_SESSION_TOKEN", token);
  EXPECT_EQ(value(resolve_with(s, "plain/token")), "CANARY-plain-token-42");
  // Without the token the server does not know the caller.
  env_.unset("AWS_SESSION_TOKEN");
  auto r = resolve_with(s, "plain/token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  expect_clean(r.error());
  EXPECT_EQ(r.error().message.find(token), std::string::npos);
}

TEST_F(AwsSm, CredentialsAndRegionFromProfileFiles) {
  env_ = MapEnv{{"AWS_PROFILE", "work"}};
  home_.write(".aws/credentials",
              "[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = nope\n\n"
              "[work]\naws_access_key_id = " + std::string(kAkid) +
              "\naws_secret_access_key = " + kSecretKey + "\n");
  home_.write(".aws/config", "[default]\nregion = us-east-1\n\n# comment\n[profile work]\n"
                             "region = eu-west-1\ns3 =\n  max_concurrent_requests = 2\n");
  auto s = settings({{"endpoint", server_->url()}, {"ca_cert", kz::test::test_ca().ca}});
  EXPECT_EQ(value(resolve_with(s, "plain/token")), "CANARY-plain-token-42");

  // The `profile` setting wins over AWS_PROFILE and over environment keys.
  env_ = MapEnv{{"AWS_PROFILE", "default"}, {"AWS_ACCESS_KEY_ID", "AKIDWRONG"},
                {"AWS_SECRET_ACCESS_KEY", "wrong"}};
  s["profile"] = kz::SettingValue{"work", {}};
  EXPECT_EQ(value(resolve_with(s, "plain/token")), "CANARY-plain-token-42");
}

TEST_F(AwsSm, SharedFileLocationsFromEnvironment) {
  TempDir elsewhere;
  std::string creds = elsewhere.write("creds", "[ci]\naws_access_key_id=" + std::string(kAkid) +
                                                   "\naws_secret_access_key=" + kSecretKey + "\n");
  std::string conf = elsewhere.write("conf", "[profile ci]\nregion=eu-west-1\n");
  env_ = MapEnv{{"AWS_PROFILE", "ci"}, {"AWS_SHARED_CREDENTIALS_FILE", creds},
                {"AWS_CONFIG_FILE", conf}};
  auto s = settings({{"endpoint", server_->url()}, {"ca_cert", kz::test::test_ca().ca}});
  EXPECT_EQ(value(resolve_with(s, "plain/token")), "CANARY-plain-token-42");
}

TEST_F(AwsSm, EndpointRegionAndCaFromEnvironment) {
  env_.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", server_->url());
  env_.set("AWS_ENDPOINT_URL", "https://127.0.0.1:1");   // less specific: ignored
  env_.set("AWS_DEFAULT_REGION", kRegion);
  env_.set("AWS_CA_BUNDLE", kz::test::test_ca().ca);
  EXPECT_EQ(value(resolve_with({}, "plain/token")), "CANARY-plain-token-42");
}

TEST_F(AwsSm, SettingsOverrideEnvironment) {
  env_.set("AWS_REGION", "us-west-2");
  env_.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://127.0.0.1:1");
  EXPECT_EQ(value(resolve("plain/token")), "CANARY-plain-token-42");
}

TEST_F(AwsSm, DefaultEndpointFollowsRegion) {
  kz::aws::Inputs in;
  in.region_setting = "ap-southeast-2";
  auto r = kz::aws::resolve(in, env_, home_.path(), "aws-sm");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->endpoint, "https://secretsmanager.ap-southeast-2.amazonaws.com");
  EXPECT_EQ(r->region, "ap-southeast-2");
  EXPECT_EQ(r->credentials.access_key_id, kAkid);
}

// ------------------------------------------------------------------ failures

TEST_F(AwsSm, WrongSecretKeyIsDenied) {
  env_.set("AWS_SECRET_ACCESS_KEY", "CanarySecretKey/wrong");
  auto r = resolve("plain/token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("InvalidSignatureException"), std::string::npos);
  EXPECT_EQ(r.error().message.find("CanarySecretKey/wrong"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(AwsSm, UnknownAccessKeyIsDenied) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN");
  auto r = resolve("plain/token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("UnrecognizedClientException"), std::string::npos);
  expect_clean(r.error());
}

TEST_F(AwsSm, UnknownSecretIsNotFound) {
  auto r = resolve("prod/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound) << r.error().message;
  EXPECT_NE(r.error().message.find("prod/nope"), std::string::npos);
  expect_clean(r.error());
  auto v = resolve("prod/db?version_id=v9#password");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().kind, ErrorKind::NotFound) << v.error().message;
  expect_clean(v.error());
}

TEST_F(AwsSm, SlowServerTimesOut) {
  auto t0 = kz::Clock::now();
  auto r = resolve_with(base_settings(), "slow/db", std::chrono::milliseconds(800));
  auto took = kz::Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_LT(took, std::chrono::seconds(4));
  expect_clean(r.error());
}

TEST_F(AwsSm, MalformedResponseIsProtocolError) {
  auto r = resolve("malformed/db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Protocol) << r.error().message;
  expect_clean(r.error());
  EXPECT_EQ(r.error().message.find("unterminated"), std::string::npos);
}

TEST_F(AwsSm, MissingJsonKeyListsKeyNamesOnly) {
  auto r = resolve("prod/db#pasword");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::NotFound) << r.error().message;
  EXPECT_NE(r.error().message.find("username"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("password"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("admin"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(AwsSm, JsonKeyOnNonJsonSecret) {
  auto r = resolve("plain/text#password");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Protocol) << r.error().message;
  expect_clean(r.error());
}

TEST_F(AwsSm, RogueCertificateIsTlsError) {
  ServerProcess rogue("aws_sm_server.py", server_args(secrets_, /*rogue=*/true));
  auto s = settings({{"region", kRegion}, {"endpoint", rogue.url()},
                     {"ca_cert", kz::test::test_ca().ca}});
  auto r = resolve_with(s, "plain/token");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Tls) << r.error().message;
  expect_clean(r.error());
}

TEST_F(AwsSm, MissingCredentialsIsConfigError) {
  env_ = MapEnv{};
  auto r = make(base_settings());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(home_.path() + "/.aws/credentials"), std::string::npos)
      << r.error().message;
  expect_clean(r.error());

  env_ = MapEnv{{"AWS_SECRET_ACCESS_KEY", kSecretKey}};   // half a key pair
  auto half = make(base_settings());
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().kind, ErrorKind::Config);
  EXPECT_NE(half.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
  expect_clean(half.error());

  env_ = MapEnv{{"AWS_PROFILE", "ghost"}};
  auto ghost = make(base_settings());
  ASSERT_FALSE(ghost.ok());
  EXPECT_EQ(ghost.error().kind, ErrorKind::Config);
  EXPECT_NE(ghost.error().message.find("ghost"), std::string::npos);
}

TEST_F(AwsSm, MissingRegionIsConfigError) {
  auto r = make(settings({{"endpoint", server_->url()}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
  EXPECT_NE(r.error().message.find("AWS_REGION"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/.aws/config"), std::string::npos) << r.error().message;
  expect_clean(r.error());
}

TEST_F(AwsSm, PlainHttpEndpointIsRejected) {
  auto r = make(settings({{"region", kRegion}, {"endpoint", "http://127.0.0.1:1"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Config);
}

TEST_F(AwsSm, BadRefIsConfigError) {
  for (const char* ref : {"prod/db?bogus=1", "prod/db?version_stage=", "?version_id=x", "prod/db#"}) {
    auto r = resolve(ref);
    ASSERT_FALSE(r.ok()) << ref;
    EXPECT_EQ(r.error().kind, ErrorKind::Config) << ref << ": " << r.error().message;
  }
}

}  // namespace

namespace {

TEST(AwsProfileFile, ParsesSectionsLikeTheAwsCli) {
  auto pf = kz::aws::ProfileFile::parse(
      "# comment\n[default]\nregion = us-east-1\n\n[profile dev]\r\nregion=eu-west-1\r\n"
      "aws_access_key_id = AKIDDEV\ns3 =\n  region = nested-ignored\n"
      "[sso-session corp]\nregion = sso-ignored\n; another comment\n[profile  spaced ]\nregion=x\n",
      /*is_config_file=*/true);
  ASSERT_NE(pf.get("default", "region"), nullptr);
  EXPECT_EQ(*pf.get("default", "region"), "us-east-1");
  ASSERT_NE(pf.get("dev", "region"), nullptr);
  EXPECT_EQ(*pf.get("dev", "region"), "eu-west-1");
  EXPECT_EQ(*pf.get("dev", "aws_access_key_id"), "AKIDDEV");
  EXPECT_FALSE(pf.has_profile("sso-session corp"));
  EXPECT_FALSE(pf.has_profile("corp"));
  ASSERT_NE(pf.get("spaced", "region"), nullptr);
  // In the credentials file, section names are profile names as written.
  auto creds = kz::aws::ProfileFile::parse("[profile dev]\naws_access_key_id=A\n", false);
  EXPECT_TRUE(creds.has_profile("profile dev"));
  EXPECT_FALSE(creds.has_profile("dev"));
}

}  // namespace
