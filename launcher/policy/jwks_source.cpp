#include "policy/jwks_source.h"

#include "kz/providers/http_client.h"

namespace kz::jwt {

Result<std::shared_ptr<HttpsJwksSource>> HttpsJwksSource::create(HttpsJwksOptions opts) {
  // Keys fetched over plain HTTP could be swapped by anyone on the path.
  if (opts.url.rfind("https://", 0) != 0)
    return make_error(ErrorKind::Config, "jwks_url must be an https:// URL");
  return std::shared_ptr<HttpsJwksSource>(new HttpsJwksSource(std::move(opts)));
}

void HttpsJwksSource::fetch_locked() {
  attempted_ = true;
  attempted_at_ = Clock::now();
  HttpRequest req;
  req.url = opts_.url;
  req.ca_file = opts_.ca_file;
  req.deadline = Deadline::clock::now() + opts_.timeout;
  auto resp = http_send(std::move(req), "JWKS fetch");
  if (!resp) {
    last_error_ = resp.error().message;
    return;
  }
  if (resp->status != 200) {
    last_error_ = "JWKS fetch: HTTP status " + std::to_string(resp->status);
    return;
  }
  if (resp->body.str().size() > opts_.max_body_bytes) {
    last_error_ = "JWKS fetch: response larger than the limit";
    return;
  }
  auto set = jwks_from_text(resp->body.str());
  if (!set) {
    last_error_ = "JWKS fetch: " + set.error().message;
    return;
  }
  set_ = std::make_shared<const JwkSet>(std::move(*set));
  fetched_at_ = attempted_at_;
  last_error_.clear();
}

std::shared_ptr<const JwkSet> HttpsJwksSource::keys(std::string& why_none) {
  std::lock_guard lk(mu_);
  const auto now = Clock::now();
  const bool stale = !set_ || now - fetched_at_ >= opts_.cache_ttl;
  // After a failed attempt, wait before the next one: min_refresh_interval while a
  // (stale) set is still there to use, one second when there is none yet.
  const auto retry = set_ ? std::chrono::duration_cast<Clock::duration>(opts_.min_refresh_interval)
                          : std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(1));
  if (stale && (!attempted_ || now - attempted_at_ >= retry)) fetch_locked();
  if (!set_) why_none = last_error_.empty() ? "JWKS not fetched yet" : last_error_;
  return set_;
}

std::shared_ptr<const JwkSet> HttpsJwksSource::refresh_for_unknown_kid() {
  std::lock_guard lk(mu_);
  if (attempted_ && Clock::now() - attempted_at_ < opts_.min_refresh_interval) return nullptr;
  auto before = set_;
  fetch_locked();
  return set_ != before ? set_ : nullptr;
}

}  // namespace kz::jwt
