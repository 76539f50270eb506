// Exec inheritance: fix_envp re-adds the shim and the broker to a child's environment.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kz/preload/exec_env.h"

namespace kz::preload {
namespace {

const char* const kLib = "/opt/kz/lib/libkz_preload.so";

EnvAdditions adds(bool fixup = true) {
  EnvAdditions a;
  a.preload_path = kLib;
  a.broker_entry = "KZ_BROKER=/run/kz/broker.sock";
  a.preload_entry = "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so";
  a.fixup_entry = fixup ? "KZ_FIXUP_LENGTHS=1" : nullptr;
  return a;
}

// Owns a NULL-terminated envp built from strings.
struct Env {
  explicit Env(std::vector<std::string> e) : s(std::move(e)) {
    for (auto& x : s) p.push_back(x.data());
    p.push_back(nullptr);
  }
  char* const* envp() { return p.data(); }
  std::vector<std::string> s;
  std::vector<char*> p;
};

struct Fixed {
  bool changed = false;
  std::vector<std::string> env;
};

Fixed fix(char* const* envp, const EnvAdditions& a, std::size_t cap = 0, std::size_t ld_cap = 4096) {
  if (cap == 0) cap = fix_envp_capacity(envp);
  std::vector<const char*> out(cap + 1, reinterpret_cast<const char*>(0x1));
  std::vector<char> ld(ld_cap + 1, '\x7f');
  Fixed f;
  f.changed = fix_envp(envp, a, out.data(), cap, ld.data(), ld_cap);
  EXPECT_EQ(out[cap], reinterpret_cast<const char*>(0x1)) << "wrote past cap";
  EXPECT_EQ(ld[ld_cap], '\x7f') << "wrote past ld_cap";
  if (f.changed) {
    std::size_t i = 0;
    for (; i < cap && out[i] != nullptr; ++i) f.env.emplace_back(out[i]);
    EXPECT_LT(i, cap) << "not NULL-terminated within cap";
  }
  return f;
}

std::size_t count_of(const std::vector<std::string>& env, const std::string& prefix) {
  std::size_t n = 0;
  for (const auto& e : env) n += e.rfind(prefix, 0) == 0;
  return n;
}

TEST(PreloadListHas, Separators) {
  EXPECT_TRUE(preload_list_has(kLib, kLib));
  EXPECT_TRUE(preload_list_has("/a.so:/opt/kz/lib/libkz_preload.so", kLib));
  EXPECT_TRUE(preload_list_has("/opt/kz/lib/libkz_preload.so /b.so", kLib));
  EXPECT_TRUE(preload_list_has("  /a.so : /opt/kz/lib/libkz_preload.so  :", kLib));
  EXPECT_TRUE(preload_list_has("/a.so::/opt/kz/lib/libkz_preload.so", kLib));
  EXPECT_FALSE(preload_list_has("", kLib));
  EXPECT_FALSE(preload_list_has("/a.so:/b.so", kLib));
  EXPECT_FALSE(preload_list_has("/opt/kz/lib/libkz_preload.so.1", kLib));   // longer name
  EXPECT_FALSE(preload_list_has("/x/opt/kz/lib/libkz_preload.so", kLib));
  EXPECT_FALSE(preload_list_has("/opt/kz/lib/libkz_preload", kLib));        // shorter name
  EXPECT_FALSE(preload_list_has("/a.so", ""));
}

TEST(FixEnvp, AddsEverythingToCleanEnvironment) {
  Env e({"PATH=/usr/bin", "HOME=/root"});
  const Fixed f = fix(e.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env, (std::vector<std::string>{"PATH=/usr/bin", "HOME=/root",
                                             std::string("LD_PRELOAD=") + kLib, "KZ_BROKER=/run/kz/broker.sock",
                                             "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so", "KZ_FIXUP_LENGTHS=1"}));
}

TEST(FixEnvp, EnvMinusIEmptyAndNullEnvp) {
  Env empty({});
  Fixed f = fix(empty.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env.size(), 4u);
  EXPECT_EQ(f.env[0], std::string("LD_PRELOAD=") + kLib);
  EXPECT_EQ(count_of(f.env, "KZ_BROKER="), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_PRELOAD="), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_FIXUP_LENGTHS="), 1u);

  f = fix(nullptr, adds(), fix_envp_capacity(nullptr));
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env.size(), 4u);
  EXPECT_EQ(fix_envp_capacity(nullptr), 6u);
  EXPECT_EQ(fix_envp_capacity(empty.envp()), 6u);
}

TEST(FixEnvp, ExistingPreloadKeptAfterOurs) {
  Env e({"A=1", "LD_PRELOAD=/usr/lib/libfoo.so:/usr/lib/libbar.so", "B=2"});
  const Fixed f = fix(e.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD="), 1u);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD=" + std::string(kLib) + ":/usr/lib/libfoo.so:/usr/lib/libbar.so"), 1u);
  EXPECT_EQ(count_of(f.env, "A=1"), 1u);
  EXPECT_EQ(count_of(f.env, "B=2"), 1u);
}

TEST(FixEnvp, EmptyExistingPreloadGetsNoSeparator) {
  Env e({"LD_PRELOAD="});
  const Fixed f = fix(e.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD="), 1u);
  EXPECT_EQ(f.env[0], std::string("LD_PRELOAD=") + kLib);
}

TEST(FixEnvp, OnlyMissingEntriesAreAdded) {
  // LD_PRELOAD already lists us (with a space separator) and KZ_BROKER is there:
  // only KZ_PRELOAD and KZ_FIXUP_LENGTHS are added, the rest kept as is.
  Env e({"LD_PRELOAD=/a.so " + std::string(kLib), "KZ_BROKER=/other/path"});
  const Fixed f = fix(e.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD=/a.so " + std::string(kLib)), 1u);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD="), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_BROKER=/other/path"), 1u);   // the agent's own value is not overridden
  EXPECT_EQ(count_of(f.env, "KZ_BROKER="), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_PRELOAD="), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_FIXUP_LENGTHS=1"), 1u);
  EXPECT_EQ(f.env.size(), 4u);
}

TEST(FixEnvp, MissingFixupOnlyWhenConfigured) {
  Env e({"LD_PRELOAD=" + std::string(kLib), "KZ_BROKER=/run/kz/broker.sock",
         "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so"});
  // Fixup not configured: nothing is missing.
  EXPECT_FALSE(fix(e.envp(), adds(false)).changed);
  // Configured: only KZ_FIXUP_LENGTHS is added.
  const Fixed f = fix(e.envp(), adds(true));
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env.size(), 4u);
  EXPECT_EQ(f.env.back(), "KZ_FIXUP_LENGTHS=1");
}

TEST(FixEnvp, ReturnsFalseWhenAllPresent) {
  Env e({"X=1", "LD_PRELOAD=/a.so:" + std::string(kLib), "KZ_BROKER=/run/kz/broker.sock",
         "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so", "KZ_FIXUP_LENGTHS=1"});
  EXPECT_FALSE(fix(e.envp(), adds()).changed);
}

TEST(FixEnvp, NameMatchIsExact) {
  // Variables that only start with our names do not count as present.
  Env e({"LD_PRELOAD_X=" + std::string(kLib), "KZ_BROKERX=1", "KZ_PRELOAD_OLD=1", "KZ_FIXUP_LENGTHS2=1"});
  const Fixed f = fix(e.envp(), adds());
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env.size(), 8u);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD=" + std::string(kLib)), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_BROKER=/run/kz/broker.sock"), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_PRELOAD=/opt"), 1u);
  EXPECT_EQ(count_of(f.env, "KZ_FIXUP_LENGTHS=1"), 1u);
}

TEST(FixEnvp, CapacityTooSmall) {
  Env e({"A=1", "B=2"});
  EXPECT_EQ(fix_envp_capacity(e.envp()), 8u);
  EXPECT_FALSE(fix(e.envp(), adds(), 7).changed);
  EXPECT_TRUE(fix(e.envp(), adds(), 8).changed);
  // LD_PRELOAD buffer too small for "LD_PRELOAD=<ours>:<existing>".
  Env l({"LD_PRELOAD=/usr/lib/libfoo.so"});
  const std::size_t need = std::strlen("LD_PRELOAD=") + std::strlen(kLib) + 1 + std::strlen("/usr/lib/libfoo.so") + 1;
  EXPECT_FALSE(fix(l.envp(), adds(), 0, need - 1).changed);
  const Fixed f = fix(l.envp(), adds(), 0, need);
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(count_of(f.env, "LD_PRELOAD=" + std::string(kLib) + ":/usr/lib/libfoo.so"), 1u);
}

TEST(FixEnvp, WitnessEntryComesBackWithTheShim) {
  // The sensors' witness: a child whose environment lost KZ_WITNESS gets it back, so its
  // shim says hello and the kernel does not probe it as well; the agent's own value stays.
  EnvAdditions a = adds(false);
  a.witness_entry = "KZ_WITNESS=/run/kz/witness.sock";
  Env clean({"A=1"});
  Fixed f = fix(clean.envp(), a);
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(count_of(f.env, "KZ_WITNESS=/run/kz/witness.sock"), 1u);
  EXPECT_EQ(f.env.size(), 5u);
  Env own({"LD_PRELOAD=" + std::string(kLib), "KZ_BROKER=/run/kz/broker.sock",
           "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so", "KZ_WITNESS=/elsewhere"});
  EXPECT_FALSE(fix(own.envp(), a).changed);
  Env without({"LD_PRELOAD=" + std::string(kLib), "KZ_BROKER=/run/kz/broker.sock",
               "KZ_PRELOAD=/opt/kz/lib/libkz_preload.so"});
  f = fix(without.envp(), a);
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.env.back(), "KZ_WITNESS=/run/kz/witness.sock");
  // No witness (no sensors): nothing is added for it.
  EXPECT_FALSE(fix(without.envp(), adds(false)).changed);
}

TEST(FixEnvp, NeedsPreloadPathAndBroker) {
  Env e({"A=1"});
  EnvAdditions a = adds();
  a.preload_path = nullptr;
  EXPECT_FALSE(fix(e.envp(), a).changed);
  a = adds();
  a.broker_entry = nullptr;
  EXPECT_FALSE(fix(e.envp(), a).changed);
}

}  // namespace
}  // namespace kz::preload
