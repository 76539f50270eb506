#include "kz/providers/registry.h"

namespace kz {

const std::vector<ProviderSpec>& provider_specs() {
  static const std::vector<ProviderSpec> specs = {
      onepassword_provider_spec(), aws_sm_provider_spec(), aws_profile_provider_spec(), env_provider_spec(),
      exec_provider_spec(),        file_provider_spec(),   vault_provider_spec(),
  };
  return specs;
}

const ProviderSpec* find_provider_spec(const std::string& name) {
  for (const auto& s : provider_specs())
    if (s.name == name) return &s;
  return nullptr;
}

std::string provider_names() {
  std::string out;
  for (const auto& s : provider_specs()) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

const SettingSpec* find_setting_spec(const ProviderSpec& spec, const std::string& key) {
  for (const auto& s : spec.settings)
    if (s.key == key) return &s;
  return nullptr;
}

std::string setting_keys(const ProviderSpec& spec) {
  std::string out = "timeout";
  for (const auto& s : spec.settings) out += ", " + s.key;
  return out;
}

}  // namespace kz
