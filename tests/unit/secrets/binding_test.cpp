// Host binding, method/path restrictions, the one binding check (check_binding) and its
// refusals, and the host catalogue.
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

// A `paths` rule matches only canonical paths (issue 15, class 8): every spelling a
// server could resolve to another path is refused, with the reason in the refusal.
TEST(Binding, PathsMatchOnlyCanonicalPaths) {
  Binding b;
  b.hosts = {"h"};
  b.paths = {"/v1/*"};
  for (const char* bad : {"/v1/%252e%252e/admin", "/v1/..;/admin", "/v1/..;x/admin", "/v1/%c0%ae%c0%ae/admin",
                          "/v1/%c0%af", "/v1/%e0%80%ae", "/v1//admin", "/v1/%5cadmin", "/v1/%2Fadmin",
                          "/v1/%00", "/v1/%zz", "/v1/%2", "/v1/\x7f", "/v1/%ed%a0%80", "/v1/\xc0\xae"}) {
    EXPECT_FALSE(path_allowed(b, bad)) << bad;
    EXPECT_NE(path_problem(std::string_view(bad).substr(0, std::string_view(bad).find('?'))), nullptr) << bad;
    const BindingVerdict v = check_binding(b, "API_KEY", "h", "GET", bad);
    EXPECT_EQ(v.refusal, BindingRefusal::Path) << bad;
    EXPECT_NE(v.reason.find("not a canonical path"), std::string::npos) << v.reason;
  }
  for (const char* good : {"/v1/x", "/v1/caf%C3%A9", "/v1/a;b=c", "/v1/x%20y", "/v1/\xc3\xa9"})
    EXPECT_TRUE(path_allowed(b, good)) << good;
  // Without a paths rule nothing is judged.
  Binding any;
  any.hosts = {"h"};
  EXPECT_TRUE(path_allowed(any, "/v1/%2e%2e/admin"));
}

TEST(Binding, AnyHostOnlyWhenAllowed) {
  Binding b;
  EXPECT_FALSE(host_allowed(b, "x.example"));
  b.allow_any = true;
  EXPECT_TRUE(host_allowed(b, "x.example"));
  EXPECT_FALSE(host_allowed(b, ""));
}

Binding github_binding() {
  Binding b;
  b.hosts = {"api.github.com", "*.githubusercontent.com"};
  b.methods = {"GET", "POST"};
  b.paths = {"/repos/*/issues", "/v1/"};
  return b;
}

TEST(CheckBinding, AllowsWhatMatchesEverywhere) {
  const Binding b = github_binding();
  for (const char* host : {"api.github.com", "API.GitHub.com.", "raw.githubusercontent.com", "a.b.githubusercontent.com"}) {
    const BindingVerdict v = check_binding(b, "GH", host, "GET", "/repos/kz/issues/3?state=open");
    EXPECT_TRUE(v.allowed()) << host << ": " << v.reason;
    EXPECT_EQ(v.refusal, BindingRefusal::None);
    EXPECT_EQ(v.reason, "");
  }
  EXPECT_TRUE(check_binding(b, "GH", "api.github.com", "POST", "/v1/x"));
  // Nothing restricted but the hosts: any method and path, and none at all.
  Binding hosts_only;
  hosts_only.hosts = {"api.example.com"};
  EXPECT_TRUE(check_binding(hosts_only, "K", "api.example.com", "DELETE", "/anything/../at/all"));
  EXPECT_TRUE(check_binding(hosts_only, "K", "api.example.com", "", ""));
  // --allow-any-host: any named host.
  Binding any;
  any.allow_any = true;
  EXPECT_TRUE(check_binding(any, "K", "whatever.example", "GET", "/"));
}

TEST(CheckBinding, HostRefusalsNameTheSecretAndItsHosts) {
  const Binding b = github_binding();
  BindingVerdict v = check_binding(b, "GH", "githubusercontent.com", "GET", "/v1/");   // the glob needs a label
  EXPECT_EQ(v.refusal, BindingRefusal::Host);
  EXPECT_EQ(v.reason, "GH may not be sent to githubusercontent.com (it is bound to api.github.com, *.githubusercontent.com)");
  v = check_binding(b, "GH", "api.github.com.evil.net", "GET", "/v1/");
  EXPECT_EQ(v.refusal, BindingRefusal::Host);
  v = check_binding(b, "GH", "", "GET", "/v1/");
  EXPECT_EQ(v.refusal, BindingRefusal::NoHost);
  EXPECT_EQ(v.reason, "no host name for the connection");
  Binding none;
  v = check_binding(none, "K", "api.example.com", "GET", "/");
  EXPECT_EQ(v.reason, "K may not be sent to api.example.com (it is bound to no host)");
  // The host is checked first: a wrong method on a wrong host is a host refusal.
  EXPECT_EQ(check_binding(b, "GH", "evil.example", "DELETE", "/admin").refusal, BindingRefusal::Host);
  // The host-only check agrees on hosts and ignores the request line.
  EXPECT_EQ(check_host_binding(b, "GH", "evil.example").reason, check_binding(b, "GH", "evil.example", "GET", "/v1/").reason);
  EXPECT_TRUE(check_host_binding(b, "GH", "api.github.com"));
}

TEST(CheckBinding, MethodRefusals) {
  const Binding b = github_binding();
  BindingVerdict v = check_binding(b, "GH", "api.github.com", "DELETE", "/v1/x");
  EXPECT_EQ(v.refusal, BindingRefusal::Method);
  EXPECT_EQ(v.reason, "GH may not be used with DELETE (allowed methods: GET, POST)");
  EXPECT_EQ(check_binding(b, "GH", "api.github.com", "get", "/v1/x").refusal, BindingRefusal::Method);   // case matters
  v = check_binding(b, "GH", "api.github.com", "", "");
  EXPECT_EQ(v.refusal, BindingRefusal::NoMethod);
  EXPECT_EQ(v.reason, "no request line seen, and GH may be used only with methods GET, POST");
}

TEST(CheckBinding, PathRefusalsNameThePathWithoutItsQuery) {
  const Binding b = github_binding();
  BindingVerdict v = check_binding(b, "GH", "api.github.com", "GET", "/admin?token=KZ_TOK_abc#frag");
  EXPECT_EQ(v.refusal, BindingRefusal::Path);
  EXPECT_EQ(v.reason, "GH may not be used for /admin (allowed paths: /repos/*/issues, /v1/)");
  EXPECT_EQ(v.reason.find("KZ_TOK_"), std::string::npos);
  EXPECT_EQ(check_binding(b, "GH", "api.github.com", "GET", "/v1/../admin").refusal, BindingRefusal::Path);
  EXPECT_EQ(check_binding(b, "GH", "api.github.com", "GET", "/v1/%2e%2e/admin").refusal, BindingRefusal::Path);
  Binding paths_only;
  paths_only.hosts = {"api.github.com"};
  paths_only.paths = {"/v1/"};
  v = check_binding(paths_only, "GH", "api.github.com", "", "");
  EXPECT_EQ(v.refusal, BindingRefusal::NoPath);
  EXPECT_EQ(v.reason, "no request line seen, and GH may be used only for paths /v1/");
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
