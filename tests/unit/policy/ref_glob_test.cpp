#include "policy/ref_glob.h"

#include <gtest/gtest.h>

namespace kz::policy {
namespace {

TEST(RefGlob, DoubleStarIsAnyNumberOfSegments) {
  EXPECT_TRUE(ref_glob_matches("secret/data/prod/**", "secret/data/prod/db"));
  EXPECT_TRUE(ref_glob_matches("secret/data/prod/**", "secret/data/prod/a/b/c#password"));
  EXPECT_TRUE(ref_glob_matches("secret/data/prod/**", "secret/data/prod"));
  EXPECT_FALSE(ref_glob_matches("secret/data/prod/**", "secret/data/production/db"));
  EXPECT_FALSE(ref_glob_matches("secret/data/prod/**", "secret/data/staging/db"));
  EXPECT_TRUE(ref_glob_matches("**/db", "a/b/db"));
  EXPECT_TRUE(ref_glob_matches("**", "anything/at/all"));
  EXPECT_TRUE(ref_glob_matches("a/**/z", "a/z"));
  EXPECT_TRUE(ref_glob_matches("a/**/z", "a/b/c/z"));
  EXPECT_FALSE(ref_glob_matches("a/**/z", "a/b/c/y"));
  EXPECT_TRUE(ref_glob_matches("a/**/m/**/z", "a/x/m/y/m/z"));
}

TEST(RefGlob, StarStaysWithinOneSegment) {
  EXPECT_TRUE(ref_glob_matches("secret/*/prod", "secret/data/prod"));
  EXPECT_FALSE(ref_glob_matches("secret/*/prod", "secret/a/b/prod"));
  EXPECT_TRUE(ref_glob_matches("db-*", "db-main"));
  EXPECT_TRUE(ref_glob_matches("db-*", "db-"));
  EXPECT_FALSE(ref_glob_matches("db-*", "db-main/x"));
  EXPECT_TRUE(ref_glob_matches("*-key*", "api-key-2"));
  EXPECT_FALSE(ref_glob_matches("prod/*", "prod"));
}

TEST(RefGlob, LiteralAndCaseSensitive) {
  EXPECT_TRUE(ref_glob_matches("op://vault/item/field", "op://vault/item/field"));
  EXPECT_FALSE(ref_glob_matches("Prod/db", "prod/db"));
  EXPECT_FALSE(ref_glob_matches("prod/db", "prod/db/extra"));
}

TEST(RefGlob, Problems) {
  EXPECT_EQ(ref_glob_problem("a/**/b"), "");
  EXPECT_NE(ref_glob_problem(""), "");
  EXPECT_NE(ref_glob_problem("a/b**"), "");
  EXPECT_NE(ref_glob_problem("***"), "");
}

}  // namespace
}  // namespace kz::policy
