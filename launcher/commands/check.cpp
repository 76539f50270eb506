// kz check: validate the configuration; with --resolve, resolve every secret and print
// name, provider and length (never the value).
#include <cstdio>

#include "commands/commands.h"
#include "commands/load.h"
#include "core/hardening.h"
#include "core/log.h"
#include "resolve/resolver.h"

namespace kz {

int cmd_check(const GlobalOptions& g, const CheckOptions& o) {
  harden_process();
  auto cfg = load_config_for(g);
  if (!cfg) { spdlog::error("{}", cfg.error().message); return kExitConfig; }
  std::printf("%s: %zu secret(s)\n", cfg->path.c_str(), cfg->secrets.size());
  std::fflush(stdout);   // keep the order when errors follow on stderr
  if (!o.resolve) {
    for (const auto& s : cfg->secrets) {
      std::string hosts;
      for (const auto& h : s.hosts) hosts += (hosts.empty() ? "" : ",") + h;
      // A minted credential: provider and ref are its client secret's; it is minted at token_url.
      const std::string minted = s.oauth ? "  minted at " + s.oauth->token_url + " (provider, ref: its client_secret)" : "";
      std::printf("  %-24s %-10s %s%s%s\n", s.name.c_str(), s.provider.c_str(), s.ref.c_str(),
                  hosts.empty() ? "" : ("  hosts=" + hosts).c_str(), minted.empty() ? "" : minted.c_str());
    }
    std::printf("configuration OK\n");
    return kExitOk;
  }
  auto r = resolve_secrets(*cfg, {});
  if (!r) { spdlog::error("{}", r.error().message); return kExitConfig; }
  for (const auto& s : *r)
    std::printf("  %-24s %-10s ok (%zu bytes)\n", s.name.c_str(), s.provider.c_str(), s.value.size());
  std::printf("all %zu secret(s) resolved\n", r->size());
  return kExitOk;
}

}  // namespace kz
