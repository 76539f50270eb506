// The secrets of one blind run and the tokens that stand for them. Built once before
// the agent starts, read-only afterwards (the broker thread reads it without locks).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/binding.h"
#include "kz/result.h"
#include "kz/secret.h"
#include "secrets/resolved_secret.h"

namespace kz {

struct BlindSecret {
  std::string name;
  std::uint32_t id = 0;         // index + 1, stable for the run
  SecretValue value;
  SecretValue token;            // same length as the value when that is ≥ 24 bytes
  std::string token_id;         // short hash for audit records
  Binding binding;
  std::uint64_t fp_hash = 0;    // inbound fingerprint of the value (wire/fingerprint.h)
};

class TokenTable {
 public:
  // Takes the resolved values; mints a token for each. Values longer than
  // wire::kMaxSecretLen are refused (blind mode carries them in fixed-size messages).
  static Result<TokenTable> build(std::vector<ResolvedSecret> secrets,
                                  const std::vector<std::pair<std::string, Binding>>& bindings);

  const std::vector<BlindSecret>& secrets() const { return secrets_; }
  // Constant-time comparisons over every token (no early exit on a match).
  const BlindSecret* find_token(std::string_view text) const;
  // A secret whose token begins with `text` (and is longer than it).
  const BlindSecret* find_token_start(std::string_view text) const;
  const BlindSecret* find_value(std::string_view bytes) const;
  // Some token is longer than its value: the shim must fix up HTTP framing.
  bool needs_length_fixup() const;
  std::uint64_t fp_base() const { return fp_base_; }

 private:
  std::vector<BlindSecret> secrets_;
  std::uint64_t fp_base_ = 0;
};

}  // namespace kz
