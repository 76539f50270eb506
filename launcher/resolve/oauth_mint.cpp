#include "resolve/oauth_mint.h"

#include <openssl/evp.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "kz/providers/http_client.h"
#include "kz/providers/json_util.h"
#include "kz/uri_encode.h"
#include "kz/wipe.h"

namespace kz {

namespace {

using nlohmann::json;

// application/x-www-form-urlencoded (RFC 6749 appendix B): unreserved characters kept,
// the rest as %XX (a space too: both spellings decode the same).
std::string form_encode(std::string_view s) { return uri_encode(s, false); }

// Base64 of `in`; the caller wipes it (the Basic credential holds the client secret).
std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// The URL without its query, for messages.
std::string endpoint(const OAuthClientSpec& spec) {
  return "token endpoint " + spec.token_url.substr(0, spec.token_url.find('?'));
}

// A string field of the endpoint's JSON answer, for a message: sanitized, the client
// secret redacted.
std::string said(const json& j, const char* key, std::string_view client_secret) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  std::string s = it->get<std::string>();
  redact(s, client_secret);
  return sanitize_message(s);
}

// A non-2xx answer: its status and RFC 6749 5.2 `error` / `error_description`.
Error refused(const OAuthClientSpec& spec, const HttpResponse& r, std::string_view client_secret) {
  std::string msg = endpoint(spec) + " answered HTTP " + std::to_string(r.status);
  json j = json::parse(r.body.str(), nullptr, false);
  if (j.is_object()) {
    const std::string error = said(j, "error", client_secret);
    const std::string desc = said(j, "error_description", client_secret);
    if (!error.empty()) msg += ": " + error;
    if (!desc.empty()) msg += " (" + desc + ")";
    if (error == "invalid_client")
      msg += "; check client_id and the client secret" + std::string(spec.client_auth_post ? "" : ", or try client_auth = \"post\"");
    wipe_json(j);
  }
  return make_error(r.status == 401 || r.status == 403 ? ErrorKind::Denied : ErrorKind::Network, msg);
}

}  // namespace

Result<FreshValue> mint_access_token(const OAuthClientSpec& spec, std::string_view client_secret, Deadline deadline,
                                     const std::atomic<bool>* cancel) {
  HttpRequest req;
  req.cancel = cancel;
  req.method = "POST";
  req.url = spec.token_url;
  // ca_file's bytes as read once at the start (those whose hash kz trust pinned): a file
  // replaced during the run changes no later mint.
  if (!spec.ca_pem.empty()) req.ca_pem = spec.ca_pem;
  else req.ca_file = spec.ca_file;
  req.deadline = deadline;
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.headers.emplace_back("Accept", "application/json");
  req.body = "grant_type=client_credentials";
  if (!spec.scopes.empty()) {
    std::string scope;
    for (const auto& s : spec.scopes) scope += (scope.empty() ? "" : " ") + s;
    req.body += "&scope=" + form_encode(scope);
  }
  if (!spec.audience.empty()) req.body += "&audience=" + form_encode(spec.audience);
  if (spec.client_auth_post) {
    req.body += "&client_id=" + form_encode(spec.client_id);
    std::string enc = form_encode(client_secret);
    req.body += "&client_secret=" + enc;
    wipe(enc);
  } else {
    // RFC 6749 2.3.1: the id and the secret are form-encoded before they are joined.
    std::string pair = form_encode(spec.client_id) + ":" + form_encode(client_secret);
    std::string b64 = base64(pair);
    req.headers.emplace_back("Authorization", "Basic " + b64);
    wipe(pair);
    wipe(b64);
  }
  auto sent = http_send(std::move(req), endpoint(spec));   // wipes the body and the headers
  if (!sent) return sent.take_error();
  HttpResponse& r = *sent;
  if (r.status < 200 || r.status > 299) return refused(spec, r, client_secret);
  json j = json::parse(r.body.str(), nullptr, false);
  ScrubbedJson scrub(std::move(j));
  json& body = scrub.get();
  if (!body.is_object()) return make_error(ErrorKind::Network, endpoint(spec) + ": the answer is not a JSON object");
  const auto at = body.find("access_token");
  if (at == body.end() || !at->is_string() || at->get_ref<const std::string&>().empty())
    return make_error(ErrorKind::Network, endpoint(spec) + ": the answer has no access_token");
  const std::string& token = at->get_ref<const std::string&>();
  for (const char c : token)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return make_error(ErrorKind::Network, endpoint(spec) + ": the access_token holds control characters");
  FreshValue out;
  out.value = SecretValue::from(token);
  if (const auto e = body.find("expires_in"); e != body.end()) {
    // A number, or (some servers) a string of digits.
    if (e->is_number_integer() || e->is_number_unsigned()) out.expires_in = e->get<std::int64_t>();
    else if (e->is_number_float()) out.expires_in = static_cast<std::int64_t>(e->get<double>());
    else if (e->is_string()) out.expires_in = std::strtoll(e->get_ref<const std::string&>().c_str(), nullptr, 10);
    if (out.expires_in < 0) out.expires_in = 0;
  }
  return out;
}

Result<FreshValue> OAuthMinter::fetch() {
  if (cancelled_) return make_error(ErrorKind::Timeout, "cancelled: the run is ending");
  return mint_access_token(spec_, client_secret_.view(), Clock::now() + timeout_, &cancelled_);
}

}  // namespace kz
