// Shared by the provider tests: a fake environment, settings built from key/value
// pairs, and the check that an error message carries none of the test's canaries.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include "kz/providers/provider.h"

namespace kz::test {

class MapEnv final : public Environment {
 public:
  MapEnv() = default;
  MapEnv(std::initializer_list<std::pair<const std::string, std::string>> init) : m_(init) {}
  const char* get(const std::string& name) const override {
    auto it = m_.find(name);
    return it == m_.end() ? nullptr : it->second.c_str();
  }
  void set(const std::string& k, const std::string& v) { m_[k] = v; }
  void unset(const std::string& k) { m_.erase(k); }

 private:
  std::map<std::string, std::string> m_;
};

// [providers.X] settings as if read from line 1 of .keyzero.toml.
inline ProviderSettings settings(std::initializer_list<std::pair<const std::string, std::string>> kv) {
  ProviderSettings s;
  for (const auto& [k, v] : kv) s[k] = SettingValue{v, {".keyzero.toml", 1, 1}};
  return s;
}

// No canary (secret value, token, key) may appear in an error message.
template <class Canaries>
void expect_no_canary(const Error& e, const Canaries& canaries) {
  for (const auto& c : canaries)
    EXPECT_EQ(e.message.find(c), std::string::npos) << "leaked '" << c << "' in: " << e.message;
}

}  // namespace kz::test
