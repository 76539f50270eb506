// format = "aws-credentials" (docs/aws.md): the id, the key and the session token of one
// JSON credential set, in the shapes credential_process, Vault's AWS secrets engine and
// the credentials file use; errors name fields, never a value.
#include <gtest/gtest.h>

#include "secrets/aws_credential_set.h"

namespace kz {
namespace {

constexpr const char* kKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

TEST(AwsCredentialSet, CredentialProcessOutput) {
  auto s = split_aws_credentials(std::string(R"({"Version": 1, "AccessKeyId": "ASIAIOSFODNN7EXAMPLE", "SecretAccessKey": ")") +
                                 kKey + R"(", "SessionToken": "FwoGZXIvYXdzEXAMPLE", "Expiration": "2099-01-01T00:00:00Z"})");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->access_key_id, "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(s->secret_access_key.view(), kKey);
  EXPECT_EQ(s->session_token.view(), "FwoGZXIvYXdzEXAMPLE");
}

TEST(AwsCredentialSet, VaultAwsEngineResponseWholeOrData) {
  const std::string data = std::string(R"({"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": ")") + kKey +
                           R"(", "security_token": null})";
  for (const std::string& text : {data, R"({"lease_id": "aws/creds/ci/x", "data": )" + data + "}"}) {
    auto s = split_aws_credentials(text);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->access_key_id, "AKIAIOSFODNN7EXAMPLE");
    EXPECT_EQ(s->secret_access_key.view(), kKey);
    EXPECT_TRUE(s->session_token.empty());   // long-term credentials
  }
}

TEST(AwsCredentialSet, ErrorsNameFieldsNeverValues) {
  for (const std::string& text :
       {std::string("not json ") + kKey, std::string(R"({"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"})"),
        std::string(R"({"SecretAccessKey": ")") + kKey + "\"}",
        std::string(R"({"AccessKeyId": "akia-lower", "SecretAccessKey": ")") + kKey + "\"}",
        std::string(R"({"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": 5})"),
        std::string("[\"") + kKey + "\"]"}) {
    auto s = split_aws_credentials(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.error().message.find(kKey), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("aws-credentials"), std::string::npos) << s.error().message;
  }
  EXPECT_NE(split_aws_credentials(R"({"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": 5})").error().message.find(
                "SecretAccessKey is not a string"),
            std::string::npos);
}

}  // namespace
}  // namespace kz
