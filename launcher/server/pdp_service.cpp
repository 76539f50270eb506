#include "server/pdp_service.h"

#include <openssl/rand.h>

#include <chrono>
#include <ctime>

#include "kz/digest.h"
#include "policy/policy_engine.h"
#include "run/resolver.h"

namespace kz {

namespace {

HttpReply json_reply(int status, const nlohmann::json& j) {
  return {status, "application/json", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}
HttpReply error_reply(int status, const std::string& msg) { return json_reply(status, {{"error", msg}}); }

std::string new_decision_id() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  return hex_lower(std::string_view(reinterpret_cast<const char*>(b), sizeof b));
}

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

// The request body: {"secrets": [...], "request": {...}}. Errors name the field.
Result<std::pair<std::vector<policy::SecretInput>, policy::RequestInput>> parse_body(const std::string& body, std::size_t max) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(ErrorKind::Usage, "the body must be a JSON object");
  for (const auto& [k, v] : j.items())
    if (k != "secrets" && k != "request") return make_error(ErrorKind::Usage, "unknown field \"" + k + "\"");
  if (!j.contains("secrets") || !j["secrets"].is_array() || j["secrets"].empty())
    return make_error(ErrorKind::Usage, "secrets must be a non-empty array of {name, provider, ref}");
  if (j["secrets"].size() > max)
    return make_error(ErrorKind::Usage, "at most " + std::to_string(max) + " secrets per request");
  std::vector<policy::SecretInput> asked;
  for (std::size_t i = 0; i < j["secrets"].size(); ++i) {
    const auto& s = j["secrets"][i];
    const std::string field = "secrets[" + std::to_string(i) + "]";
    if (!s.is_object()) return make_error(ErrorKind::Usage, field + " must be an object");
    policy::SecretInput a;
    for (const auto& [k, v] : s.items()) {
      if (!v.is_string()) return make_error(ErrorKind::Usage, field + "." + k + " must be a string");
      if (k == "name") a.name = v.get<std::string>();
      else if (k == "provider") a.provider = v.get<std::string>();
      else if (k == "ref") a.ref = v.get<std::string>();
      else return make_error(ErrorKind::Usage, field + ": unknown field \"" + k + "\"");
    }
    if (a.ref.empty() || a.provider.empty())
      return make_error(ErrorKind::Usage, field + " needs provider and ref");
    asked.push_back(std::move(a));
  }
  policy::RequestInput req;
  req.time = static_cast<std::int64_t>(std::time(nullptr));
  if (j.contains("request")) {
    const auto& r = j["request"];
    if (!r.is_object()) return make_error(ErrorKind::Usage, "request must be an object");
    for (const auto& [k, v] : r.items()) {
      if (!v.is_string()) return make_error(ErrorKind::Usage, "request." + k + " must be a string");
      if (k == "host") req.host = v.get<std::string>();
      else if (k == "method") req.method = v.get<std::string>();
      else if (k == "path") req.path = v.get<std::string>();
      else return make_error(ErrorKind::Usage, "request: unknown field \"" + k + "\"");
    }
  }
  return std::make_pair(std::move(asked), std::move(req));
}

// One allowed secret from the bundle's providers.
Result<SecretValue> resolve_one(const PdpState& st, const policy::SecretInput& s) {
  Config cfg = st.providers;
  SecretSpec spec;
  spec.name = "KZ_PDP_SECRET";
  spec.provider = s.provider;
  spec.ref = s.ref;
  spec.pos = {st.bundle.path, 0, 0};
  cfg.secrets.push_back(std::move(spec));
  ResolveOptions ro;
  ro.only = {"KZ_PDP_SECRET"};
  auto r = resolve_secrets(cfg, ro);
  if (!r) return r.take_error();
  return std::move(r->front().value);
}

}  // namespace

PdpService::PdpService(PdpServiceOptions opts, std::shared_ptr<const PdpState> initial)
    : opts_(opts), state_(std::move(initial)) {}

void PdpService::set_state(std::shared_ptr<const PdpState> s) {
  std::lock_guard lock(mu_);
  state_ = std::move(s);
  verified_.clear();
}

std::shared_ptr<const PdpService::Identity> PdpService::cached_claims(const std::string& token, std::int64_t now) {
  std::lock_guard lock(mu_);
  auto it = verified_.find(token);
  if (it == verified_.end()) return nullptr;
  if (it->second.until <= now) {
    verified_.erase(it);
    return nullptr;
  }
  return it->second.claims;
}

void PdpService::cache_claims(const std::string& token, std::shared_ptr<const Identity> claims,
                              std::int64_t until) {
  constexpr std::size_t kMaxEntries = 10000;
  std::lock_guard lock(mu_);
  if (verified_.size() >= kMaxEntries) verified_.clear();   // crude, bounded, and rare
  verified_[token] = {std::move(claims), until};
}

std::shared_ptr<const PdpState> PdpService::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

HttpReply PdpService::handle(const HttpRequestView& req) {
  const std::string path = path_of(req.target);
  if (path == "/healthz") {
    if (req.method != "GET") return error_reply(405, "use GET");
    return json_reply(200, {{"status", "ok"}, {"revision", state()->bundle.revision}});
  }
  if (path == "/metrics") {
    if (req.method != "GET") return error_reply(405, "use GET");
    return {200, "text/plain; version=0.0.4", opts_.metrics->render(state()->bundle.revision)};
  }
  if (path == "/v1/decide" || path == "/v1/resolve") {
    if (req.method != "POST") return error_reply(405, "use POST with a JSON body");
    const auto t0 = std::chrono::steady_clock::now();
    const bool resolve = path == "/v1/resolve";
    HttpReply r = api(req, resolve);
    opts_.metrics->request(resolve ? "resolve" : "decide", std::chrono::steady_clock::now() - t0);
    return r;
  }
  return error_reply(404, "not found: the API is POST /v1/decide, POST /v1/resolve, GET /healthz, GET /metrics");
}

HttpReply PdpService::api(const HttpRequestView& req, bool resolve) {
  const auto st = state();
  const std::string endpoint = resolve ? "resolve" : "decide";
  // Identity first: nothing about the request is looked at before the caller is known.
  auto refuse_identity = [&](const std::string& why) {
    opts_.metrics->auth_failure();
    opts_.log->submit({{"event", "pdp.auth"}, {"decision", "deny"}, {"endpoint", endpoint},
                       {"source", req.source}, {"revision", st->bundle.revision}, {"reason", why}});
    return error_reply(401, "identity: " + why);
  };
  constexpr std::string_view kBearer = "Bearer ";
  if (req.authorization.compare(0, kBearer.size(), kBearer) != 0)
    return refuse_identity("an Authorization: Bearer <JWT> header is required");
  if (!st->verifier) return refuse_identity("this bundle configures no identity issuers");
  const std::string token = req.authorization.substr(kBearer.size());
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::shared_ptr<const Identity> verified = cached_claims(token, now);
  if (!verified) {
    auto jwt = st->verifier->verify(token, now);
    if (!jwt) return refuse_identity(std::string(jwt::to_string(jwt.reason())) + ": " + jwt.error().message);
    std::int64_t until = now + 60;
    if (jwt->claims.contains("exp") && jwt->claims["exp"].is_number_integer())
      until = std::min(until, jwt->claims["exp"].get<std::int64_t>());
    auto id = std::make_shared<Identity>();
    id->claims = std::move(jwt->claims);
    id->value = cel::from_json(id->claims);
    verified = std::move(id);
    // Only when the bundle that verified it is still the one served.
    if (state() == st) cache_claims(token, verified, until);
  }
  const nlohmann::json& claims = verified->claims;

  auto body = parse_body(req.body, opts_.max_secrets);
  if (!body) return error_reply(400, body.error().message);
  auto& [asked, request] = *body;
  request.source = req.source;

  const std::string id = new_decision_id();
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json logged = nlohmann::json::array();
  nlohmann::json inputs = nlohmann::json::array();
  bool all = true;
  for (const auto& a : asked) {
    const auto d = policy::decide(st->bundle, verified->value, a, request);
    opts_.metrics->decision(d.allow);
    all = all && d.allow;
    nlohmann::json r = policy::decision_json(d);
    r["name"] = a.name;
    r["provider"] = a.provider;
    r["ref"] = a.ref;
    inputs.push_back({{"name", a.name}, {"provider", a.provider}, {"ref", a.ref}});
    logged.push_back(r);
    if (resolve && d.allow) {
      auto v = resolve_one(*st, a);
      if (v) {
        r["value"] = std::string(v->view());
      } else {
        opts_.metrics->provider_error();
        r["error"] = v.error().message;
        logged.back()["error"] = v.error().message;
      }
    }
    results.push_back(std::move(r));
  }
  nlohmann::json input = {{"identity", claims}, {"secrets", inputs}};
  nlohmann::json reqj = {{"time", request.time}, {"source", request.source}};
  if (!request.host.empty()) reqj["host"] = request.host;
  if (!request.method.empty()) reqj["method"] = request.method;
  if (!request.path.empty()) reqj["path"] = request.path;
  input["request"] = reqj;
  opts_.log->submit({{"event", "decision"}, {"decision", all ? "allow" : "deny"}, {"decision_id", id},
                     {"endpoint", endpoint}, {"revision", st->bundle.revision}, {"source", req.source},
                     {"sub", claims.contains("sub") && claims["sub"].is_string() ? claims["sub"].get<std::string>() : ""}, {"input", input}, {"result", logged}});
  return json_reply(200, {{"decision_id", id}, {"revision", st->bundle.revision}, {"results", results}});
}

}  // namespace kz
