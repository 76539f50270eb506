#include "server/pdp_service.h"

#include <openssl/rand.h>

#include <chrono>
#include <ctime>

#include "core/json_dump.h"
#include "kz/digest.h"
#include "policy/policy_engine.h"
#include "resolve/resolver.h"
#include "server/pdp_approval.h"

namespace kz {

namespace {

HttpReply json_reply(int status, const nlohmann::json& j) {
  return {status, "application/json", dump_json(j), {}};
}
HttpReply error_reply(int status, const std::string& msg) { return json_reply(status, {{"error", msg}}); }

std::string new_decision_id() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  return hex_lower(std::string_view(reinterpret_cast<const char*>(b), sizeof b));
}

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

// The request body: {"secrets": [...], "request": {...}, "wait": bool}. Errors name the field.
Result<std::pair<std::vector<policy::SecretInput>, policy::RequestInput>> parse_body(const std::string& body, std::size_t max,
                                                                                    bool* wait) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(ErrorKind::Usage, "the body must be a JSON object");
  for (const auto& [k, v] : j.items())
    if (k != "secrets" && k != "request" && k != "wait") return make_error(ErrorKind::Usage, "unknown field \"" + k + "\"");
  // wait: false: a decision that needs a person's approval answers "pending" at once
  // instead of asking (a dry run); default true: the PDP asks and waits.
  if (j.contains("wait")) {
    if (!j["wait"].is_boolean()) return make_error(ErrorKind::Usage, "wait must be true or false");
    *wait = j["wait"].get<bool>();
  }
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

}  // namespace

PdpService::PdpService(PdpServiceOptions opts, std::shared_ptr<const PdpState> initial)
    : opts_(opts), state_(std::move(initial)) {}

void PdpService::set_state(std::shared_ptr<const PdpState> s) {
  std::lock_guard lock(mu_);
  state_ = std::move(s);
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
    return {200, "text/plain; version=0.0.4", opts_.metrics->render(state()->bundle.revision), {}};
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
    opts_.log->record(PdpAuthRefusal{endpoint, req.source, st->bundle.revision, why});
    return error_reply(401, "identity: " + why);
  };
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  auto who = identities_.verify(st, req.authorization, now);
  if (!who) return refuse_identity(who.error().message);
  const std::shared_ptr<const VerifiedIdentity> verified = std::move(*who);
  const nlohmann::json& claims = verified->claims;

  bool wait = true;
  auto body = parse_body(req.body, opts_.max_secrets, &wait);
  if (!body) return error_reply(400, body.error().message);
  auto& [asked, request] = *body;
  request.source = req.source;

  const std::string id = new_decision_id();
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json logged = nlohmann::json::array();   // /v1/resolve: results without values
  // The decision record's input, written as text (keys in nlohmann's order: the same
  // bytes a json tree would dump to): {"identity": claims, "request": {...}, "secrets": [...]}.
  std::string input;
  input.reserve(verified->claims_json.size() + 128 + asked.size() * 96);
  input += "{\"identity\":";
  input += verified->claims_json;
  input += ",\"request\":{";
  auto member = [&input](std::string_view k, std::string_view v) {
    dump_json_string(k, input);
    input += ':';
    dump_json_string(v, input);
    input += ',';
  };
  if (!request.host.empty()) member("host", request.host);
  if (!request.method.empty()) member("method", request.method);
  if (!request.path.empty()) member("path", request.path);
  member("source", request.source);
  input += "\"time\":";
  input += std::to_string(request.time);
  input += "},\"secrets\":[";
  bool all = true;
  for (std::size_t i = 0; i < asked.size(); ++i) {
    const auto& a = asked[i];
    auto d = policy::decide(st->bundle, verified->value, a, request);
    nlohmann::json approval;
    if (d.approve) {
      // effect: approve: allowed only if a person says yes to this very request.
      if (!wait) {
        approval = {{"status", "pending"}};
      } else {
        PdpApprovalFacts f{verified->sub, a.name, a.provider, a.ref, request.host, request.method,
                           request.path, request.source, id, "", "", ""};
        f.iss = issuer_of(claims);
        const PdpApprovalResult ar = ask_pdp_approval(st->bundle.approvals, f, *opts_.log);
        d.allow = ar.approved();
        d.reason = std::string(d.allow ? "approved" : "not approved") + " (" + verdict_name(ar.verdict) + ", " + ar.by +
                   ") under " + d.rule_id;
        approval = {{"status", verdict_name(ar.verdict)}, {"by", ar.by}, {"request_hash", ar.request_hash}};
      }
    }
    opts_.metrics->decision(d.allow);
    all = all && d.allow;
    nlohmann::json r = policy::decision_json(d);
    if (!approval.is_null()) r["approval"] = std::move(approval);
    r["name"] = a.name;
    r["provider"] = a.provider;
    r["ref"] = a.ref;
    input += i == 0 ? "{\"name\":" : ",{\"name\":";
    dump_json_string(a.name, input);
    input += ",\"provider\":";
    dump_json_string(a.provider, input);
    input += ",\"ref\":";
    dump_json_string(a.ref, input);
    input += '}';
    if (resolve) logged.push_back(r);
    if (resolve && d.allow) {
      auto v = resolve_with_providers(st->providers, a.provider, a.ref);
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
  input += "]}";
  // The reply, {"decision_id", "results", "revision"}, written around the results' text,
  // which for /v1/decide (no values) is also the record's result.
  std::string result = dump_json(results);
  HttpReply out{200, "application/json", {}, {}};
  out.body.reserve(result.size() + id.size() + st->bundle.revision.size() + 48);
  out.body += "{\"decision_id\":";
  dump_json_string(id, out.body);
  out.body += ",\"results\":";
  out.body += result;
  out.body += ",\"revision\":";
  dump_json_string(st->bundle.revision, out.body);
  out.body += '}';
  PdpDecision record{all ? "allow" : "deny", id, endpoint, st->bundle.revision, req.source, verified->sub, {}, {}};
  record.input_json = std::move(input);
  record.result_json = resolve ? dump_json(logged) : std::move(result);
  opts_.log->record(std::move(record));
  return out;
}

}  // namespace kz
