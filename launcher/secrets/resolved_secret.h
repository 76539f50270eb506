// One secret's value as a provider (or the PDP) returned it, before anything uses it.
#pragma once

#include <string>

#include "kz/secret.h"

namespace kz {

struct ResolvedSecret {
  std::string name;
  std::string provider;
  SecretValue value;
  // format = "aws-credentials": the access key id its credential set gave (not secret).
  std::string access_key_id{};
};

}  // namespace kz
