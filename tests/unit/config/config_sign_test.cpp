// AWS SigV4 secrets in .keyzero.toml (docs/aws.md): sign, access_key_id, services,
// regions, session_token; each mistake named by file, line and field.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/secret_bindings.h"

namespace kz {
namespace {

std::string error_of(const std::string& toml) {
  auto c = parse_config(toml, "/p/.keyzero.toml");
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : c.error().message;
}

TEST(ConfigSign, ParsesASigningSecretIntoItsBinding) {
  auto c = parse_config(R"([secrets]
AWS_SECRET_ACCESS_KEY = { provider = "env", ref = "K", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAIOSFODNN7EXAMPLE", services = ["s3", "sts"], regions = ["eu-west-1"], session_token = "AWS_SESSION_TOKEN" }
AWS_SESSION_TOKEN = { provider = "env", ref = "T", hosts = ["*.amazonaws.com"] }
)", "/p/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  const Binding b = binding_of(*c->find_secret("AWS_SECRET_ACCESS_KEY"), false);
  EXPECT_EQ(b.sign, "sigv4");
  EXPECT_EQ(b.access_key_id, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(b.services, (std::vector<std::string>{"s3", "sts"}));
  EXPECT_EQ(b.regions, (std::vector<std::string>{"eu-west-1"}));
  EXPECT_EQ(b.session_token, "AWS_SESSION_TOKEN");
  EXPECT_EQ(binding_of(*c->find_secret("AWS_SESSION_TOKEN"), false).sign, "");
}

TEST(ConfigSign, MistakesNameFileLineAndField) {
  const std::string head = "[secrets]\n";
  std::string e = error_of(head + "K = { provider = \"env\", ref = \"K\", hosts = [\"a.b\"], sign = \"sigv4\" }\n");
  EXPECT_NE(e.find("/p/.keyzero.toml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("secrets.K: sign = \"sigv4\" needs access_key_id"), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", services = [\"s3\"] }\n");
  EXPECT_NE(e.find("need sign = \"sigv4\""), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", sign = \"hmac\" }\n");
  EXPECT_NE(e.find("secrets.K.sign: unknown signing scheme \"hmac\""), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", sign = \"sigv4\", access_key_id = \"akia\" }\n");
  EXPECT_NE(e.find("secrets.K.access_key_id"), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", sign = \"sigv4\", access_key_id = \"AKIAIOSFODNN7EXAMPLE\", "
                      "services = [\"S3\"] }\n");
  EXPECT_NE(e.find("secrets.K.services: \"S3\""), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", sign = \"sigv4\", access_key_id = \"AKIAIOSFODNN7EXAMPLE\", "
                      "session_token = \"NOPE\" }\n");
  EXPECT_NE(e.find("secrets.K.session_token: no secret named NOPE"), std::string::npos) << e;
}

TEST(ConfigSign, CredentialSetGivesTheIdAndTheSessionToken) {
  auto c = parse_config(R"([secrets]
AWS_SECRET_ACCESS_KEY = { provider = "exec", ref = "aws-vault export --format=json ci", format = "aws-credentials", sign = "sigv4", hosts = ["*.amazonaws.com"], session_token = "AWS_SESSION_TOKEN" }
AWS_SESSION_TOKEN = { from = "AWS_SECRET_ACCESS_KEY", hosts = ["*.amazonaws.com"] }
)", "/p/.keyzero.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  const SecretSpec* k = c->find_secret("AWS_SECRET_ACCESS_KEY");
  const SecretSpec* t = c->find_secret("AWS_SESSION_TOKEN");
  EXPECT_EQ(k->format, "aws-credentials");
  EXPECT_TRUE(k->access_key_id.empty());   // from the set, at resolution
  EXPECT_EQ(t->from, "AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(t->provider, "exec");            // the key's source, for kz trust and the audit
  EXPECT_EQ(t->ref, k->ref);
}

TEST(ConfigSign, CredentialSetMistakes) {
  const std::string head = "[secrets]\n";
  const std::string key = "K = { provider = \"exec\", ref = \"x\", format = \"aws-credentials\", sign = \"sigv4\", "
                          "session_token = \"T\" }\n";
  std::string e = error_of(head + key + "T = { provider = \"env\", ref = \"T\" }\n");
  EXPECT_NE(e.find("secrets.T: the session token of K's credential set needs from = \"K\""), std::string::npos) << e;
  e = error_of(head + key + "T = { from = \"K\", provider = \"env\", ref = \"T\" }\n");
  EXPECT_NE(e.find("secrets.T: from = \"K\" takes the value from that secret's credential set"), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"env\", ref = \"K\", sign = \"sigv4\", access_key_id = \"AKIAIOSFODNN7EXAMPLE\", "
                      "session_token = \"T\" }\nT = { from = \"K\" }\n");
  EXPECT_NE(e.find("secrets.T.from: K must be a secret with format = \"aws-credentials\""), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"exec\", ref = \"x\", format = \"aws-credentials\" }\n");
  EXPECT_NE(e.find("need sign = \"sigv4\""), std::string::npos) << e;
  e = error_of(head + "K = { provider = \"exec\", ref = \"x\", format = \"json\", sign = \"sigv4\" }\n");
  EXPECT_NE(e.find("secrets.K.format: unknown format \"json\""), std::string::npos) << e;
}

}  // namespace
}  // namespace kz
