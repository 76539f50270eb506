// Minted credentials (kind = "oauth2-client-credentials", config.h OAuthClientSpec): the
// OAuth 2.0 client credentials grant (RFC 6749 section 4.4). kz POSTs
// grant_type=client_credentials (application/x-www-form-urlencoded) to the token URL,
// authenticating the client with HTTP Basic (client_secret_basic, the default) or with
// client_id and client_secret in the body (client_secret_post), over the providers' HTTP
// client (providers/http_client.h: libcurl, TLS verified). The access token becomes the
// secret's value; expires_in says when to renew it (secrets/live_value.h).
//
// Errors name the token URL and the endpoint's `error` / `error_description` (RFC 6749
// section 5.2), never the client secret nor a token.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include "config/config.h"
#include "kz/result.h"
#include "kz/secret.h"
#include "secrets/live_value.h"

namespace kz {

// One request to the token endpoint, by `deadline`.
// `cancel`, when set, abandons the request soon after it becomes true.
Result<FreshValue> mint_access_token(const OAuthClientSpec& spec, std::string_view client_secret, Deadline deadline,
                                     const std::atomic<bool>* cancel = nullptr);

// The source a minted credential renews from: the spec and the client secret (kept in
// locked memory for the run), each fetch bounded by `timeout`.
class OAuthMinter final : public ValueSource {
 public:
  OAuthMinter(OAuthClientSpec spec, SecretValue client_secret, std::chrono::milliseconds timeout)
      : spec_(std::move(spec)), client_secret_(std::move(client_secret)), timeout_(timeout) {}
  Result<FreshValue> fetch() override;
  void cancel() override { cancelled_ = true; }

 private:
  std::atomic<bool> cancelled_{false};
  OAuthClientSpec spec_;
  SecretValue client_secret_;
  std::chrono::milliseconds timeout_;
};

}  // namespace kz
