// The fixture shared by the provider tests that talk to a local vendor-API server
// (tests/servers/*.py): the server is started once per suite, from files the suite writes
// into a temporary directory, and stopped after the suite; each test gets an empty home
// directory (also config_dir), its own Environment and a ProviderContext wired to both,
// and builds the real provider through the suite's ProviderSpec.
//
// A suite names itself (CRTP, so each suite has its own server) and gives, publicly:
//
//   class Vault : public kz::test::ProviderServerTest<Vault> {
//    public:
//     Vault() : ProviderServerTest(kz::vault_provider_spec(), "GITHUB_TOKEN") {}
//     // Once per suite: write the server's files into `dir` and start the server.
//     static std::unique_ptr<ServerProcess> start_server(const TempDir& dir);
//     // Only if the suite calls resolve(ref): the settings it resolves with.
//     kz::ProviderSettings base_settings() const;
//   };
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "kz/providers/provider.h"
#include "provider_test_support.h"
#include "test_support.h"

namespace kz::test {

template <class Suite>
class ProviderServerTest : public ::testing::Test {
 protected:
  // `ref_name` is the [secrets] variable name every resolved SecretRef carries.
  ProviderServerTest(ProviderSpec spec, std::string ref_name)
      : spec_(std::move(spec)), ref_name_(std::move(ref_name)) {
    ctx_.env = &env_;
    ctx_.home = home_.path();   // empty home: no vendor dot-files unless a test writes them
    ctx_.config_dir = home_.path();
  }

  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    server_ = Suite::start_server(*dir_);
  }
  static void TearDownTestSuite() {
    server_.reset();   // the server before the files it serves
    dir_.reset();
  }

  Result<std::unique_ptr<Provider>> make(const ProviderSettings& s) { return spec_.make(s, ctx_); }

  Result<SecretValue> resolve_with(const ProviderSettings& s, const std::string& ref,
                                   std::chrono::milliseconds budget = std::chrono::seconds(15)) {
    auto p = make(s);
    if (!p.ok()) return p.take_error();
    SecretRef r{ref_name_, ref, {".keyzero.toml", 3, 1}};
    return (*p)->resolve(r, Clock::now() + budget);
  }

  // resolve_with the suite's base_settings().
  Result<SecretValue> resolve(const std::string& ref) {
    return resolve_with(static_cast<const Suite*>(this)->base_settings(), ref);
  }

  // The secret's text, or "<error: message>" so that a failed EXPECT_EQ shows why.
  static std::string value(const Result<SecretValue>& r) {
    if (!r.ok()) return "<error: " + r.error().message + ">";
    return std::string(r->view());
  }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<ServerProcess> server_;
  TempDir home_;
  MapEnv env_;
  ProviderContext ctx_;

 private:
  ProviderSpec spec_;
  std::string ref_name_;
};

}  // namespace kz::test
