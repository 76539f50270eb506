// `kz run` with [server] url: the secrets come from a kz PDP (kz server start), which
// checks this machine's identity token and its policies, instead of from the providers.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "kz/result.h"
#include "resolve/resolver.h"

namespace kz {

inline constexpr const char* kEnvIdentityToken = "KZ_IDENTITY_TOKEN";

// The identity token: $KZ_IDENTITY_TOKEN, else the file given (--identity-token-file),
// else [server] identity_token_file (a Kubernetes projected service-account token, say).
// Surrounding whitespace is trimmed; the token never appears in a message.
Result<std::string> identity_token(const Config& cfg, const std::string& flag_file);

struct PdpResolveOptions {
  std::vector<std::string> only;   // the secrets to ask for (names in cfg)
  std::string token;
  // Once per secret with its outcome (error null when resolved), and the PDP's decision id.
  std::function<void(const SecretSpec&, const Error* error, const std::string& decision_id)> on_result;
};

// POST /v1/resolve. Fails (ErrorKind::Denied) naming every secret the PDP denied and the
// rule that decided; nothing is returned unless every secret was resolved.
Result<std::vector<ResolvedSecret>> resolve_via_pdp(const Config& cfg, const PdpResolveOptions& opts);

}  // namespace kz
