// aws-profile: a field of an AWS CLI profile from the shared credentials file, the config
// file, or the profile's credential_process (a real program run by the provider).
#include <gtest/gtest.h>

#include "kz/providers/registry.h"
#include "provider_test_support.h"
#include "test_support.h"

namespace {

using kz::test::MapEnv;

const std::string kKey = "CanaryProfileKey/kz+0123456789abcdefABCDEF";
const std::string kToken = "CanarySessionToken0123456789";
const std::string kProcessKey = "CanaryProcessKey/0123456789abcdefABCDEFGH";

struct AwsProfile : ::testing::Test {
  kz::test::TempDir dir;
  MapEnv env;

  void SetUp() override {
    dir.write("credentials", "[default]\naws_access_key_id = AKIAKZTEST0000000001\naws_secret_access_key = " + kKey +
                                 "\naws_session_token = " + kToken + "\n");
    const std::string script = dir.write("proc.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": "
                                                    "\"AKIAKZPROC0000000001\", \"SecretAccessKey\": \"" +
                                                        kProcessKey + "\"}'\n", 0700);
    dir.write("config", "[profile ci]\nregion = eu-west-1\ncredential_process = " + script + "\n"
                        "[profile broken]\ncredential_process = /bin/false\n");
    env.set("AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials"));
    env.set("AWS_CONFIG_FILE", dir.file("config"));
  }
  kz::Result<kz::SecretValue> resolve(const std::string& ref) {
    kz::ProviderContext ctx{&env, dir.path(), dir.path()};
    auto p = kz::aws_profile_provider_spec().make({}, ctx);
    EXPECT_TRUE(p.ok());
    return (*p)->resolve({"AWS_SECRET_ACCESS_KEY", ref, {}}, kz::Clock::now() + std::chrono::seconds(10));
  }
  static std::string value(const kz::Result<kz::SecretValue>& r) {
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? std::string(r->view()) : "";
  }
};

TEST_F(AwsProfile, CredentialsFile) {
  EXPECT_EQ(value(resolve("default")), kKey);
  EXPECT_EQ(value(resolve("default#aws_session_token")), kToken);
  EXPECT_EQ(value(resolve("default#aws_access_key_id")), "AKIAKZTEST0000000001");
}

TEST_F(AwsProfile, CredentialProcess) {
  EXPECT_EQ(value(resolve("ci")), kProcessKey);
  EXPECT_EQ(value(resolve("ci#aws_access_key_id")), "AKIAKZPROC0000000001");
  auto none = resolve("ci#aws_session_token");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("SessionToken"), std::string::npos) << none.error().message;
}

TEST_F(AwsProfile, ErrorsNameWhatIsMissingAndNoValue) {
  for (const char* ref : {"nosuch", "default#password", "broken", "#aws_secret_access_key"}) {
    auto r = resolve(ref);
    ASSERT_FALSE(r.ok()) << ref;
    for (const std::string& v : {kKey, kToken, kProcessKey}) EXPECT_EQ(r.error().message.find(v), std::string::npos);
  }
  EXPECT_NE(resolve("nosuch").error().message.find(dir.file("credentials")), std::string::npos);
}

}  // namespace
