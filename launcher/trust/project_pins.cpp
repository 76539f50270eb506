#include "trust/project_pins.h"

#include "secrets/approval.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "config/secret_bindings.h"
#include "kz/digest.h"

namespace kz {

namespace {

std::vector<std::string> sorted_unique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// An exec ref is a command line and may carry anything: only its hash is kept.
// A key kz signs with (sign = "sigv4") carries its signing scope in its source, so that
// any change to it (another key id, wider services or regions, another session token)
// shows as a change of source, which kz trust treats as widening.
std::string signing_of(const SecretSpec& s) {
  if (s.sign.empty()) return "";
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out.empty() ? std::string("any") : out;
  };
  const std::string id = s.access_key_id.empty() ? "the credential set's key id" : s.access_key_id;
  return " (sign " + s.sign + " as " + id + (s.format.empty() ? "" : ", format " + s.format) + ", services " + list(s.services) + ", regions " +
         list(s.regions) + (s.session_token.empty() ? "" : ", session token " + s.session_token) + ")";
}

// A minted credential (kind = "oauth2-client-credentials") sends its client secret to
// token_url, trusting ca_file's anchors; a client secret with mint_hosts sends the tokens
// sealed from its responses there. Both are in its source, so that any change (another
// token URL, CA file or contents, more mint_hosts, other scopes, audience, client_auth or
// refresh_skew) shows as a change of source: widening.
std::string minting_of(const SecretSpec& s) {
  std::string out;
  if (s.oauth) {
    const OAuthClientSpec& o = *s.oauth;
    std::vector<std::string> scopes = o.scopes;
    std::sort(scopes.begin(), scopes.end());
    std::string sl;
    for (const auto& x : scopes) sl += (sl.empty() ? "" : ",") + x;
    out += " (oauth2 client " + o.client_id + " at " + o.token_url +
           (o.ca_file.empty() ? "" : ", ca_file " + o.ca_file + " sha256:" + file_sha256(o.ca_file)) +
           ", scopes " + (sl.empty() ? "none" : sl) + ", audience " + (o.audience.empty() ? "none" : o.audience) +
           ", client_auth " + (o.client_auth_post ? "post" : "basic") + ", refresh_skew " +
           std::to_string(o.refresh_skew.count()) + "s)";
  }
  if (!s.mint_hosts.empty()) {
    std::vector<std::string> h = s.mint_hosts;
    std::sort(h.begin(), h.end());
    std::string list;
    for (const auto& x : h) list += (list.empty() ? "" : ",") + x;
    out += " (mint_hosts " + list + ")";
  }
  return out;
}

// Rotation: a refresh removed or made longer, a longer max_stale keep a value alive
// longer after it should have changed; pinned so that any change shows (widening).
std::string rotation_of(const SecretSpec& s) {
  if (!s.refreshes() && s.max_stale.count() == 0) return "";
  return " (refresh " + (s.refresh_lease ? std::string("lease") : std::to_string(s.refresh.count()) + "ms") +
         ", max_stale " + (s.max_stale.count() == 0 ? std::string("default") : std::to_string(s.max_stale.count()) + "ms") +
         ")";
}

std::string source_of(const SecretSpec& s) {
  if (s.provider == "exec") return "exec:sha256:" + sha256_hex(s.ref) + signing_of(s) + minting_of(s) + rotation_of(s);
  return s.provider + ":" + s.ref + signing_of(s) + minting_of(s) + rotation_of(s);
}

Result<std::vector<std::string>> string_list(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return std::vector<std::string>{};
  if (!j[key].is_array()) return make_error(ErrorKind::Config, std::string(key) + " is not a list");
  std::vector<std::string> out;
  for (const auto& e : j[key]) {
    if (!e.is_string()) return make_error(ErrorKind::Config, std::string(key) + " holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

std::string file_sha256(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "unreadable";
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return "unreadable";
  return sha256_hex(bytes);
}

namespace {

std::string approve_pin(const ApprovalRule& r) {
  std::string out;
  switch (r.mode) {
    case ApprovalMode::None: return "";
    case ApprovalMode::First: out = "first"; break;
    case ApprovalMode::Every: out = "every"; break;
    case ApprovalMode::Matching: {
      out = "methods=[";
      for (const auto& m : sorted_unique(r.methods)) out += m + ",";
      out += "] paths=[";
      for (const auto& p : sorted_unique(r.paths)) out += p + ",";
      out += "]";
      break;
    }
  }
  return out + " ttl=" + std::to_string(approval_ttl_seconds(r));
}

}  // namespace

ProjectPins pins_of(const Config& cfg) {
  ProjectPins p;
  p.config = cfg.path;
  p.config_sha256 = file_sha256(cfg.path);
  for (const auto& s : cfg.secrets) {
    const Binding b = binding_of(s, false);
    SecretPin pin;
    pin.source = source_of(s);
    pin.hosts = sorted_unique(b.hosts);
    pin.methods = sorted_unique(b.methods);
    pin.paths = sorted_unique(b.paths);
    pin.approve = approve_pin(s.approve);
    p.secrets[s.name] = std::move(pin);
  }
  if (!cfg.blind.ca_file.empty()) {
    p.ca_file = cfg.blind.ca_file;
    p.ca_sha256 = file_sha256(cfg.blind.ca_file);
  }
  return p;
}

nlohmann::json pins_to_json(const ProjectPins& p) {
  nlohmann::json j;
  j["version"] = 1;
  j["config"] = p.config;
  j["config_sha256"] = p.config_sha256;
  j["secrets"] = nlohmann::json::object();
  for (const auto& [name, s] : p.secrets) {
    j["secrets"][name] = {{"source", s.source}, {"hosts", s.hosts}, {"methods", s.methods}, {"paths", s.paths}};
    if (!s.approve.empty()) j["secrets"][name]["approve"] = s.approve;
  }
  if (!p.ca_file.empty()) j["ca_file"] = {{"path", p.ca_file}, {"sha256", p.ca_sha256}};
  return j;
}

Result<ProjectPins> pins_from_json(const nlohmann::json& j) {
  auto bad = [](const std::string& why) { return make_error(ErrorKind::Config, why); };
  if (!j.is_object() || j.value("version", 0) != 1) return bad("not a kz trust record (version 1)");
  if (!j.contains("config") || !j["config"].is_string()) return bad("config is missing");
  if (!j.contains("secrets") || !j["secrets"].is_object()) return bad("secrets is missing");
  ProjectPins p;
  p.config = j["config"].get<std::string>();
  if (j.contains("config_sha256") && j["config_sha256"].is_string()) p.config_sha256 = j["config_sha256"];
  for (const auto& [name, s] : j["secrets"].items()) {
    if (!s.is_object() || !s.contains("source") || !s["source"].is_string()) return bad("secret " + name + " is damaged");
    SecretPin pin;
    pin.source = s["source"].get<std::string>();
    auto hosts = string_list(s, "hosts");
    auto methods = string_list(s, "methods");
    auto paths = string_list(s, "paths");
    if (!hosts || !methods || !paths) return bad("secret " + name + " is damaged");
    pin.hosts = std::move(*hosts);
    pin.methods = std::move(*methods);
    pin.paths = std::move(*paths);
    if (s.contains("approve") && s["approve"].is_string()) pin.approve = s["approve"].get<std::string>();
    p.secrets[name] = std::move(pin);
  }
  if (j.contains("ca_file")) {
    const auto& c = j["ca_file"];
    if (!c.is_object() || !c.contains("path") || !c["path"].is_string() || !c.contains("sha256") ||
        !c["sha256"].is_string())
      return bad("ca_file is damaged");
    p.ca_file = c["path"].get<std::string>();
    p.ca_sha256 = c["sha256"].get<std::string>();
  }
  return p;
}

}  // namespace kz
