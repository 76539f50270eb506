#include "policy/bundle.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/mcp_settings.h"
#include "kz/digest.h"
#include "kz/providers/registry.h"
#include "policy/ref_glob.h"

namespace kz::policy {

namespace {

namespace fs = std::filesystem;

// What is being read: the file, for positions.
struct Reader {
  std::string file;

  SourcePos pos(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.is_null()) return {file, 0, 0};
    return {file, m.line + 1, m.column + 1};
  }
  Error error(const YAML::Node& n, const std::string& msg) const {
    return make_error(ErrorKind::Config, format_pos(pos(n)) + ": " + msg);
  }
  // A mapping whose keys are all among `known`.
  Status check_keys(const YAML::Node& n, const std::string& field, std::initializer_list<const char*> known) const {
    if (!n.IsMap()) return error(n, field + " must be a mapping");
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      bool ok = false;
      std::string list;
      for (const char* k : known) {
        ok = ok || key == k;
        list += (list.empty() ? "" : ", ") + std::string(k);
      }
      if (!ok) return error(kv.first, field + ": unknown key \"" + key + "\" (known: " + list + ")");
    }
    return ok_status();
  }
  Result<std::string> string_of(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) return error(n, field + " must be a string");
    return n.Scalar();
  }
  Result<bool> bool_of(const YAML::Node& n, const std::string& field) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    return error(n, field + " must be true or false");
  }
};

Status parse_issuers(const Reader& r, const YAML::Node& identity, const std::string& dir, Bundle& b) {
  if (auto st = r.check_keys(identity, "identity", {"issuers"}); !st) return st;
  const YAML::Node list = identity["issuers"];
  if (!list || !list.IsSequence() || list.size() == 0)
    return r.error(list ? list : identity, "identity.issuers must be a non-empty list of issuers");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node n = list[i];
    const std::string field = "identity.issuers[" + std::to_string(i) + "]";
    if (auto st = r.check_keys(n, field, {"issuer", "audience", "jwks_file", "jwks_url", "hs256_key_env", "leeway"}); !st)
      return st;
    IssuerSpec is;
    is.pos = r.pos(n);
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      if (key == "leeway") {
        auto s = r.string_of(kv.second, field + ".leeway");
        if (!s) return s.take_error();
        auto d = parse_duration(*s);
        if (!d || *d > std::chrono::minutes(5))
          return r.error(kv.second, field + ".leeway must be a duration of at most 5m, e.g. \"30s\"");
        is.leeway = std::chrono::duration_cast<std::chrono::seconds>(*d);
        continue;
      }
      auto s = r.string_of(kv.second, field + "." + key);
      if (!s) return s.take_error();
      if (s->empty()) return r.error(kv.second, field + "." + key + " must not be empty");
      if (key == "issuer") is.issuer = *s;
      else if (key == "audience") is.audience = *s;
      else if (key == "jwks_file") is.jwks_file = fs::path(*s).is_absolute() ? *s : (fs::path(dir) / *s).lexically_normal().string();
      else if (key == "jwks_url") is.jwks_url = *s;
      else if (key == "hs256_key_env") is.hs256_key_env = *s;
    }
    if (is.issuer.empty()) return r.error(n, field + ": issuer is required (the tokens' \"iss\")");
    if (is.audience.empty()) return r.error(n, field + ": audience is required (what \"aud\" must contain)");
    if (is.jwks_file.empty() && is.jwks_url.empty() && is.hs256_key_env.empty())
      return r.error(n, field + ": give its keys: jwks_file, jwks_url or hs256_key_env");
    if (!is.jwks_url.empty() && is.jwks_url.rfind("https://", 0) != 0)
      return r.error(n[std::string("jwks_url")], field + ".jwks_url must be an https:// URL");
    if (!seen.insert(is.issuer).second) return r.error(n, field + ": issuer \"" + is.issuer + "\" is listed twice");
    b.issuers.push_back(std::move(is));
  }
  return ok_status();
}

Status parse_providers(const Reader& r, const YAML::Node& providers, Bundle& b) {
  if (!providers.IsMap()) return r.error(providers, "providers must be a mapping of provider names to settings");
  for (const auto& kv : providers) {
    const std::string name = kv.first.Scalar();
    const std::string field = "providers." + name;
    const ProviderSpec* spec = find_provider_spec(name);
    if (spec == nullptr)
      return r.error(kv.first, field + ": unknown provider \"" + name + "\" (known: " + provider_names() + ")");
    if (!kv.second.IsMap() && !kv.second.IsNull()) return r.error(kv.second, field + " must be a mapping");
    ProviderConfig pc;
    pc.pos = r.pos(kv.first);
    if (kv.second.IsMap()) {
      for (const auto& s : kv.second) {
        const std::string key = s.first.Scalar();
        if (!s.second.IsScalar()) return r.error(s.second, field + "." + key + " must be a scalar");
        const std::string text = s.second.Scalar();
        if (key == "timeout") {
          auto d = parse_duration(text);
          if (!d || d->count() <= 0 || *d > std::chrono::minutes(10))
            return r.error(s.second, field + ".timeout must be a duration between 1ms and 10m, e.g. \"30s\"");
          pc.timeout = *d;
          continue;
        }
        const SettingSpec* ss = find_setting_spec(*spec, key);
        if (ss == nullptr)
          return r.error(s.first, field + ": unknown key \"" + key + "\" (known: " + setting_keys(*spec) + ")");
        if (ss->type == SettingType::Boolean && text != "true" && text != "false")
          return r.error(s.second, field + "." + key + " must be true or false");
        if (ss->type == SettingType::Integer && text.find_first_not_of("0123456789") != std::string::npos)
          return r.error(s.second, field + "." + key + " must be an integer");
        pc.settings[key] = SettingValue{text, r.pos(s.second)};
      }
    }
    b.providers[name] = std::move(pc);
  }
  return ok_status();
}

Result<Rule> parse_rule(const Reader& r, const YAML::Node& n, const std::string& id) {
  if (auto st = r.check_keys(n, id, {"cel", "effect", "mode", "reveal"}); !st) return st.take_error();
  Rule rule;
  rule.id = id;
  rule.pos = r.pos(n);
  const YAML::Node cel = n["cel"];
  if (!cel) return r.error(n, id + ": cel is required (the condition, a CEL expression)");
  auto text = r.string_of(cel, id + ".cel");
  if (!text) return text.take_error();
  rule.cel = *text;
  const YAML::Node effect = n["effect"];
  if (!effect) return r.error(n, id + ": effect is required (allow, deny or approve)");
  auto e = r.string_of(effect, id + ".effect");
  if (!e) return e.take_error();
  if (*e == "allow") rule.effect = Effect::Allow;
  else if (*e == "deny") rule.effect = Effect::Deny;
  else if (*e == "approve") rule.effect = Effect::Approve;
  else return r.error(effect, id + ".effect must be allow, deny or approve, not \"" + *e + "\"");
  if (const YAML::Node mode = n["mode"]) {
    auto m = r.string_of(mode, id + ".mode");
    if (!m) return m.take_error();
    if (*m == "shadow") rule.mode = RuleMode::Shadow;
    else if (*m == "enforce") rule.mode = RuleMode::Enforce;
    else return r.error(mode, id + ".mode must be enforce or shadow, not \"" + *m + "\"");
  }
  if (const YAML::Node reveal = n["reveal"]) {
    auto v = r.bool_of(reveal, id + ".reveal");
    if (!v) return v.take_error();
    rule.reveal = *v;
    if (rule.reveal && rule.effect != Effect::Allow)
      return r.error(reveal, id + ".reveal only means something on an allow rule");
  }
  cel::Diagnostic where;
  auto program = cel::Program::compile(rule.cel, cel::Limits{}, &where);
  if (!program) {
    // The expression's own position: a plain scalar starts where its mark is; a quoted
    // or block one a character or a line later, so the offset is given separately.
    return r.error(cel, id + ".cel: offset " + std::to_string(where.offset) + ": " + where.message);
  }
  rule.program = std::make_shared<const cel::Program>(std::move(*program));
  return rule;
}

Status parse_policies(const Reader& r, const YAML::Node& list, Bundle& b) {
  if (!list.IsSequence()) return r.error(list, "policies must be a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node n = list[i];
    Policy p;
    p.id = "policies[" + std::to_string(i) + "]";
    p.pos = r.pos(n);
    if (auto st = r.check_keys(n, p.id, {"match", "rules"}); !st) return st;
    const YAML::Node match = n["match"];
    if (!match) return r.error(n, p.id + ": match is required (a ref glob such as \"secret/data/prod/**\")");
    auto m = r.string_of(match, p.id + ".match");
    if (!m) return m.take_error();
    if (auto why = ref_glob_problem(*m); !why.empty()) return r.error(match, p.id + ".match: " + why);
    p.match = *m;
    const YAML::Node rules = n["rules"];
    if (!rules || !rules.IsSequence() || rules.size() == 0)
      return r.error(rules ? rules : n, p.id + ".rules must be a non-empty list");
    for (std::size_t k = 0; k < rules.size(); ++k) {
      auto rule = parse_rule(r, rules[k], p.id + ".rules[" + std::to_string(k) + "]");
      if (!rule) return rule.take_error();
      p.rules.push_back(std::move(*rule));
    }
    b.policies.push_back(std::move(p));
  }
  return ok_status();
}

Result<std::vector<std::string>> string_list(const Reader& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsSequence()) return r.error(n, field + " must be a list of strings");
  std::vector<std::string> out;
  for (const auto& item : n) {
    if (!item.IsScalar() || item.Scalar().empty()) return r.error(item, field + " must contain only non-empty strings");
    out.push_back(item.Scalar());
  }
  return out;
}

// secrets: NAME: {provider, ref, hosts, methods, paths}, as [secrets] in .keyzero.toml.
Status parse_secrets(const Reader& r, const YAML::Node& secrets, Bundle& b) {
  if (!secrets.IsMap()) return r.error(secrets, "secrets must be a mapping of names to {provider, ref, hosts}");
  for (const auto& kv : secrets) {
    SecretSpec s;
    s.name = kv.first.Scalar();
    s.pos = r.pos(kv.first);
    const std::string field = "secrets." + s.name;
    if (!is_env_name(s.name)) return r.error(kv.first, field + ": a name is letters, digits and _, not starting with a digit");
    if (auto st = r.check_keys(kv.second, field,
                               {"provider", "ref", "hosts", "methods", "paths", "canary", "sign", "access_key_id",
                                "session_token", "services", "regions", "format"});
        !st)
      return st;
    for (const auto& f : kv.second) {
      const std::string key = f.first.Scalar();
      if (key == "canary") {
        auto v = r.bool_of(f.second, field + ".canary");
        if (!v) return v.take_error();
        s.canary = *v;
        continue;
      }
      if (key == "provider" || key == "ref") {
        auto v = r.string_of(f.second, field + "." + key);
        if (!v) return v.take_error();
        if (v->empty()) return r.error(f.second, field + "." + key + " must not be empty");
        (key == "provider" ? s.provider : s.ref) = *v;
        if (key == "provider" && find_provider_spec(s.provider) == nullptr)
          return r.error(f.second, field + ".provider: unknown provider \"" + s.provider + "\" (known: " + provider_names() + ")");
        continue;
      }
      if (key == "sign" || key == "access_key_id" || key == "session_token" || key == "format") {
        // AWS SigV4 (docs/aws.md): the MCP fetch tool signs with such a key.
        auto v = r.string_of(f.second, field + "." + key);
        if (!v) return v.take_error();
        if (auto why = signing_item_problem(key, *v); !why.empty()) return r.error(f.second, field + "." + key + ": " + why);
        (key == "sign" ? s.sign : key == "access_key_id" ? s.access_key_id : key == "format" ? s.format : s.session_token) = *v;
        continue;
      }
      auto list = string_list(r, f.second, field + "." + key);
      if (!list) return list.take_error();
      if (key == "services" || key == "regions") {
        for (const auto& item : *list)
          if (auto why = signing_item_problem(key, item); !why.empty())
            return r.error(f.second, field + "." + key + ": \"" + item + "\": " + why);
        (key == "services" ? s.services : s.regions) = std::move(*list);
        continue;
      }
      for (const auto& item : *list)
        if (auto why = binding_item_problem(key, item); !why.empty())
          return r.error(f.second, field + "." + key + ": \"" + item + "\": " + why);
      (key == "hosts" ? s.hosts : key == "methods" ? s.methods : s.paths) = std::move(*list);
    }
    if (s.canary) {
      if (!s.provider.empty() || !s.ref.empty() || !s.hosts.empty() || !s.methods.empty() || !s.paths.empty())
        return r.error(kv.second, field + ": a canary has no provider, ref, hosts, methods or paths");
      b.canaries.push_back(std::move(s));
      continue;
    }
    if (s.provider.empty() || s.ref.empty()) return r.error(kv.second, field + " needs provider and ref");
    if (auto why = signing_problem(s); !why.empty()) return r.error(kv.second, field + ": " + why);
    if (!s.format.empty() && !s.session_token.empty())
      return r.error(kv.second, field + ".session_token: with format the session token comes from the credential set");
    b.secrets.push_back(std::move(s));
  }
  const SecretSpec* where = nullptr;
  if (auto why = link_signing_secrets(b.secrets, &where); !why.empty())
    return make_error(ErrorKind::Config, format_pos(where->pos) + ": " + why);
  return ok_status();
}

// mcp: the keys and their checks are shared with .keyzero.toml (config/mcp_settings.h).
Status parse_mcp(const Reader& r, const YAML::Node& n, const std::string& table, Bundle& b) {
  const std::string field = table.empty() ? "mcp" : "mcp." + table;
  if (!n.IsMap()) return r.error(n, field + " must be a mapping");
  for (const auto& kv : n) {
    const std::string key = (table.empty() ? "" : table + ".") + kv.first.Scalar();
    std::string problem;
    switch (mcp_key_type(key)) {
      case McpKeyType::Table:
        if (auto st = parse_mcp(r, kv.second, key, b); !st) return st;
        continue;
      case McpKeyType::List: {
        auto list = string_list(r, kv.second, "mcp." + key);
        if (!list) return list.take_error();
        problem = set_mcp_list(b.mcp, key, *list);
        break;
      }
      case McpKeyType::Scalar:
        problem = kv.second.IsScalar() ? set_mcp_scalar(b.mcp, key, kv.second.Scalar()) : "must be a single value";
        break;
      case McpKeyType::Unknown:
        return r.error(kv.first, field + ": unknown key \"" + kv.first.Scalar() + "\" (known: " + mcp_known_keys(table) + ")");
    }
    if (!problem.empty()) return r.error(kv.second, "mcp." + key + " " + problem);
  }
  return ok_status();
}

}  // namespace

// approvals: { webhook, timeout, ca_file }.
Status parse_approvals(const Reader& r, const YAML::Node& n, Bundle& b) {
  if (auto st = r.check_keys(n, "approvals", {"webhook", "timeout", "ca_file"}); !st) return st;
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    auto text = r.string_of(kv.second, "approvals." + key);
    if (!text) return text.take_error();
    if (key == "webhook") {
      const std::string& u = *text;
      if (u.rfind("https://", 0) != 0 && u.rfind("http://127.0.0.1:", 0) != 0 && u.rfind("http://localhost:", 0) != 0 &&
          u.rfind("http://[::1]:", 0) != 0)
        return r.error(kv.second, "approvals.webhook must be an https:// URL (http:// only to this host)");
      b.approvals.webhook = u;
    } else if (key == "timeout") {
      auto d = parse_duration(*text);
      if (!d || d->count() < 100 || *d > std::chrono::minutes(10))
        return r.error(kv.second, "approvals.timeout must be a duration between 100ms and 10m, e.g. \"60s\"");
      b.approvals.timeout = *d;
    } else {
      b.approvals.ca_file = fs::path(*text).is_absolute() ? *text : (fs::path(b.dir) / *text).lexically_normal().string();
    }
  }
  if (b.approvals.webhook.empty()) return r.error(n, "approvals needs webhook: URL (where a person's answer comes from)");
  return ok_status();
}

Result<Bundle> parse_bundle(std::string_view text, const std::string& path) {
  Bundle b;
  b.path = fs::absolute(path).lexically_normal().string();
  b.dir = fs::path(b.path).parent_path().string();
  b.revision = sha256_hex(text);
  const Reader r{b.path};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return make_error(ErrorKind::Config, format_pos({b.path, e.mark.line + 1, e.mark.column + 1}) +
                                             ": not valid YAML: " + e.msg);
  }
  try {
    if (!root.IsMap()) return r.error(root, "a bundle is a mapping with identity, providers and policies");
    if (auto st = r.check_keys(root, "bundle", {"identity", "providers", "policies", "secrets", "mcp", "approvals"}); !st)
      return st.take_error();
    if (const YAML::Node ap = root["approvals"]) {
      if (auto st = parse_approvals(r, ap, b); !st) return st.take_error();
    }
    if (const YAML::Node id = root["identity"]) {
      if (auto st = parse_issuers(r, id, b.dir, b); !st) return st.take_error();
    }
    if (const YAML::Node prov = root["providers"]) {
      if (auto st = parse_providers(r, prov, b); !st) return st.take_error();
    }
    const YAML::Node pol = root["policies"];
    if (!pol) return r.error(root, "policies is required (without it every request is denied)");
    if (auto st = parse_policies(r, pol, b); !st) return st.take_error();
    if (const YAML::Node sec = root["secrets"]) {
      if (auto st = parse_secrets(r, sec, b); !st) return st.take_error();
    }
    if (const YAML::Node mcp = root["mcp"]) {
      if (auto st = parse_mcp(r, mcp, "", b); !st) return st.take_error();
      if (!b.mcp.fetch.ca_file.empty() && !fs::path(b.mcp.fetch.ca_file).is_absolute())
        b.mcp.fetch.ca_file = (fs::path(b.dir) / b.mcp.fetch.ca_file).lexically_normal().string();
      if (!b.mcp.replicas.deny_list.empty() && !fs::path(b.mcp.replicas.deny_list).is_absolute())
        b.mcp.replicas.deny_list = (fs::path(b.dir) / b.mcp.replicas.deny_list).lexically_normal().string();
      if (b.mcp.replicas.enabled() != !b.mcp.replicas.key_ref.empty())
        return r.error(mcp, "mcp.replicas needs both key_provider and key_ref");
    }
  } catch (const YAML::Exception& e) {
    return make_error(ErrorKind::Config, format_pos({b.path, e.mark.line + 1, e.mark.column + 1}) + ": " + e.msg);
  }
  return b;
}

Result<Bundle> load_bundle(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Config, "cannot read the bundle " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_bundle(ss.str(), path);
}

}  // namespace kz::policy
