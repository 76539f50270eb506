// Host binding, method/path restrictions and the host catalogue.
#include <gtest/gtest.h>

#include "secrets/binding.h"
#include "secrets/host_catalogue.h"

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

}  // namespace
}  // namespace kz
