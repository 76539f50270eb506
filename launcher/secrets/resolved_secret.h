// One secret's value as a provider (or the PDP) returned it, before anything uses it.
#pragma once

#include <string>

#include "kz/secret.h"

namespace kz {

struct ResolvedSecret {
  std::string name;
  std::string provider;
  SecretValue value;
};

}  // namespace kz
