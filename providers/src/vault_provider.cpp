// vault: HashiCorp Vault KV secrets engine (v1 and v2) over the HTTP API.
//
// Ref syntax:
//     PATH[#FIELD]
//   PATH   the API path without /v1/: MOUNT/data/SECRET for KV v2 (secret/data/prod/github)
//          or MOUNT/SECRET for KV v1 (kv/prod/x).
//   FIELD  which key of the secret's data to return. Without it: the only key when the
//          secret has exactly one, else the key `value`, else an error listing the key
//          names. String values are returned as-is, others as JSON text.
//   KV version: kv_version = "1" always reads PATH as v1. Otherwise the secret is v2 when
//   kv_version = "2" (then MOUNT/SECRET is read as MOUNT/data/SECRET), when the second
//   path segment is `data`, or (kv_version = "auto") when the response has both
//   data.data and data.metadata.
//
// Settings ([providers.vault]; each overrides the environment): address (VAULT_ADDR),
// token_file (else VAULT_TOKEN, else ~/.vault-token), namespace (VAULT_NAMESPACE),
// ca_cert (VAULT_CACERT), auth ("token" | "approle"), role_id, secret_id_file,
// approle_mount, kv_version.
#include <cctype>
#include <fstream>
#include <mutex>
#include <iterator>
#include <vector>

#include "kz/providers/http_client.h"
#include "kz/providers/json_util.h"
#include "kz/providers/registry.h"

namespace kz {
namespace {

constexpr const char* kName = "vault";

enum class KvVersion { Auto, V1, V2 };



std::string trim(std::string s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t b = 0;
  while (b < s.size() && ws(s[b])) ++b;
  size_t e = s.size();
  while (e > b && ws(s[e - 1])) --e;
  std::string out = s.substr(b, e - b);
  wipe(s);
  return out;
}

// Reads a credential file; the contents are trimmed of surrounding whitespace.
Result<SecretValue> read_credential_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorKind::Config, what + ": cannot read " + path);
  ScrubbedString buf;
  buf.str().assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  ScrubbedString t(trim(std::move(buf.str())));
  if (t.str().empty()) return make_error(ErrorKind::Config, what + ": " + path + " is empty");
  return SecretValue::from(t.str());
}

std::string resolve_path(const std::string& v, const ProviderContext& ctx) {
  if (v.empty()) return {};
  std::string p = expand_home(v, ctx.home);
  if (p[0] != '/' && !ctx.config_dir.empty()) p = ctx.config_dir + "/" + p;
  return p;
}

struct Config {
  std::string address;       // no trailing '/'
  std::string ns;
  std::string ca_file;
  KvVersion kv = KvVersion::Auto;
  bool approle = false;
  std::string approle_mount = "approle";
  std::string role_id;
  SecretValue secret_id;
  SecretValue token;         // token auth: the token; approle: filled at first login
  std::string token_source;  // for messages
};

struct ParsedRef {
  std::string api_path;      // after /v1/
  bool v2 = false;           // known v2 before the request
  bool has_field = false;
  std::string field;
};

class VaultProvider final : public Provider {
 public:
  explicit VaultProvider(Config c) : c_(std::move(c)) {}

  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    ValueLease unused;
    return resolve_leased(ref, deadline, unused);
  }

  // Reads lease_duration, renewable and lease_id of the response envelope (dynamic
  // secrets: database/creds/ROLE#password) and a KV v2 value's metadata.version.
  Result<SecretValue> resolve_leased(const SecretRef& ref, Deadline deadline, ValueLease& lease) override {
    const std::string prefix = std::string(kName) + " (" + ref.name + ", ref '" + ref.ref + "')";
    auto parsed = parse_ref(ref.ref, prefix);
    if (!parsed) return parsed.take_error();
    if (Clock::now() >= deadline)
      return make_error(ErrorKind::Timeout, prefix + ": deadline passed before the request");

    auto token = current_token(deadline, prefix);
    if (!token) return token.take_error();

    HttpRequest req;
    req.method = "GET";
    req.url = c_.address + "/v1/" + uri_encode(parsed->api_path, true);
    req.headers.emplace_back("X-Vault-Token", std::string(token->get().view()));
    if (!c_.ns.empty()) req.headers.emplace_back("X-Vault-Namespace", c_.ns);
    req.headers.emplace_back("Accept", "application/json");
    req.ca_file = c_.ca_file;
    req.deadline = deadline;
    const std::string what = prefix + ": GET /v1/" + parsed->api_path + " at " + c_.address;
    auto resp = http_send(std::move(req), what);
    if (!resp) {
      Error e = resp.take_error();
      scrub(e.message, token->get());
      return e;
    }
    if (resp->status != 200) return map_error(*resp, prefix, "/v1/" + parsed->api_path, token->get());
    return extract(*resp, *parsed, prefix, lease);
  }

 private:
  // A reference to the token to use (kept alive for the provider's life).
  Result<std::reference_wrapper<const SecretValue>> current_token(Deadline deadline,
                                                                   const std::string& prefix) {
    if (!c_.approle) return std::cref(c_.token);
    std::lock_guard<std::mutex> lock(login_mu_);
    if (!c_.token.empty()) return std::cref(c_.token);
    auto st = login(deadline, prefix);
    if (!st) return st.take_error();
    return std::cref(c_.token);
  }

  Status login(Deadline deadline, const std::string& prefix) {
    const std::string path = "/v1/auth/" + uri_encode(c_.approle_mount, true) + "/login";
    ScrubbedString body;
    {
      nlohmann::json b = {{"role_id", c_.role_id}, {"secret_id", std::string(c_.secret_id.view())}};
      body.str() = b.dump();
      wipe_json(b);
    }
    HttpRequest req;
    req.method = "POST";
    req.url = c_.address + path;
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!c_.ns.empty()) req.headers.emplace_back("X-Vault-Namespace", c_.ns);
    req.body = body.str();
    req.ca_file = c_.ca_file;
    req.deadline = deadline;
    const std::string what = prefix + ": AppRole login (POST " + path + ") at " + c_.address;
    auto resp = http_send(std::move(req), what);
    if (!resp) {
      Error e = resp.take_error();
      redact(e.message, c_.secret_id.view());
      return e;
    }
    if (resp->status != 200) {
      Error e = map_error(*resp, prefix + ": AppRole login", path, c_.secret_id);
      if (resp->status == 400 || resp->status == 401) e.kind = ErrorKind::Denied;
      return e;
    }
    auto parsed = parse_json_body(resp->body.str(), what + " response");
    if (!parsed) return parsed.take_error();
    ScrubbedJson doc(std::move(*parsed));
    nlohmann::json& j = doc.get();
    const nlohmann::json* tok = nullptr;
    if (j.is_object()) {
      auto a = j.find("auth");
      if (a != j.end() && a->is_object()) {
        auto t = a->find("client_token");
        if (t != a->end() && t->is_string() && !t->get_ref<const std::string&>().empty()) tok = &*t;
      }
    }
    if (tok == nullptr)
      return make_error(ErrorKind::Protocol, what + ": response has no auth.client_token");
    c_.token = SecretValue::from(tok->get_ref<const std::string&>());
    return ok_status();
  }

  Result<ParsedRef> parse_ref(const std::string& ref, const std::string& prefix) const {
    ParsedRef out;
    std::string path = ref;
    if (auto h = ref.find('#'); h != std::string::npos) {
      out.has_field = true;
      out.field = ref.substr(h + 1);
      path = ref.substr(0, h);
      if (out.field.empty())
        return make_error(ErrorKind::Config, prefix + ": empty field name after '#'");
    }
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    if (path.rfind("v1/", 0) == 0) path.erase(0, 3);
    while (!path.empty() && path.back() == '/') path.pop_back();
    std::vector<std::string> segs;
    size_t i = 0;
    while (i <= path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      segs.push_back(path.substr(i, j - i));
      i = j + 1;
    }
    bool bad = path.empty() || segs.size() < 2;
    for (const auto& s : segs) bad = bad || s.empty() || s == "." || s == "..";
    if (bad)
      return make_error(ErrorKind::Config,
                        prefix + ": expected MOUNT/data/PATH[#FIELD] (KV v2) or MOUNT/PATH[#FIELD] (KV v1)");
    if (c_.kv == KvVersion::V1) {
      out.api_path = path;
    } else if (segs[1] == "data") {
      if (segs.size() < 3)
        return make_error(ErrorKind::Config, prefix + ": expected MOUNT/data/PATH[#FIELD]: no secret path after 'data'");
      out.v2 = true;
      out.api_path = path;
    } else if (c_.kv == KvVersion::V2) {
      out.v2 = true;
      out.api_path = segs[0] + "/data" + path.substr(segs[0].size());
    } else {
      out.api_path = path;
    }
    return out;
  }

  void scrub(std::string& msg, const SecretValue& token) const {
    redact(msg, token.view());
    redact(msg, c_.secret_id.view());
  }

  Error map_error(HttpResponse& resp, const std::string& prefix, const std::string& path,
                  const SecretValue& credential) const {
    std::vector<std::string> errors;
    auto j = nlohmann::json::parse(resp.body.str(), nullptr, false);
    if (j.is_object()) {
      auto e = j.find("errors");
      if (e != j.end() && e->is_array())
        for (const auto& x : *e)
          if (x.is_string() && !x.get_ref<const std::string&>().empty()) errors.push_back(x);
    }
    wipe_json(j);
    std::string detail = "HTTP " + std::to_string(resp.status);
    std::string joined;
    for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e;
    for (auto& e : errors) wipe(e);
    bool sealed = joined.find("sealed") != std::string::npos;
    if (!joined.empty()) detail += ": \"" + sanitize_message(joined) + "\"";
    wipe(joined);
    ErrorKind kind = ErrorKind::Protocol;
    std::string hint;
    switch (resp.status) {
      case 401:
      case 403:
        kind = ErrorKind::Denied;
        hint = " (token from " + c_.token_source +
               (c_.ns.empty() ? std::string() : ", namespace '" + c_.ns + "'") + ")";
        break;
      case 404:
        kind = ErrorKind::NotFound;
        hint = " (no secret at " + path + ")";
        break;
      case 503:
        kind = ErrorKind::Network;
        hint = sealed ? " (Vault is sealed)" : " (Vault is sealed, in standby or under maintenance)";
        break;
      case 429:
        kind = ErrorKind::Network;
        hint = " (rate limited)";
        break;
      default:
        if (sealed) {
          kind = ErrorKind::Network;
          hint = " (Vault is sealed)";
        }
        break;
    }
    std::string msg = prefix + ": " + detail + hint;
    scrub(msg, credential);
    redact(msg, c_.token.view());
    return make_error(kind, msg);
  }

  Result<SecretValue> extract(HttpResponse& resp, const ParsedRef& pr, const std::string& prefix,
                              ValueLease& lease) const {
    auto parsed = parse_json_body(resp.body.str(), prefix + ": Vault response");
    if (!parsed) return parsed.take_error();
    ScrubbedJson doc(std::move(*parsed));
    nlohmann::json& j = doc.get();
    if (!j.is_object())
      return make_error(ErrorKind::Protocol, prefix + ": Vault response is not a JSON object");
    auto d = j.find("data");
    if (d == j.end() || !d->is_object())
      return make_error(ErrorKind::Protocol, prefix + ": Vault response has no \"data\" object");
    nlohmann::json* data = &*d;
    if (auto ld = j.find("lease_duration"); ld != j.end() && ld->is_number_integer() && ld->get<long long>() > 0)
      lease.duration = std::chrono::seconds(ld->get<long long>());
    if (auto rn = j.find("renewable"); rn != j.end() && rn->is_boolean()) lease.renewable = rn->get<bool>();
    if (auto li = j.find("lease_id"); li != j.end() && li->is_string()) lease.lease_id = li->get<std::string>();
    bool v2 = pr.v2;
    if (!v2 && c_.kv == KvVersion::Auto && data->contains("data") && data->contains("metadata") &&
        (*data)["metadata"].is_object())
      v2 = true;
    if (v2) {
      auto inner = data->find("data");
      if (inner == data->end())
        return make_error(ErrorKind::Protocol, prefix + ": KV v2 response has no data.data");
      if (inner->is_null())
        return make_error(ErrorKind::NotFound,
                          prefix + ": the current version of the secret is deleted or destroyed");
      if (!inner->is_object())
        return make_error(ErrorKind::Protocol, prefix + ": KV v2 data.data is not an object");
      data = &*inner;
      if (auto m = d->find("metadata"); m != d->end() && m->is_object())
        if (auto ver = m->find("version"); ver != m->end() && ver->is_number_integer())
          lease.version = std::to_string(ver->get<long long>());
    }

    // "#*": every field, as one JSON object (an AWS secrets engine credential set, read
    // with format = "aws-credentials").
    if (pr.has_field && pr.field == "*") {
      ScrubbedString text(data->dump());
      return SecretValue::from(text.str());
    }
    std::string field;
    if (pr.has_field) {
      field = pr.field;
    } else if (data->size() == 1) {
      field = data->begin().key();
    } else if (data->contains("value")) {
      field = "value";
    }
    auto names = [&] {
      std::string list;
      for (auto k = data->begin(); k != data->end(); ++k) list += (list.empty() ? "" : ", ") + k.key();
      return list.empty() ? std::string("(none)") : list;
    };
    if (field.empty())
      return make_error(ErrorKind::Config,
                        prefix + ": the secret has several fields and none is named 'value'; "
                        "pick one with #FIELD (fields: " + names() + ")");
    auto it = data->find(field);
    if (it == data->end())
      return make_error(ErrorKind::NotFound,
                        prefix + ": field '" + field + "' is not in the secret (fields: " + names() + ")");
    if (it->is_string()) return SecretValue::from(it->get_ref<const std::string&>());
    if (it->is_null()) return make_error(ErrorKind::NotFound, prefix + ": field '" + field + "' is null");
    ScrubbedString text(it->dump());
    return SecretValue::from(text.str());
  }

  Config c_;
  std::mutex login_mu_;
};

Result<std::unique_ptr<Provider>> make_vault(const ProviderSettings& s, const ProviderContext& ctx) {
  const Environment& env = *ctx.env;
  Config c;
  auto pos_of = [&](const char* key) {
    const SettingValue* v = find_setting(s, key);
    return v ? format_pos(v->pos) + ": " : std::string();
  };

  c.address = setting_or_env(s, "address", env, {"VAULT_ADDR"});
  while (!c.address.empty() && c.address.back() == '/') c.address.pop_back();
  if (c.address.empty())
    return make_error(ErrorKind::Config,
                      "vault: no server address: set `address` in [providers.vault] or VAULT_ADDR");
  if (c.address.rfind("https://", 0) != 0 && c.address.rfind("http://", 0) != 0)
    return make_error(ErrorKind::Config, pos_of("address") + "vault: address '" + c.address +
                                             "' must start with https:// or http://");
  c.ns = setting_or_env(s, "namespace", env, {"VAULT_NAMESPACE"});
  if (const auto* v = find_setting(s, "ca_cert"); v && !v->text.empty()) {
    c.ca_file = resolve_path(v->text, ctx);
  } else if (const char* e = env.get("VAULT_CACERT"); e && *e) {
    c.ca_file = e;
  }

  if (const auto* v = find_setting(s, "kv_version")) {
    if (v->text == "auto") c.kv = KvVersion::Auto;
    else if (v->text == "1") c.kv = KvVersion::V1;
    else if (v->text == "2") c.kv = KvVersion::V2;
    else
      return make_error(ErrorKind::Config, format_pos(v->pos) + ": vault: kv_version must be "
                                               "\"auto\", \"1\" or \"2\", not '" + v->text + "'");
  }

  std::string auth = "token";
  if (const auto* v = find_setting(s, "auth")) auth = v->text;
  if (auth == "approle") {
    c.approle = true;
    c.token_source = "AppRole login";
    if (const auto* v = find_setting(s, "approle_mount"); v && !v->text.empty()) {
      c.approle_mount = v->text;
      while (!c.approle_mount.empty() && c.approle_mount.back() == '/') c.approle_mount.pop_back();
    }
    if (const auto* v = find_setting(s, "role_id")) c.role_id = v->text;
    if (c.role_id.empty())
      return make_error(ErrorKind::Config, "vault: auth = \"approle\" needs `role_id` in [providers.vault]");
    const SettingValue* sid = find_setting(s, "secret_id_file");
    if (sid == nullptr || sid->text.empty())
      return make_error(ErrorKind::Config,
                        "vault: auth = \"approle\" needs `secret_id_file` in [providers.vault]");
    auto secret = read_credential_file(resolve_path(sid->text, ctx),
                                       format_pos(sid->pos) + ": vault: secret_id_file");
    if (!secret) return secret.take_error();
    c.secret_id = std::move(*secret);
    c.token_source = "AppRole login at auth/" + c.approle_mount;
  } else if (auth == "token") {
    const std::string dot = ctx.home.empty() ? std::string("~/.vault-token") : ctx.home + "/.vault-token";
    if (const auto* v = find_setting(s, "token_file"); v && !v->text.empty()) {
      std::string p = resolve_path(v->text, ctx);
      auto t = read_credential_file(p, format_pos(v->pos) + ": vault: token_file");
      if (!t) return t.take_error();
      c.token = std::move(*t);
      c.token_source = "token_file " + p;
    } else if (const char* e = env.get("VAULT_TOKEN"); e && *e) {
      c.token = SecretValue::from(e);
      c.token_source = "VAULT_TOKEN";
    } else if (!ctx.home.empty() && std::ifstream(dot).good()) {
      auto t = read_credential_file(dot, "vault: token file");
      if (!t) return t.take_error();
      c.token = std::move(*t);
      c.token_source = dot;
    } else {
      return make_error(ErrorKind::Config,
                        "vault: no token: set `token_file` in [providers.vault], VAULT_TOKEN, or "
                        "write " + dot + " (vault login), or use auth = \"approle\"");
    }
  } else {
    const auto* v = find_setting(s, "auth");
    return make_error(ErrorKind::Config, format_pos(v->pos) + ": vault: auth must be \"token\" or "
                                             "\"approle\", not '" + auth + "'");
  }
  return std::unique_ptr<Provider>(std::make_unique<VaultProvider>(std::move(c)));
}

}  // namespace

ProviderSpec vault_provider_spec() {
  return {kName,
          {
              {"address", SettingType::String,
               "Vault server URL, e.g. https://vault.example.com:8200 (default: VAULT_ADDR)"},
              {"token_file", SettingType::Path,
               "file holding the Vault token (default: VAULT_TOKEN, then ~/.vault-token)"},
              {"namespace", SettingType::String,
               "Vault Enterprise namespace sent as X-Vault-Namespace (default: VAULT_NAMESPACE)"},
              {"ca_cert", SettingType::Path,
               "PEM CA bundle to verify the server (default: VAULT_CACERT, then the system trust "
               "store)"},
              {"auth", SettingType::String,
               "\"token\" (default) or \"approle\" (log in with role_id and secret_id_file once "
               "per run)"},
              {"role_id", SettingType::String, "AppRole role ID (auth = \"approle\")"},
              {"secret_id_file", SettingType::Path,
               "file holding the AppRole secret ID (auth = \"approle\")"},
              {"approle_mount", SettingType::String,
               "mount path of the AppRole auth method (default \"approle\")"},
              {"kv_version", SettingType::String,
               "KV secrets engine version: \"auto\" (default: v2 when the ref is MOUNT/data/... "
               "or the response looks like v2), \"1\" or \"2\""},
          },
          make_vault};
}

}  // namespace kz
