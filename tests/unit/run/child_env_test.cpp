#include "run/child_env.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace kz {
namespace {

std::vector<ResolvedSecret> one_secret(const char* name, const char* value) {
  std::vector<ResolvedSecret> v;
  v.push_back(ResolvedSecret{name, "env", SecretValue::from(value)});
  return v;
}

TEST(ChildEnv, SecretsReplaceInheritedAndPlain) {
  const char* parent[] = {"PATH=/bin", "TOKEN=inherited", "OTHER=1", nullptr};
  ChildEnvOptions o;
  o.plain.push_back(EnvVar{"PLAIN", "p", {}});
  auto secrets = one_secret("TOKEN", "resolved");
  EnvBlock b = build_child_env(const_cast<char**>(parent), o, secrets);
  EXPECT_STREQ(b.get("TOKEN"), "resolved");
  EXPECT_STREQ(b.get("OTHER"), "1");
  EXPECT_STREQ(b.get("PLAIN"), "p");
  EXPECT_EQ(b.size(), 4u);
  b.wipe();
  EXPECT_EQ(b.get("TOKEN"), nullptr);
}

TEST(ChildEnv, CleanKeepsOnlyBaseAndKept) {
  const char* parent[] = {"PATH=/bin", "HOME=/h", "SECRET_LEFTOVER=x", "KEEP=k", nullptr};
  ChildEnvOptions o;
  o.clean = true;
  o.keep = {"KEEP"};
  EnvBlock b = build_child_env(const_cast<char**>(parent), o, one_secret("S", "v"));
  EXPECT_STREQ(b.get("PATH"), "/bin");
  EXPECT_STREQ(b.get("KEEP"), "k");
  EXPECT_STREQ(b.get("S"), "v");
  EXPECT_EQ(b.get("SECRET_LEFTOVER"), nullptr);
}

TEST(EnvFile, ParsesQuotesCommentsExport) {
  test::TempDir d;
  auto p = d.write("x.env",
                   "# c\n\nexport A=1\nB = \"two words\\n\"\nC='lit\\n'\nD=plain # trailing\nE=\n");
  auto r = parse_env_file(p);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].value, "1");
  EXPECT_EQ((*r)[1].value, "two words\n");
  EXPECT_EQ((*r)[2].value, "lit\\n");
  EXPECT_EQ((*r)[3].value, "plain");
  EXPECT_EQ((*r)[4].value, "");
  EXPECT_EQ((*r)[1].pos.line, 4);
}

TEST(EnvFile, ErrorsNameLine) {
  test::TempDir d;
  auto r = parse_env_file(d.write("x.env", "A=1\nB=\"open\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "x.env:2")) << r.error().message;
  r = parse_env_file(d.write("y.env", "1A=1\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "y.env:1")) << r.error().message;
}

}  // namespace
}  // namespace kz

namespace kz {
namespace {

TEST(ChildEnv, ProviderCredentialsDroppedUnlessKept) {
  const char* parent[] = {"VAULT_TOKEN=hvs.x", "AWS_SECRET_ACCESS_KEY=k", "OP_SESSION_my=s", "OP_SESSIONX=t",
                          "AWS_REGION=eu-west-1", "KEEP_ME=1", nullptr};
  ChildEnvOptions o;
  o.drop = provider_credential_vars({"vault", "aws-sm", "1password"});
  EnvBlock b = build_child_env(const_cast<char**>(parent), o, {});
  EXPECT_EQ(b.get("VAULT_TOKEN"), nullptr);
  EXPECT_EQ(b.get("AWS_SECRET_ACCESS_KEY"), nullptr);
  EXPECT_EQ(b.get("OP_SESSION_my"), nullptr);
  EXPECT_STREQ(b.get("OP_SESSIONX"), "t");        // prefix is OP_SESSION_, not OP_SESSION
  EXPECT_STREQ(b.get("AWS_REGION"), "eu-west-1");  // configuration, not a credential
  o.keep = {"VAULT_TOKEN"};
  EnvBlock kept = build_child_env(const_cast<char**>(parent), o, {});
  EXPECT_STREQ(kept.get("VAULT_TOKEN"), "hvs.x");
  EXPECT_TRUE(provider_credential_vars({"env", "file"}).empty());
}

}  // namespace
}  // namespace kz
