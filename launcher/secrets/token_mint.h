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

// Tokens that look right. SDKs check the shape of a key (OpenAI's `sk-proj-`, Slack's
// `xoxb-`, GitHub's `ghp_`...), so a blind token keeps the value's vendor prefix: the
// agent holds that prefix and then a plain token standing for the rest of the value,
// as long as the rest. Every scanner finds the `KZ_TOK_` inside as it always has and
// swaps it for the rest, leaving the prefix in place: the length is exact both ways.
enum class TokenShape {
  Auto,    // keep a known prefix when the value has one (the default)
  Plain,   // always a bare KZ_TOK_ token
};

// The prefix a token for `value` keeps: the longest prefix of a known credential shape
// (secrets/canary.h) that `value` starts with, "" when none applies: `shape` is Plain,
// the value has a '.' (a JWT: its parts cannot ride in a token), the prefix does not end
// in a separator (the token must start at a non-base62 byte), or the rest of the value
// is shorter than kMinTokenLen (too short to carry a token of its own length).
std::string_view token_prefix_for(std::string_view value, TokenShape shape);

// `prefix` followed by `token`, in locked memory: what the agent is given.
SecretValue token_with_prefix(std::string_view prefix, std::string_view token);

// A short, stable name for a token in audit records: the first 12 hex digits of its
// SHA-256. It identifies the token without being usable as one.
std::string token_id(std::string_view token);

}  // namespace kz
