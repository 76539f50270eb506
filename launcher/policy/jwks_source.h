// Where an issuer's verification keys come from. A verifier asks for the current set, and
// once more (refresh_for_unknown_kid) when a token names a kid the set lacks: that is
// how a key rotation at the identity provider becomes visible without a restart.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "kz/result.h"
#include "policy/jwk.h"

namespace kz::jwt {

class JwksSource {
 public:
  virtual ~JwksSource() = default;
  // The current key set; nullptr when none could be obtained (the message says why).
  virtual std::shared_ptr<const JwkSet> keys(std::string& why_none) = 0;
  // A token named an unknown kid: re-fetch if the source can and has not just done so.
  // Returns the new set, or nullptr when nothing changed.
  virtual std::shared_ptr<const JwkSet> refresh_for_unknown_kid() { return nullptr; }
};

// Keys fixed at load time (a jwks_file, or keys handed over by the caller).
class StaticJwksSource final : public JwksSource {
 public:
  explicit StaticJwksSource(std::shared_ptr<const JwkSet> set) : set_(std::move(set)) {}
  std::shared_ptr<const JwkSet> keys(std::string&) override { return set_; }
 private:
  std::shared_ptr<const JwkSet> set_;
};

struct HttpsJwksOptions {
  std::string url;            // must be https://
  std::string ca_file;        // empty: the system trust store
  std::chrono::seconds cache_ttl{300};
  // Unknown-kid refreshes are at most this often, so a stream of tokens with random kids
  // cannot turn the PDP into a load generator against the identity provider.
  std::chrono::seconds min_refresh_interval{30};
  std::chrono::milliseconds timeout{5000};
  std::size_t max_body_bytes = 1 << 20;
};

// A JWKS fetched over HTTPS (libcurl via kz::http_send) and cached. A failed fetch keeps
// the previous set: an identity-provider outage does not revoke every identity at once.
class HttpsJwksSource final : public JwksSource {
 public:
  static Result<std::shared_ptr<HttpsJwksSource>> create(HttpsJwksOptions opts);
  std::shared_ptr<const JwkSet> keys(std::string& why_none) override;
  std::shared_ptr<const JwkSet> refresh_for_unknown_kid() override;

 private:
  explicit HttpsJwksSource(HttpsJwksOptions opts) : opts_(std::move(opts)) {}
  // Caller holds mu_.
  void fetch_locked();

  using Clock = std::chrono::steady_clock;
  HttpsJwksOptions opts_;
  std::mutex mu_;
  std::shared_ptr<const JwkSet> set_;
  Clock::time_point fetched_at_{};
  Clock::time_point attempted_at_{};
  bool attempted_ = false;
  std::string last_error_;
};

}  // namespace kz::jwt
