// Hosts that well-known API credentials are normally sent to, so that blind mode works
// for them without `hosts = [...]` in the config. The config's own list always wins.
#pragma once

#include <string>
#include <vector>

namespace kz {

struct CatalogueEntry {
  const char* name;                      // environment variable name
  std::vector<std::string> hosts;
};

// Empty when the name is not in the catalogue.
std::vector<std::string> catalogue_hosts(const std::string& env_name);
const std::vector<CatalogueEntry>& host_catalogue();

}  // namespace kz
