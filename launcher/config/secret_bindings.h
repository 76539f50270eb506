// Where each secret of a .keyzero.toml (or a bundle's secrets:) may be sent, in blind
// mode and by MCP's fetch alike: its own hosts, methods and paths, else the built-in
// host catalogue's hosts.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "kz/result.h"
#include "secrets/binding.h"

namespace kz {

// The binding of one secret: its `hosts` (else the built-in catalogue's; with neither,
// any host when `allow_any_host`, else none), `methods` and `paths`.
Binding binding_of(const SecretSpec& s, bool allow_any_host);

// The binding of each selected secret: its `hosts` (else the built-in catalogue's,
// else any host with `allow_any_host`), `methods` and `paths`. Fails naming every
// secret (file:line) that has no hosts when allow_any_host is false.
Result<std::vector<std::pair<std::string, Binding>>> blind_bindings(
    const Config& cfg, const std::vector<std::string>& names, bool allow_any_host);

}  // namespace kz
