#include "commands/load.h"

#include <filesystem>

#include "core/log.h"

namespace kz {

Result<Config> load_config_for(const GlobalOptions& g) {
  std::string path = g.config;
  if (path.empty()) {
    auto found = find_config_file(std::filesystem::current_path().string());
    if (!found)
      return make_error(ErrorKind::Config, std::string("no ") + kConfigFileName +
                                               " in this directory or any parent (use --config FILE)");
    path = *found;
  }
  auto cfg = load_config_file(path);
  if (cfg) spdlog::debug("config: {}", cfg->path);
  return cfg;
}

}  // namespace kz
