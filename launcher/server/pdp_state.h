// What the PDP serves at one moment: a checked bundle, the JWT verifier built from its
// issuers, and its providers as a configuration the resolver understands. Immutable:
// a reload builds a new one and swaps it in whole.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "kz/result.h"
#include "kz/secret.h"
#include "policy/bundle.h"
#include "policy/jwt_verifier.h"

namespace kz {

struct PdpState {
  policy::Bundle bundle;
  std::optional<jwt::JwtVerifier> verifier;   // none: the bundle has no issuers (every request is refused)
  Config providers;                           // bundle's providers; secrets are filled per request
};

// Loads and checks the bundle and its issuers' keys (jwks_file read now, jwks_url
// fetched on first use; hs256_key_env read from the environment now).
Result<std::shared_ptr<const PdpState>> load_pdp_state(const std::string& bundle_path);

// One secret (provider, ref) from a configuration's providers, e.g. the bundle's: for
// an allowed decision.
Result<SecretValue> resolve_with_providers(const Config& providers, const std::string& provider, const std::string& ref);

}  // namespace kz
