#include "resolve/pdp_client.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kz/providers/http_client.h"
#include "kz/wipe.h"

namespace kz {

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

constexpr auto kTimeout = std::chrono::seconds(30);

}  // namespace

Result<std::string> identity_token(const Config& cfg, const std::string& flag_file) {
  if (const char* t = std::getenv(kEnvIdentityToken); t != nullptr && *t != '\0') return trim(t);
  const std::string file = !flag_file.empty() ? flag_file : cfg.server.identity_token_file;
  if (file.empty())
    return make_error(ErrorKind::Config, "[server] url is set, so kz needs an identity token for the PDP: set " +
                                             std::string(kEnvIdentityToken) +
                                             ", pass --identity-token-file FILE, or set [server] identity_token_file");
  std::ifstream f(file, std::ios::binary);
  if (!f) return make_error(ErrorKind::Config, "cannot read the identity token file " + file);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string tok = ss.str();
  std::string out = trim(tok);
  wipe(tok);
  if (out.empty()) return make_error(ErrorKind::Config, "the identity token file " + file + " is empty");
  return out;
}

Result<std::vector<ResolvedSecret>> resolve_via_pdp(const Config& cfg, const PdpResolveOptions& opts) {
  nlohmann::json secrets = nlohmann::json::array();
  std::vector<const SecretSpec*> specs;
  for (const auto& name : opts.only) {
    const SecretSpec* s = cfg.find_secret(name);
    if (s == nullptr) continue;
    specs.push_back(s);
    secrets.push_back({{"name", s->name}, {"provider", s->provider}, {"ref", s->ref}});
  }
  HttpRequest req;
  req.method = "POST";
  std::string base = cfg.server.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  req.url = base + "/v1/resolve";
  req.headers = {{"Authorization", "Bearer " + opts.token}, {"Content-Type", "application/json"}};
  req.body = nlohmann::json({{"secrets", secrets}}).dump();
  req.ca_file = cfg.server.ca_file;
  req.deadline = Clock::now() + kTimeout;
  auto resp = http_send(std::move(req), "PDP " + base);
  if (!resp) return make_error(resp.error().kind, resp.error().message);
  const std::string& body = resp->body.str();
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (resp->status != 200) {
    std::string why = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>()
                                                                                      : "HTTP " + std::to_string(resp->status);
    return make_error(resp->status == 401 ? ErrorKind::Denied : ErrorKind::Network,
                      "the PDP at " + base + " refused the request: " + why);
  }
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array() || j["results"].size() != specs.size())
    return make_error(ErrorKind::Network, "the PDP at " + base + " sent an answer kz does not understand");
  const std::string decision_id = j.value("decision_id", "");
  std::vector<ResolvedSecret> out;
  std::string problems;
  bool denied = false;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& r = j["results"][i];
    const SecretSpec& s = *specs[i];
    const bool allow = r.value("allow", false);
    std::string why;
    if (!allow) {
      denied = true;
      why = r.value("reason", std::string("denied"));
    } else if (!r.contains("value") || !r["value"].is_string()) {
      why = "allowed, but the PDP could not resolve it: " + r.value("error", std::string("no value"));
    }
    if (!why.empty()) {
      problems += "\n  " + format_pos(s.pos) + ": " + s.name + " (" + s.provider + "): " + why;
      const Error e = make_error(allow ? ErrorKind::Network : ErrorKind::Denied, why);
      if (opts.on_result) opts.on_result(s, &e, decision_id);
      continue;
    }
    out.push_back({s.name, s.provider, SecretValue::from(r["value"].get_ref<const std::string&>())});
    if (opts.on_result) opts.on_result(s, nullptr, decision_id);
  }
  // The parsed answer held the values: scrub its strings before they are freed.
  for (auto& r : j["results"])
    if (r.contains("value") && r["value"].is_string()) wipe(r["value"].get_ref<std::string&>());
  if (!problems.empty())
    return make_error(denied ? ErrorKind::Denied : ErrorKind::Network,
                      "the PDP at " + base + " did not give every secret:" + problems);
  return out;
}

}  // namespace kz
