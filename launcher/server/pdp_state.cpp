#include "server/pdp_state.h"

#include <cstdlib>
#include <cstring>

#include "resolve/resolver.h"

namespace kz {

Result<std::shared_ptr<const PdpState>> load_pdp_state(const std::string& bundle_path) {
  auto b = policy::load_bundle(bundle_path);
  if (!b) return b.take_error();
  auto st = std::make_shared<PdpState>();
  std::vector<jwt::IssuerConfig> issuers;
  for (const auto& is : b->issuers) {
    jwt::IssuerConfig c;
    c.issuer = is.issuer;
    c.audience = is.audience;
    c.jwks_file = is.jwks_file;
    c.jwks_https.url = is.jwks_url;
    c.leeway = is.leeway;
    if (!is.hs256_key_env.empty()) {
      const char* key = std::getenv(is.hs256_key_env.c_str());
      if (key == nullptr || *key == '\0')
        return make_error(ErrorKind::Config, format_pos(is.pos) + ": identity issuer " + is.issuer +
                                                 ": hs256_key_env names " + is.hs256_key_env + ", which is not set");
      c.hs256_key = ScrubbedString(std::string(key, std::strlen(key)));
    }
    issuers.push_back(std::move(c));
  }
  if (!issuers.empty()) {
    auto v = jwt::JwtVerifier::create(std::move(issuers));
    if (!v) return make_error(ErrorKind::Config, b->path + ": identity: " + v.error().message);
    st->verifier.emplace(std::move(*v));
  }
  st->providers.path = b->path;
  st->providers.dir = b->dir;
  st->providers.providers = b->providers;
  st->bundle = std::move(*b);
  return std::shared_ptr<const PdpState>(std::move(st));
}

Result<SecretValue> resolve_with_providers(const Config& providers, const std::string& provider, const std::string& ref) {
  Config cfg = providers;
  cfg.secrets.clear();
  SecretSpec spec;
  spec.name = "KZ_RESOLVED_SECRET";
  spec.provider = provider;
  spec.ref = ref;
  spec.pos = {providers.path, 0, 0};
  cfg.secrets.push_back(std::move(spec));
  ResolveOptions ro;
  ro.only = {"KZ_RESOLVED_SECRET"};
  auto r = resolve_secrets(cfg, ro);
  if (!r) return r.take_error();
  return std::move(r->front().value);
}

}  // namespace kz
