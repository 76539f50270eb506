#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace kz {

void init_logging(int verbosity, bool quiet) {
  auto logger = spdlog::stderr_logger_st("kz");
  logger->set_pattern("kz: %^%l%$: %v");
  spdlog::level::level_enum lvl = spdlog::level::warn;
  if (quiet) lvl = spdlog::level::err;
  else if (verbosity == 1) lvl = spdlog::level::info;
  else if (verbosity >= 2) lvl = spdlog::level::debug;
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace kz
