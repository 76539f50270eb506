// Resolve the selected secrets concurrently: one worker per secret, each bounded by its
// provider's timeout, so the total time is about the slowest provider, not the sum.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "kz/secret.h"
#include "secrets/resolved_secret.h"

namespace kz {


struct ResolveOptions {
  std::vector<std::string> only;            // empty: every secret in the config
  const Environment* env = nullptr;         // default: the process environment
  std::string home;                         // default: $HOME
  // Called once per selected secret with its outcome (error null on success), e.g. to
  // write an audit record.
  std::function<void(const SecretSpec&, const Error* error)> on_result;
};

// Fails if any selected secret fails; the error lists every failing secret by name and
// provider (one per line), never a value. Providers are instantiated only when used.
Result<std::vector<ResolvedSecret>> resolve_secrets(const Config& cfg, const ResolveOptions& opts);

// The providers `names` use, each made once from its [providers.NAME] settings (null
// for a provider that could not be configured: `errors` then names where and why, one
// line each). The resolver and the refresher (refresher.h) share this.
std::map<std::string, std::shared_ptr<Provider>> make_providers(const Config& cfg,
                                                               const std::vector<const SecretSpec*>& selected,
                                                               const ProviderContext& ctx, std::string& errors);
// The context providers are made in: `env` (default: the process environment) and `home`
// (default: $HOME).
ProviderContext provider_context(const Config& cfg, const Environment* env, const std::string& home);
// The timeout of one resolution by `provider` ([providers.NAME] timeout).
std::chrono::milliseconds provider_timeout(const Config& cfg, const std::string& provider);

// Check `only` against the config: unknown names are a usage error.
Status check_selection(const Config& cfg, const std::vector<std::string>& only);

}  // namespace kz
