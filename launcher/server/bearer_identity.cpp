#include "server/bearer_identity.h"

#include "core/json_dump.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>

namespace kz {

std::shared_ptr<const VerifiedIdentity> make_identity(nlohmann::json claims) {
  auto id = std::make_shared<VerifiedIdentity>();
  auto str = [&](const char* k) {
    return claims.contains(k) && claims[k].is_string() ? claims[k].get<std::string>() : std::string();
  };
  id->sub = str("sub");
  id->key = str("iss") + " " + id->sub;
  id->value = cel::from_json(claims);
  id->claims_json = dump_json(claims);
  id->claims = std::move(claims);
  return id;
}

Result<std::shared_ptr<const VerifiedIdentity>> BearerIdentities::verify(const std::shared_ptr<const PdpState>& st,
                                                                         std::string_view authorization,
                                                                         std::int64_t now) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer)
    return make_error(ErrorKind::Denied, "an Authorization: Bearer <JWT> header is required");
  if (!st->verifier) return make_error(ErrorKind::Denied, "this bundle configures no identity issuers");
  const std::string_view token = authorization.substr(kBearer.size());
  Key key;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), key.data());
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (it->second.until > now && it->second.state.lock() == st) {
        hits_.fetch_add(1, std::memory_order_relaxed);
        return it->second.id;
      }
      cache_.erase(it);
    }
  }
  verifications_.fetch_add(1, std::memory_order_relaxed);
  auto jwt = st->verifier->verify(token, now);
  if (!jwt) return make_error(ErrorKind::Denied, std::string(jwt::to_string(jwt.error().reason)) + ": " + jwt.error().message);
  // Until the token expires (whatever leeway the verifier allows), a minute at most. exp
  // may be any JSON number (the verifier accepts 1800000000.5 as well as 1800000000): a
  // fractional one ends the entry at the whole second before it.
  std::int64_t until = now + kTtlSeconds;
  if (auto e = jwt->claims.find("exp"); e != jwt->claims.end() && e->is_number()) {
    const double exp = e->get<double>();
    if (exp < static_cast<double>(until))
      until = exp <= static_cast<double>(now) ? now : static_cast<std::int64_t>(std::floor(exp));
  }
  auto id = make_identity(std::move(jwt->claims));
  constexpr std::size_t kMaxEntries = 10000;
  std::lock_guard lock(mu_);
  if (cache_.size() >= kMaxEntries) cache_.clear();   // crude, bounded, and rare
  cache_[key] = {id, st, until};
  return id;
}

}  // namespace kz
