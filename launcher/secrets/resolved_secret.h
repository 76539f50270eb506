// One secret's value as a provider (or the PDP) returned it, before anything uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "kz/providers/provider.h"
#include "kz/secret.h"

namespace kz {

class ValueSource;   // secrets/live_value.h

struct ResolvedSecret {
  std::string name;
  std::string provider;
  SecretValue value;
  ValueLease lease{};   // what the provider said of the value's lease and version (rotation)
  // A minted credential (secrets/live_value.h): where its next value comes from, how long
  // this one lives (seconds; 0: not said) and how long before expiry to renew it.
  std::shared_ptr<ValueSource> source{};
  std::int64_t expires_in = 0;
  std::chrono::seconds refresh_skew{60};
  // format = "aws-credentials": the access key id its credential set gave (not secret).
  std::string access_key_id{};
};

}  // namespace kz
