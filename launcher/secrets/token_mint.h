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
// `xoxb-`, GitHub's `ghp_`, a JWT's three base64url parts), so a blind token keeps the
// value's kept prefix (a known vendor prefix, or a JWT's "header.payload.") and then
// stands for the rest of the value, as long as the rest, in the rest's character
// classes (mint_classed_token). Every scanner finds the marker the rest starts with and
// swaps from there, leaving the prefix in place: the length is exact both ways. When the
// rest cannot carry a class-shaped token, the fallback is the kept vendor prefix and a
// plain KZ_TOK_ token (token_prefix_for), or a bare KZ_TOK_ token.
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

// The prefix a class-shaped token for `value` keeps: the longest known vendor prefix
// (secrets/canary.h) it starts with, or (`jwt`) a JWT's "header.payload." (three
// non-empty base64url parts, the header starting "eyJ"); "" when none, or `shape` is
// Plain. Whether the rest can carry the token is mint_classed_token's to say.
std::string_view classed_prefix_for(std::string_view value, TokenShape shape, bool jwt);

// How a rest's bytes are read (classed_layout_for says which applies to a value).
struct ClassedLayout {
  // The rest is one base64url string (an OpenAI or Anthropic key's body, a JWT's
  // signature): its '-' and '_' are characters of the alphabet, not separators, so the
  // marker may stand where they are. Otherwise (Slack's `-`, a GitHub PAT's `_`) they
  // separate the value's parts, and the marker must fit in the first part.
  bool base64url = false;
  // A JWT signature: the last character is drawn so that the encoding stays canonical.
  bool jwt_signature = false;
  // This many bytes at the end are the format's constant (Anthropic's "AA"): kept.
  std::size_t keep_tail = 0;
};

// The layout for `value` whose kept prefix is `prefix` (classed_prefix_for).
ClassedLayout classed_layout_for(std::string_view value, std::string_view prefix);

// A class-shaped token standing for `rest` (a value after its kept prefix), as long as
// rest. It starts with a marker (wire/token.h) in the class of rest's first run:
// lower-case if the run has a lower-case letter, else upper-case if it has an upper-case
// one, else the digit marker. Every byte after the marker keeps the class of rest's byte
// at that position: digit → random digit, lower → random lower, upper → random upper,
// '-' and '_' (and the kept tail) as they are. An empty token when rest cannot carry
// one: a byte outside [A-Za-z0-9_-], a first run shorter than its marker, or fewer than
// kMinShapedBits random bits after the marker.
inline constexpr double kMinShapedBits = 96.0;
Result<SecretValue> mint_classed_token(std::string_view rest, ClassedLayout layout = {});
// The random bits a class-shaped token for `rest` carries (0 when it cannot carry one).
double classed_token_bits(std::string_view rest, ClassedLayout layout = {});

// `prefix` followed by `token`, in locked memory: what the agent is given.
SecretValue token_with_prefix(std::string_view prefix, std::string_view token);

// A short, stable name for a token in audit records: the first 12 hex digits of its
// SHA-256. It identifies the token without being usable as one.
std::string token_id(std::string_view token);

}  // namespace kz
