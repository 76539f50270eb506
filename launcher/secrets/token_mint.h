// Minting the per-run tokens that stand in for secrets in blind mode.
#pragma once

#include <string>
#include <string_view>

#include "kz/result.h"
#include "kz/secret.h"

namespace kz {

// "KZ_TOK_" + base62 characters from RAND_bytes (rejection-sampled, so every character
// is uniform), `length` bytes in all (at least kMinTokenLen: ≥ 96 bits of randomness).
// The token lives in locked memory: it is a credential for the length of the run.
Result<SecretValue> mint_token(std::size_t length);

// A short, stable name for a token in audit records: the first 12 hex digits of its
// SHA-256. It identifies the token without being usable as one.
std::string token_id(std::string_view token);

}  // namespace kz
