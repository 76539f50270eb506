#pragma once

#include <string>
#include <vector>

#include "kz/providers/provider.h"

namespace kz {

// Every built-in provider, in a stable order (for help texts and errors).
const std::vector<ProviderSpec>& provider_specs();
const ProviderSpec* find_provider_spec(const std::string& name);
// "1password, aws-sm, env, exec, file, vault"
std::string provider_names();
// The setting `key` of a provider, or null; with the keys it accepts ("timeout, address,
// ...") for the error message.
const SettingSpec* find_setting_spec(const ProviderSpec& spec, const std::string& key);
std::string setting_keys(const ProviderSpec& spec);

// Specs of individual providers (each defined in its own file).
ProviderSpec env_provider_spec();
ProviderSpec file_provider_spec();
ProviderSpec exec_provider_spec();
ProviderSpec vault_provider_spec();
ProviderSpec aws_sm_provider_spec();
ProviderSpec aws_profile_provider_spec();
ProviderSpec onepassword_provider_spec();

}  // namespace kz
