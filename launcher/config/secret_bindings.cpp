#include "config/secret_bindings.h"

#include "secrets/host_catalogue.h"

namespace kz {

Binding binding_of(const SecretSpec& s, bool allow_any_host) {
  Binding b;
  b.hosts = s.hosts.empty() ? catalogue_hosts(s.name) : s.hosts;
  b.methods = s.methods;
  b.paths = s.paths;
  b.allow_any = b.hosts.empty() && allow_any_host;
  b.sign = s.sign;
  b.access_key_id = s.access_key_id;
  b.services = s.services;
  b.regions = s.regions;
  b.session_token = s.session_token;
  b.mint_hosts = s.mint_hosts;
  b.approve = s.approve;
  return b;
}

Result<std::vector<std::pair<std::string, Binding>>> blind_bindings(
    const Config& cfg, const std::vector<std::string>& names, bool allow_any_host) {
  std::vector<std::pair<std::string, Binding>> out;
  std::string missing;
  for (const auto& name : names) {
    const SecretSpec* s = cfg.find_secret(name);
    if (s == nullptr) continue;
    Binding b = binding_of(*s, allow_any_host);
    if (b.hosts.empty() && !b.allow_any) missing += "\n  " + format_pos(s->pos) + ": " + s->name + " has no hosts = [...]";
    out.emplace_back(name, std::move(b));
  }
  if (!missing.empty())
    return make_error(ErrorKind::Config,
                      "blind mode sends a secret only to the hosts it is bound to, and these have none:" +
                          missing +
                          "\nadd hosts = [\"api.example.com\"] to each, or run with --allow-any-host "
                          "(any host whose certificate verifies)");
  return out;
}

}  // namespace kz
