#pragma once

#include <string>

#include "commands/commands.h"
#include "config/config.h"

namespace kz {

// Find (or take --config) and load .keyzero.toml; logs the error itself.
Result<Config> load_config_for(const GlobalOptions& g);

}  // namespace kz
