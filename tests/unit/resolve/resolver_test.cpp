#include "resolve/resolver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace kz {
namespace {

Config cfg_from(const std::string& toml, const std::string& dir) {
  auto c = parse_config(toml, dir + "/.keyzero.toml");
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return std::move(c.value());
}

// Two providers that can only finish if they run at the same time: each waits on a FIFO
// the other opens. Resolved one after the other, the first blocks until its timeout.
TEST(Resolver, ResolvesConcurrently) {
  test::TempDir d;
  ASSERT_EQ(mkfifo(d.file("f1").c_str(), 0600), 0);
  ASSERT_EQ(mkfifo(d.file("f2").c_str(), 0600), 0);
  const std::string toml =
      "[providers.exec]\ntimeout = \"20s\"\n[secrets]\n"
      "A = { provider = \"exec\", ref = \"printf x > '" + d.file("f1") + "' && cat '" + d.file("f2") +
      "' >/dev/null && printf value-a\" }\n"
      "B = { provider = \"exec\", ref = \"cat '" + d.file("f1") + "' >/dev/null && printf y > '" + d.file("f2") +
      "' && printf value-b\" }\n";
  auto r = resolve_secrets(cfg_from(toml, d.path()), {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "A");
  EXPECT_EQ((*r)[0].value.view(), "value-a");
  EXPECT_EQ((*r)[1].value.view(), "value-b");
}

TEST(Resolver, TimeoutNamesSecretAndProvider) {
  test::TempDir d;
  auto r = resolve_secrets(cfg_from("[providers.exec]\ntimeout = \"200ms\"\n[secrets]\n"
                                    "SLOW = { provider = \"exec\", ref = \"sleep 30; printf never\" }\n"
                                    "FAST = { provider = \"exec\", ref = \"printf fast-value\" }\n",
                                    d.path()),
                           {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "SLOW (provider exec")) << r.error().message;
  EXPECT_TRUE(test::contains(r.error().message, "timed out")) << r.error().message;
  EXPECT_FALSE(test::contains(r.error().message, "FAST")) << r.error().message;
}

TEST(Resolver, AllFailuresListedNoValues) {
  test::TempDir d;
  auto r = resolve_secrets(cfg_from("[secrets]\n"
                                    "GOOD = { provider = \"exec\", ref = \"printf good-secret-value\" }\n"
                                    "BAD1 = { provider = \"env\", ref = \"KZ_TEST_SURELY_UNSET\" }\n"
                                    "BAD2 = { provider = \"file\", ref = \"missing.txt\" }\n",
                                    d.path()),
                           {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "BAD1")) << r.error().message;
  EXPECT_TRUE(test::contains(r.error().message, "BAD2")) << r.error().message;
  EXPECT_TRUE(test::contains(r.error().message, ".keyzero.toml:3")) << r.error().message;
  EXPECT_FALSE(test::contains(r.error().message, "good-secret-value"));
}

TEST(Resolver, OnlySelectsAndUnknownIsUsageError) {
  test::TempDir d;
  Config c = cfg_from("[secrets]\nA = { provider = \"exec\", ref = \"printf a-value\" }\n"
                      "B = { provider = \"env\", ref = \"KZ_TEST_SURELY_UNSET\" }\n",
                      d.path());
  ResolveOptions o;
  o.only = {"A"};
  auto r = resolve_secrets(c, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->size(), 1u);
  o.only = {"C"};
  r = resolve_secrets(c, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
}

TEST(Providers, FileTrimsOneNewlineAndResolvesRelativeToConfig) {
  test::TempDir d;
  d.write("k.txt", "line-value\n\n");
  d.write("home/.config/app/key", "home-value\r\n");
  Config c = cfg_from("[secrets]\nREL = { provider = \"file\", ref = \"k.txt\" }\n"
                      "HOME_KEY = { provider = \"file\", ref = \"~/.config/app/key\" }\n",
                      d.path());
  ResolveOptions o;
  o.home = d.file("home");
  auto r = resolve_secrets(c, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].value.view(), "line-value\n");
  EXPECT_EQ((*r)[1].value.view(), "home-value");
}

TEST(Providers, ExecFailureQuotesStderrFirstLine) {
  test::TempDir d;
  auto r = resolve_secrets(cfg_from("[secrets]\nX = { provider = \"exec\", ref = \"echo 'vault sealed' >&2; "
                                    "echo second >&2; exit 4\" }\n",
                                    d.path()),
                           {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "status 4: vault sealed")) << r.error().message;
  EXPECT_FALSE(test::contains(r.error().message, "second"));
}

TEST(Providers, EnvUnsetAndEmpty) {
  struct FakeEnv : Environment {
    const char* get(const std::string& n) const override { return n == "EMPTY" ? "" : nullptr; }
  } env;
  test::TempDir d;
  Config c = cfg_from("[secrets]\nA = { provider = \"env\", ref = \"EMPTY\" }\n", d.path());
  ResolveOptions o;
  o.env = &env;
  auto r = resolve_secrets(c, o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(test::contains(r.error().message, "EMPTY is empty")) << r.error().message;
}

// The env provider only reads kz's memory: it is asked on the resolving thread, not on a
// thread started per secret (that costs a kz run more than the lookups themselves).
TEST(Resolver, EnvSecretsAreResolvedOnTheCallingThread) {
  struct ThreadEnv : Environment {
    mutable std::mutex mu;
    mutable std::vector<std::thread::id> asked_on;
    const char* get(const std::string& n) const override {
      if (n == "HOME") return nullptr;
      std::lock_guard lock(mu);
      asked_on.push_back(std::this_thread::get_id());
      return "value-of-env";
    }
  } env;
  test::TempDir d;
  Config c = cfg_from("[secrets]\nA = { provider = \"env\", ref = \"A_VAR\" }\n"
                      "B = { provider = \"env\", ref = \"B_VAR\" }\n", d.path());
  ResolveOptions o;
  o.env = &env;
  auto r = resolve_secrets(c, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].value.view(), "value-of-env");
  ASSERT_EQ(env.asked_on.size(), 2u);
  for (const auto& id : env.asked_on) EXPECT_EQ(id, std::this_thread::get_id());
}

TEST(SecretValue, LockedWipedMoveOnly) {
  auto v = SecretValue::from("abc\n");
  v.trim_trailing_newline();
  EXPECT_EQ(v.view(), "abc");
  SecretValue w = std::move(v);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(w.view(), "abc");
  static_assert(!std::is_copy_constructible_v<SecretValue>);
}

}  // namespace
}  // namespace kz
