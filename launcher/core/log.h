// kz's own diagnostics on stderr, prefixed "kz:". Only names, refs, providers, lengths
// and positions are ever logged: SecretValue has no formatter, so a value cannot be
// passed here by accident.
#pragma once

#include <spdlog/spdlog.h>

namespace kz {

// -q: errors only; default: warnings; -v: info; -vv: debug.
void init_logging(int verbosity, bool quiet);

}  // namespace kz
