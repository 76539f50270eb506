// One secret's value as a provider (or the PDP) returned it, before anything uses it.
#pragma once

#include <string>

#include "kz/providers/provider.h"
#include "kz/secret.h"

namespace kz {

struct ResolvedSecret {
  std::string name;
  std::string provider;
  SecretValue value;
  ValueLease lease{};   // what the provider said of the value's lease and version (rotation)
};

}  // namespace kz
