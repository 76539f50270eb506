#include "config/config.h"

#include "secrets/binding.h"
#include "secrets/canary.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "config/mcp_settings.h"
#include "kz/providers/registry.h"

namespace kz {

namespace {

namespace fs = std::filesystem;

SourcePos pos_of(const toml::node& n, const std::string& file) {
  const auto& src = n.source();
  return SourcePos{file, static_cast<int>(src.begin.line), static_cast<int>(src.begin.column)};
}

Error config_error(const SourcePos& p, const std::string& msg) {
  return make_error(ErrorKind::Config, format_pos(p) + ": " + msg);
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "value";
  }
}

Result<std::vector<std::string>> string_array(const toml::node& n, const std::string& file,
                                              const std::string& field) {
  const auto* arr = n.as_array();
  if (arr == nullptr)
    return config_error(pos_of(n, file), field + " must be an array of strings, not a " + type_name(n));
  std::vector<std::string> out;
  for (const auto& el : *arr) {
    const auto* s = el.as_string();
    if (s == nullptr)
      return config_error(pos_of(el, file), field + " must contain only strings, found a " + type_name(el));
    if (s->get().empty()) return config_error(pos_of(el, file), field + " must not contain empty strings");
    out.push_back(s->get());
  }
  return out;
}

}  // namespace

std::string binding_item_problem(const std::string& key, const std::string& item) {
  if (key == "hosts") return host_pattern_problem(item);
  if (key == "methods" && (item.empty() || item.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos))
    return "methods are upper-case HTTP methods like \"GET\"";
  if (key == "paths" && (item.empty() || (item[0] != '/' && item[0] != '*')))
    return "paths start with \"/\" (prefix globs like \"/v1/\" or \"/repos/*/issues\")";
  return "";
}

std::string signing_item_problem(const std::string& key, const std::string& value) {
  if (key == "services" || key == "regions") {
    if (value.empty() || value.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
      return key + " are lower-case AWS names like " + (key == "services" ? "\"s3\" or \"secretsmanager\"" : "\"us-east-1\"");
    return "";
  }
  if (key == "sign") return value == "sigv4" ? "" : "unknown signing scheme \"" + value + "\" (known: sigv4)";
  if (key == "format") return value == "aws-credentials" ? "" : "unknown format \"" + value + "\" (known: aws-credentials)";
  if (key == "access_key_id") {
    if (value.size() < 16 || value.size() > 128 || value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != std::string::npos)
      return "an AWS access key id is 16 to 128 upper-case letters and digits (AKIA…, ASIA…)";
    return "";
  }
  return is_env_name(value) ? "" : "\"" + value + "\" is not the name of a secret";   // session_token, from
}

std::string signing_problem(const SecretSpec& s) {
  const bool any = !s.access_key_id.empty() || !s.session_token.empty() || !s.services.empty() || !s.regions.empty() ||
                   !s.format.empty();
  if (s.sign.empty() && any) return "access_key_id, session_token, services, regions and format need sign = \"sigv4\"";
  if (!s.sign.empty() && s.access_key_id.empty() && s.format.empty())
    return "sign = \"sigv4\" needs access_key_id = \"AKIA…\" (the key id is not secret: kz gives it to the command as "
           "AWS_ACCESS_KEY_ID), or format = \"aws-credentials\" to take it from the credential set";
  if (s.session_token == s.name) return "session_token: names this secret itself";
  return "";
}

std::string link_signing_secrets(std::vector<SecretSpec>& secrets, const SecretSpec** where) {
  auto find = [&](const std::string& n) -> SecretSpec* {
    for (auto& s : secrets)
      if (s.name == n) return &s;
    return nullptr;
  };
  for (auto& s : secrets) {
    *where = &s;
    if (!s.session_token.empty() && find(s.session_token) == nullptr)
      return "secrets." + s.name + ".session_token: no secret named " + s.session_token;
    if (s.from.empty()) continue;
    const SecretSpec* key = find(s.from);
    if (key == nullptr || key->format.empty() || key->session_token != s.name)
      return "secrets." + s.name + ".from: " + s.from + " must be a secret with format = \"aws-credentials\" and "
             "session_token = \"" + s.name + "\"";
    s.provider = key->provider;
    s.ref = key->ref;
  }
  for (const auto& s : secrets) {
    *where = &s;
    const SecretSpec* t = s.format.empty() || s.session_token.empty() ? nullptr : find(s.session_token);
    if (t != nullptr && t->from != s.name)
      return "secrets." + t->name + ": the session token of " + s.name + "'s credential set needs from = \"" + s.name +
             "\" (and no provider or ref)";
  }
  return "";
}

namespace {

// The keys of an AWS SigV4 secret (docs/aws.md).
Status parse_signing_key(const std::string& key, const toml::node& v, const std::string& file,
                         const std::string& field, SecretSpec& s) {
  const SourcePos kpos = pos_of(v, file);
  const std::string f = field + "." + key;
  if (key == "services" || key == "regions") {
    auto arr = string_array(v, file, f);
    if (!arr) return arr.take_error();
    for (const auto& item : *arr)
      if (auto why = signing_item_problem(key, item); !why.empty()) return config_error(kpos, f + ": \"" + item + "\": " + why);
    (key == "services" ? s.services : s.regions) = std::move(*arr);
    return ok_status();
  }
  const auto* str = v.as_string();
  if (str == nullptr) return config_error(kpos, f + " must be a string, not a " + type_name(v));
  const std::string& text = str->get();
  if (auto why = signing_item_problem(key, text); !why.empty()) return config_error(kpos, f + ": " + why);
  (key == "sign" ? s.sign : key == "access_key_id" ? s.access_key_id : key == "format" ? s.format
                                                     : key == "from" ? s.from : s.session_token) = text;
  return ok_status();
}

// refresh = "5m" | "lease", max_stale = "1h" (rotation; config.h).
Status parse_rotation_key(const std::string& key, const toml::node& v, const std::string& file,
                          const std::string& field, SecretSpec& s) {
  const SourcePos kpos = pos_of(v, file);
  const std::string f = field + "." + key;
  const auto* str = v.as_string();
  if (str == nullptr)
    return config_error(kpos, f + " must be a string like \"5m\"" + (key == "refresh" ? " or \"lease\"" : "") +
                                  ", not a " + type_name(v));
  const std::string& text = str->get();
  if (key == "refresh" && text == "lease") {
    s.refresh_lease = true;
    return ok_status();
  }
  const auto d = parse_duration(text);
  if (!d || d->count() == 0)
    return config_error(kpos, f + ": \"" + text + "\" is not a duration (like \"30s\", \"5m\" or \"1h\")" +
                                  (key == "refresh" ? ", nor \"lease\"" : ""));
  if (*d < kMinRefresh)
    return config_error(kpos, f + ": \"" + text + "\" is shorter than the minimum, " +
                                  std::to_string(kMinRefresh.count() / 1000) + "s");
  (key == "refresh" ? s.refresh : s.max_stale) = *d;
  return ok_status();
}

bool https_or_loopback_http(const std::string& url);

bool is_oauth_key(const std::string& key) {
  return key == "kind" || key == "token_url" || key == "client_id" || key == "client_secret" || key == "scopes" ||
         key == "audience" || key == "client_auth" || key == "refresh_skew" || key == "ca_file";
}

// The keys of a minted credential (kind = "oauth2-client-credentials", OAuthClientSpec).
// client_secret = { provider, ref } becomes the secret's own provider and ref.
Status parse_oauth_key(const std::string& key, const toml::node& v, const std::string& file,
                       const std::string& field, SecretSpec& s) {
  const SourcePos kpos = pos_of(v, file);
  const std::string f = field + "." + key;
  if (!s.oauth) s.oauth.emplace();
  OAuthClientSpec& o = *s.oauth;
  if (key == "scopes") {
    auto arr = string_array(v, file, f);
    if (!arr) return arr.take_error();
    for (const auto& sc : *arr)
      for (const char c : sc)
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
          return config_error(kpos, f + ": \"" + sc + "\" is not a scope token (RFC 6749 3.3: printable ASCII, no space, quote or backslash)");
    o.scopes = std::move(*arr);
    return ok_status();
  }
  if (key == "client_secret") {
    const auto* t = v.as_table();
    if (t == nullptr)
      return config_error(kpos, f + " must be a table like { provider = \"vault\", ref = \"secret/data/app#client_secret\" }, not a " + type_name(v));
    for (const auto& [ck, cv] : *t) {
      const std::string k2(ck.str());
      const auto* str = cv.as_string();
      if (k2 != "provider" && k2 != "ref")
        return config_error(pos_of(cv, file), f + ": unknown key \"" + k2 + "\" (known: provider, ref)");
      if (str == nullptr || str->get().empty())
        return config_error(pos_of(cv, file), f + "." + k2 + " must be a non-empty string");
      if (k2 == "provider" && find_provider_spec(str->get()) == nullptr)
        return config_error(pos_of(cv, file), f + ".provider: unknown provider \"" + str->get() + "\" (known: " + provider_names() + ")");
      (k2 == "provider" ? s.provider : s.ref) = str->get();
    }
    if (s.provider.empty() || s.ref.empty()) return config_error(kpos, f + " needs both provider and ref");
    o.has_client_secret = true;
    return ok_status();
  }
  const auto* str = v.as_string();
  if (str == nullptr) return config_error(kpos, f + " must be a string, not a " + type_name(v));
  const std::string& text = str->get();
  if (text.empty()) return config_error(kpos, f + " must not be empty");
  if (key == "kind") {
    if (text != "oauth2-client-credentials")
      return config_error(kpos, f + ": unknown kind \"" + text + "\" (known: oauth2-client-credentials)");
    o.pos = kpos;
  } else if (key == "token_url") {
    if (!https_or_loopback_http(text) || text.find_first_of(" \t\r\n#") != std::string::npos)
      return config_error(kpos, f + " must be an https:// URL without a fragment (http:// only to 127.0.0.1, localhost or [::1])");
    o.token_url = text;
  } else if (key == "client_id") {
    if (text.find_first_of("\r\n") != std::string::npos) return config_error(kpos, f + " must be one line");
    o.client_id = text;
  } else if (key == "audience") {
    o.audience = text;
  } else if (key == "client_auth") {
    if (text != "basic" && text != "post")
      return config_error(kpos, f + " must be \"basic\" (client_secret_basic, the default) or \"post\" (client_secret_post)");
    o.client_auth_post = text == "post";
  } else if (key == "refresh_skew") {
    auto d = parse_duration(text);
    if (!d || *d < std::chrono::seconds(1))
      return config_error(kpos, f + " must be a duration of at least 1s like \"60s\" or \"2m\"");
    o.refresh_skew = std::chrono::duration_cast<std::chrono::seconds>(*d);
  } else {
    o.ca_file = text;
  }
  return ok_status();
}

// A secret with any minted-credential key must be a complete one.
Status check_oauth(SecretSpec& s, const std::string& field) {
  if (!s.oauth) return ok_status();
  const OAuthClientSpec& o = *s.oauth;
  if (o.pos.line == 0)
    return config_error(s.pos, field + ": token_url, client_id, client_secret, scopes, audience, client_auth, "
                                       "refresh_skew and ca_file need kind = \"oauth2-client-credentials\"");
  if (o.token_url.empty()) return config_error(o.pos, field + ": missing required key \"token_url\"");
  if (o.client_id.empty()) return config_error(o.pos, field + ": missing required key \"client_id\"");
  if (!o.has_client_secret)
    return config_error(o.pos, field + ": missing required key \"client_secret\" (a table like { provider = \"env\", ref = \"CLIENT_SECRET\" })");
  if (!s.sign.empty()) return config_error(o.pos, field + ": a minted credential cannot be a signing key (sign)");
  if (!s.mint_hosts.empty()) return config_error(o.pos, field + ".mint_hosts: is for a client secret the agent sends itself, not for a minted credential");
  // A minted token renews itself before it expires (refresh_skew); `refresh` would re-read
  // the client secret into the token's place.
  if (s.refreshes())
    return config_error(o.pos, field + ".refresh: a minted credential renews itself before expiry (refresh_skew), "
                                       "it takes no refresh");
  return ok_status();
}

// approve = true | "first" | "every" | { methods = [...], paths = [...] }; approve_ttl = "10m".
Status parse_approve_key(const std::string& key, const toml::node& v, const std::string& file,
                         const std::string& field, SecretSpec& s) {
  const SourcePos kpos = pos_of(v, file);
  const std::string f = field + "." + key;
  if (key == "approve_ttl") {
    const auto* str = v.as_string();
    auto d = str != nullptr ? parse_duration(str->get()) : std::nullopt;
    if (!d || *d > std::chrono::hours(24) || (d->count() > 0 && d->count() < 1000))
      return config_error(kpos, f + " must be a duration between 1s and 24 hours (\"0\": the rest of the run), e.g. \"10m\" or \"90m\"");
    s.approve.ttl_seconds = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
    return ok_status();
  }
  if (const auto* b = v.as_boolean()) {
    s.approve.mode = b->get() ? ApprovalMode::First : ApprovalMode::None;
    return ok_status();
  }
  if (const auto* str = v.as_string()) {
    if (str->get() == "first") s.approve.mode = ApprovalMode::First;
    else if (str->get() == "every") s.approve.mode = ApprovalMode::Every;
    else return config_error(kpos, f + " must be true, \"first\", \"every\" or { methods = [...], paths = [...] }");
    return ok_status();
  }
  const auto* t = v.as_table();
  if (t == nullptr)
    return config_error(kpos, f + " must be true, \"first\", \"every\" or { methods = [...], paths = [...] }, not a " +
                                  type_name(v));
  s.approve.mode = ApprovalMode::Matching;
  for (const auto& [k, item] : *t) {
    const std::string sub(k.str());
    if (sub != "methods" && sub != "paths")
      return config_error(pos_of(item, file), f + ": unknown key \"" + sub + "\" (known: methods, paths)");
    auto arr = string_array(item, file, f + "." + sub);
    if (!arr) return arr.take_error();
    for (const auto& one : *arr)
      if (std::string problem = binding_item_problem(sub, one); !problem.empty())
        return config_error(pos_of(item, file), f + "." + sub + ": \"" + one + "\": " + problem);
    (sub == "methods" ? s.approve.methods : s.approve.paths) = std::move(*arr);
  }
  if (s.approve.methods.empty() && s.approve.paths.empty())
    return config_error(kpos, f + ": give methods = [...] or paths = [...] (or approve = \"every\")");
  return ok_status();
}

Status parse_secret(const std::string& name, const toml::node& node, const std::string& file,
                    Config& cfg) {
  const SourcePos pos = pos_of(node, file);
  const std::string field = "secrets." + name;
  if (!is_env_name(name))
    return config_error(pos, field + ": not a valid environment variable name (letters, digits, _; not starting with a digit)");
  const auto* t = node.as_table();
  if (t == nullptr)
    return config_error(pos, field + " must be a table like { provider = \"env\", ref = \"NAME\" }, not a " + type_name(node));
  SecretSpec s;
  s.name = name;
  s.pos = pos;
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "provider" || key == "ref") {
      if (s.oauth && !s.provider.empty())
        return config_error(kpos, field + "." + key + ": a minted credential has no provider or ref of its own (its client_secret has)");
      const auto* str = v.as_string();
      if (str == nullptr) return config_error(kpos, field + "." + key + " must be a string, not a " + type_name(v));
      if (str->get().empty()) return config_error(kpos, field + "." + key + " must not be empty");
      (key == "provider" ? s.provider : s.ref) = str->get();
      if (key == "provider" && find_provider_spec(s.provider) == nullptr)
        return config_error(kpos, field + ".provider: unknown provider \"" + s.provider +
                                      "\" (known: " + provider_names() + ")");
    } else if (key == "hosts" || key == "methods" || key == "paths") {
      auto arr = string_array(v, file, field + "." + key);
      if (!arr) return arr.take_error();
      for (const auto& item : *arr) {
        const std::string problem = binding_item_problem(key, item);
        if (!problem.empty())
          return config_error(kpos, field + "." + key + ": \"" + item + "\": " + problem);
      }
      (key == "hosts" ? s.hosts : key == "methods" ? s.methods : s.paths) = std::move(*arr);
    } else if (key == "canary") {
      const auto* b = v.as_boolean();
      if (b == nullptr) return config_error(kpos, field + ".canary must be true or false, not a " + type_name(v));
      s.canary = b->get();
    } else if (key == "shape") {
      const auto* str = v.as_string();
      if (str == nullptr || find_canary_shape(str->get()) == nullptr)
        return config_error(kpos, field + ".shape must be one of " + canary_shape_names());
      s.shape = str->get();
    } else if (key == "approve" || key == "approve_ttl") {
      if (Status st = parse_approve_key(key, v, file, field, s); !st) return st;
    } else if (key == "sign" || key == "access_key_id" || key == "session_token" || key == "services" ||
               key == "regions" || key == "format" || key == "from") {
      if (Status st = parse_signing_key(key, v, file, field, s); !st) return st;
    } else if (key == "refresh" || key == "max_stale") {
      if (Status st = parse_rotation_key(key, v, file, field, s); !st) return st;
    } else if (is_oauth_key(key)) {
      if (key == "client_secret" && (!s.provider.empty() || !s.ref.empty()))
        return config_error(kpos, field + ".client_secret: a minted credential has no provider or ref of its own");
      if (Status st = parse_oauth_key(key, v, file, field, s); !st) return st;
    } else if (key == "mint_hosts") {
      auto arr = string_array(v, file, field + "." + key);
      if (!arr) return arr.take_error();
      for (const auto& item : *arr)
        if (const std::string problem = host_pattern_problem(item); !problem.empty())
          return config_error(kpos, field + ".mint_hosts: \"" + item + "\": " + problem);
      s.mint_hosts = std::move(*arr);
    } else {
      return config_error(kpos, field + ": unknown key \"" + key +
                                    "\" (known: provider, ref, hosts, methods, paths, canary, shape, sign, "
                                    "access_key_id, session_token, services, regions, refresh, max_stale, kind, "
                                    "token_url, client_id, client_secret, scopes, audience, client_auth, "
                                    "refresh_skew, ca_file, mint_hosts, format, from, approve, approve_ttl)");
    }
  }
  if (s.canary) {
    // A decoy has no value anywhere, and nowhere it may go.
    if (!s.provider.empty() || !s.ref.empty() || !s.hosts.empty() || !s.methods.empty() || !s.paths.empty() ||
        s.refreshes())
      return config_error(pos, field + ": a canary has no provider, ref, hosts, methods, paths or refresh (kz makes up its value)");
    cfg.canaries.push_back(std::move(s));
    return ok_status();
  }
  if (!s.shape.empty()) return config_error(pos, field + ".shape is only for canaries (canary = true)");
  if (s.max_stale.count() > 0 && !s.refreshes())
    return config_error(pos, field + ".max_stale needs refresh = \"DURATION\" or \"lease\"");
  // A credential set is split once at start (resolver.cpp); a re-read would put the
  // whole set in the key's place.
  if (s.refreshes() && (!s.format.empty() || !s.from.empty()))
    return config_error(pos, field + ".refresh: a credential set (format, from) is read once; it takes no refresh");
  if (Status st = check_oauth(s, field); !st) return st;
  if (!s.from.empty() && (!s.provider.empty() || !s.ref.empty()))
    return config_error(pos, field + ": from = \"" + s.from + "\" takes the value from that secret's credential set: "
                                     "no provider or ref");
  if (s.from.empty() && s.provider.empty()) return config_error(pos, field + ": missing required key \"provider\"");
  if (s.from.empty() && s.ref.empty()) return config_error(pos, field + ": missing required key \"ref\"");
  if (auto why = signing_problem(s); !why.empty()) return config_error(pos, field + ": " + why);
  if (s.approve.mode != ApprovalMode::None && !s.sign.empty())
    return config_error(pos, field + ": approve is not available for a key kz signs with (sign = \"sigv4\")");
  // Tokens sealed from a token endpoint's answers are new secrets of their own: an
  // approval on the client secret would not follow them.
  if (s.approve.mode != ApprovalMode::None && !s.mint_hosts.empty())
    return config_error(pos, field + ": approve cannot be combined with mint_hosts (the sealed tokens would not "
                                     "wait for approval)");
  if (s.approve.mode == ApprovalMode::None && s.approve.ttl_seconds >= 0)
    return config_error(pos, field + ".approve_ttl needs approve = ...");
  if (s.approve.mode == ApprovalMode::Every && s.approve.ttl_seconds >= 0)
    return config_error(pos, field + ".approve_ttl: approve = \"every\" asks for each request, an approval is "
                                     "never reused (use approve = { methods, paths } for one that lasts)");
  cfg.secrets.push_back(std::move(s));
  return ok_status();
}

// [canary]: on_canary = "audit" | "kill"; names = [...] (more canaries, shaped by name).
Status parse_canary(const toml::node& node, const std::string& file, Config& cfg) {
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), "canary must be a table");
  cfg.canary.pos = pos_of(node, file);
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "on_canary") {
      const auto* s = v.as_string();
      if (s == nullptr || (s->get() != "audit" && s->get() != "kill"))
        return config_error(kpos, "canary.on_canary must be \"audit\" or \"kill\"");
      cfg.canary.kill = s->get() == "kill";
    } else if (key == "names") {
      auto arr = string_array(v, file, "canary.names");
      if (!arr) return arr.take_error();
      for (const auto& n : *arr) {
        if (!is_env_name(n)) return config_error(kpos, "canary.names: \"" + n + "\" is not a valid environment variable name");
        SecretSpec s;
        s.name = n;
        s.pos = kpos;
        s.canary = true;
        cfg.canaries.push_back(std::move(s));
      }
    } else {
      return config_error(kpos, "canary: unknown key \"" + key + "\" (known: on_canary, names)");
    }
  }
  return ok_status();
}

// A name is one secret or one canary, never both, and a canary is declared once.
Status check_canary_names(const Config& cfg) {
  for (std::size_t i = 0; i < cfg.canaries.size(); ++i) {
    const SecretSpec& c = cfg.canaries[i];
    if (cfg.find_secret(c.name) != nullptr)
      return config_error(c.pos, "canary " + c.name + " is also a real secret in [secrets]");
    for (std::size_t j = 0; j < i; ++j)
      if (cfg.canaries[j].name == c.name) return config_error(c.pos, "canary " + c.name + " is declared twice");
  }
  return ok_status();
}

Result<std::string> setting_text(const toml::node& v, SettingType type, const std::string& file,
                                 const std::string& field) {
  const SourcePos p = pos_of(v, file);
  switch (type) {
    case SettingType::String:
    case SettingType::Path:
      if (const auto* s = v.as_string()) return s->get();
      return config_error(p, field + " must be a string, not a " + type_name(v));
    case SettingType::Integer:
      if (const auto* i = v.as_integer()) return std::to_string(i->get());
      return config_error(p, field + " must be an integer, not a " + type_name(v));
    case SettingType::Boolean:
      if (const auto* b = v.as_boolean()) return std::string(b->get() ? "true" : "false");
      return config_error(p, field + " must be true or false, not a " + type_name(v));
  }
  return config_error(p, field + ": unsupported type");
}

Status parse_provider(const std::string& name, const toml::node& node, const std::string& file,
                      Config& cfg) {
  const SourcePos pos = pos_of(node, file);
  const std::string field = "providers." + name;
  const ProviderSpec* spec = find_provider_spec(name);
  if (spec == nullptr)
    return config_error(pos, "[" + field + "]: unknown provider \"" + name + "\" (known: " + provider_names() + ")");
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos, field + " must be a table");
  ProviderConfig pc;
  pc.pos = pos;
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "timeout") {
      std::optional<std::chrono::milliseconds> d;
      if (const auto* s = v.as_string()) d = parse_duration(s->get());
      else if (const auto* i = v.as_integer()) d = std::chrono::milliseconds(i->get() * 1000);
      else if (const auto* f = v.as_floating_point()) d = std::chrono::milliseconds(static_cast<long long>(f->get() * 1000));
      if (!d || d->count() <= 0 || *d > std::chrono::minutes(10))
        return config_error(kpos, field + ".timeout must be a duration between 1ms and 10m, e.g. 10, \"500ms\", \"30s\"");
      pc.timeout = *d;
      continue;
    }
    const SettingSpec* ss = find_setting_spec(*spec, key);
    if (ss == nullptr)
      return config_error(kpos, field + ": unknown key \"" + key + "\" (known: " + setting_keys(*spec) + ")");
    auto text = setting_text(v, ss->type, file, field + "." + key);
    if (!text) return text.take_error();
    pc.settings[key] = SettingValue{std::move(*text), kpos};
  }
  cfg.providers[name] = std::move(pc);
  return ok_status();
}

Status parse_masking(const toml::node& node, const std::string& file, Config& cfg) {
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), "masking must be a table");
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "enabled") {
      const auto* b = v.as_boolean();
      if (b == nullptr) return config_error(kpos, "masking.enabled must be true or false, not a " + std::string(type_name(v)));
      cfg.masking.enabled = b->get();
    } else if (key == "replacement") {
      const auto* s = v.as_string();
      if (s == nullptr) return config_error(kpos, "masking.replacement must be a string, not a " + std::string(type_name(v)));
      cfg.masking.replacement = s->get();
    } else {
      return config_error(kpos, "masking: unknown key \"" + key + "\" (known: enabled, replacement)");
    }
  }
  return ok_status();
}

// [mcp] and [mcp.fetch]: the keys and their checks are in config/mcp_settings.cpp.
Status parse_mcp_table(const toml::node& node, const std::string& file, const std::string& table, Config& cfg) {
  const std::string field = table.empty() ? "mcp" : "mcp." + table;
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), field + " must be a table");
  for (const auto& [k, v] : *t) {
    const std::string key = (table.empty() ? "" : table + ".") + std::string(k.str());
    const SourcePos kpos = pos_of(v, file);
    std::string problem;
    switch (mcp_key_type(key)) {
      case McpKeyType::Table: {
        auto st = parse_mcp_table(v, file, key, cfg);
        if (!st) return st;
        continue;
      }
      case McpKeyType::List: {
        auto arr = string_array(v, file, "mcp." + key);
        if (!arr) return arr.take_error();
        problem = set_mcp_list(cfg.mcp, key, *arr);
        break;
      }
      case McpKeyType::Scalar:
        if (const auto* s = v.as_string()) problem = set_mcp_scalar(cfg.mcp, key, s->get());
        else if (const auto* i = v.as_integer()) problem = set_mcp_scalar(cfg.mcp, key, std::to_string(i->get()));
        else problem = std::string("must be a string or a number, not a ") + type_name(v);
        break;
      case McpKeyType::Unknown:
        return config_error(kpos, field + ": unknown key \"" + std::string(k.str()) + "\" (known: " + mcp_known_keys(table) + ")");
    }
    if (!problem.empty()) return config_error(kpos, "mcp." + key + " " + problem);
  }
  return ok_status();
}

// https://..., or http:// to this host only (127.x, localhost, [::1]).
bool https_or_loopback_http(const std::string& url) {
  if (url.rfind("https://", 0) == 0) return true;
  if (url.rfind("http://", 0) != 0) return false;
  const std::string rest = url.substr(7);
  std::string host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.rfind("[::1]", 0) == 0) host = "[::1]";
  else host = host.substr(0, host.find(':'));
  const bool v4 = host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
  return v4 || host == "localhost" || host == "[::1]";
}

Status parse_audit(const toml::node& node, const std::string& file, Config& cfg) {
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), "audit must be a table");
  auto string_of = [&](const toml::node& v, const SourcePos& kpos, const std::string& key) -> Result<std::string> {
    const auto* s = v.as_string();
    if (s == nullptr || s->get().empty())
      return config_error(kpos, "audit." + key + " must be a non-empty string, not a " + std::string(type_name(v)));
    return s->get();
  };
  auto int_of = [&](const toml::node& v, const SourcePos& kpos, const std::string& key, std::int64_t lo,
                    std::int64_t hi) -> Result<std::int64_t> {
    const auto* i = v.as_integer();
    if (i == nullptr || i->get() < lo || i->get() > hi)
      return config_error(kpos, "audit." + key + " must be an integer from " + std::to_string(lo) + " to " +
                                    std::to_string(hi));
    return i->get();
  };
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "path" || key == "http_url" || key == "http_ca_file" || key == "http_token_env") {
      auto s = string_of(v, kpos, key);
      if (!s) return s.take_error();
      if (key == "path") cfg.audit.path = *s;
      if (key == "http_ca_file") cfg.audit.http_ca_file = *s;
      if (key == "http_url") {
        // Records name secrets, hosts and processes: they leave the machine only over
        // TLS, except to a collector on this host.
        if (!https_or_loopback_http(*s))
          return config_error(kpos, "audit.http_url must be an https:// URL (http:// only to 127.0.0.1, localhost or [::1])");
        cfg.audit.http_url = *s;
        cfg.audit.http_url_pos = kpos;
      }
      if (key == "http_token_env") {
        if (!is_env_name(*s))
          return config_error(kpos, "audit.http_token_env must name an environment variable (the token itself "
                                    "never goes in this file)");
        cfg.audit.http_token_env = *s;
        cfg.audit.http_token_env_pos = kpos;
      }
    } else if (key == "syslog") {
      const auto* b = v.as_boolean();
      if (b == nullptr) return config_error(kpos, "audit.syslog must be true or false, not a " + std::string(type_name(v)));
      cfg.audit.syslog = b->get();
    } else if (key == "http_batch") {
      auto n = int_of(v, kpos, key, 1, 10000);
      if (!n) return n.take_error();
      cfg.audit.http_batch = static_cast<std::size_t>(*n);
    } else if (key == "http_flush_ms") {
      auto n = int_of(v, kpos, key, 1, 600000);
      if (!n) return n.take_error();
      cfg.audit.http_flush = std::chrono::milliseconds(*n);
    } else if (key == "queue") {
      auto n = int_of(v, kpos, key, 1, 10000000);
      if (!n) return n.take_error();
      cfg.audit.queue_max = static_cast<std::size_t>(*n);
    } else {
      return config_error(kpos, "audit: unknown key \"" + key +
                                    "\" (known: path, syslog, http_url, http_ca_file, http_token_env, http_batch, "
                                    "http_flush_ms, queue)");
    }
  }
  const bool http_only = !cfg.audit.http_ca_file.empty() || !cfg.audit.http_token_env.empty();
  if (cfg.audit.http_url.empty() && http_only)
    return config_error(pos_of(node, file), "audit: http_ca_file and http_token_env need http_url");
  return ok_status();
}

Status parse_server(const toml::node& node, const std::string& file, Config& cfg) {
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), "server must be a table");
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key != "url" && key != "ca_file" && key != "identity_token_file")
      return config_error(kpos, "server: unknown key \"" + key + "\" (known: url, ca_file, identity_token_file)");
    const auto* str = v.as_string();
    if (str == nullptr || str->get().empty())
      return config_error(kpos, "server." + key + " must be a non-empty string, not a " + std::string(type_name(v)));
    const std::string val = str->get();
    if (key == "url") {
      // Values come back over this connection: TLS, except to a PDP on this host.
      if (!https_or_loopback_http(val))
        return config_error(kpos, "server.url must be an https:// URL (http:// only to 127.0.0.1, localhost or [::1])");
      cfg.server.url = val;
      cfg.server.url_pos = kpos;
    } else if (key == "ca_file") {
      cfg.server.ca_file = val;
    } else {
      cfg.server.identity_token_file = val;
    }
  }
  return ok_status();
}

Status parse_blind(const toml::node& node, const std::string& file, Config& cfg) {
  const auto* t = node.as_table();
  if (t == nullptr) return config_error(pos_of(node, file), "blind must be a table");
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const SourcePos kpos = pos_of(v, file);
    if (key == "reuse") {
      const auto* r = v.as_string();
      if (r == nullptr || (r->get() != "connection" && r->get() != "request"))
        return config_error(kpos, "blind.reuse must be \"connection\" or \"request\"");
      cfg.blind.grant_connections = r->get() == "connection";
      continue;
    }
    if (key == "proxy_ports") {
      const auto* arr = v.as_array();
      if (arr == nullptr) return config_error(kpos, "blind.proxy_ports must be an array of port numbers");
      for (const auto& e : *arr) {
        const auto* n = e.as_integer();
        if (n == nullptr || n->get() < 1 || n->get() > 65535)
          return config_error(pos_of(e, file), "blind.proxy_ports: each entry must be a port number 1-65535");
        cfg.blind.proxy_ports.push_back(static_cast<std::uint16_t>(n->get()));
      }
      continue;
    }
    if (key == "redirector") {
      const auto* r = v.as_string();
      if (r == nullptr || (r->get() != "auto" && r->get() != "ebpf" && r->get() != "seccomp" && r->get() != "off"))
        return config_error(kpos, "blind.redirector must be \"auto\", \"ebpf\", \"seccomp\" or \"off\"");
      cfg.blind.redirector = r->get();
      continue;
    }
    if (key == "mode") {
      const auto* m = v.as_string();
      if (m == nullptr || (m->get() != "shim" && m->get() != "proxy"))
        return config_error(kpos, "blind.mode must be \"shim\" or \"proxy\"");
      cfg.blind.mode = m->get();
      continue;
    }
    if (key == "token_shape") {
      const auto* m = v.as_string();
      if (m == nullptr || (m->get() != "auto" && m->get() != "plain"))
        return config_error(kpos, "blind.token_shape must be \"auto\" or \"plain\"");
      cfg.blind.token_shape = m->get();
      continue;
    }
    if (key == "http2") {
      const auto* b = v.as_boolean();
      if (b == nullptr) return config_error(kpos, "blind.http2 must be true or false");
      cfg.blind.http2 = b->get();
      continue;
    }
    if (key != "ca_file")
      return config_error(kpos, "blind: unknown key \"" + key +
                                    "\" (known: ca_file, reuse, proxy_ports, redirector, mode, token_shape, http2)");
    const auto* s = v.as_string();
    if (s == nullptr || s->get().empty())
      return config_error(kpos, "blind.ca_file must be a non-empty string, not a " + std::string(type_name(v)));
    cfg.blind.ca_file = s->get();
  }
  return ok_status();
}

// "~/x" → $HOME/x; relative → relative to the config file's directory.
std::string config_relative(const std::string& p, const std::string& dir) {
  if (p.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return std::string(home != nullptr ? home : "") + p.substr(1);
  }
  return p[0] == '/' ? p : dir + "/" + p;
}

}  // namespace

const SecretSpec* Config::find_secret(const std::string& name) const {
  for (const auto& s : secrets)
    if (s.name == name) return &s;
  return nullptr;
}

bool is_env_name(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::size_t idx = 0;
  double n = 0;
  try {
    n = std::stod(s, &idx);
  } catch (...) {
    return std::nullopt;
  }
  const std::string unit = s.substr(idx);
  double ms;
  if (unit.empty() || unit == "s") ms = n * 1000;
  else if (unit == "ms") ms = n;
  else if (unit == "m") ms = n * 60000;
  else if (unit == "h") ms = n * 3600000;
  else return std::nullopt;
  if (!(ms >= 0) || ms > 1e15) return std::nullopt;   // negative, NaN, or past any use
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

std::optional<std::string> find_config_file(const std::string& start_dir) {
  std::error_code ec;
  fs::path dir = fs::absolute(start_dir, ec);
  if (ec) return std::nullopt;
  while (true) {
    fs::path cand = dir / kConfigFileName;
    if (fs::is_regular_file(cand, ec)) return cand.string();
    if (!dir.has_parent_path() || dir.parent_path() == dir) return std::nullopt;
    dir = dir.parent_path();
  }
}

Result<Config> load_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Config, path + ": cannot read configuration file");
  std::stringstream ss;
  ss << f.rdbuf();
  std::error_code ec;
  return parse_config(ss.str(), fs::absolute(path, ec).lexically_normal().string());
}

Result<Config> parse_config(const std::string& text, const std::string& path) {
  Config cfg;
  cfg.path = path;
  cfg.dir = fs::path(path).parent_path().string();
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    SourcePos p{path, static_cast<int>(src.begin.line), static_cast<int>(src.begin.column)};
    std::string msg(e.description());
    if (msg.find("redefine existing") != std::string::npos) msg += " (duplicate name)";
    return config_error(p, msg);
  }
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "secrets") {
      const auto* t = v.as_table();
      if (t == nullptr) return config_error(pos_of(v, path), "secrets must be a table");
      for (const auto& [name, node] : *t) {
        auto st = parse_secret(std::string(name.str()), node, path, cfg);
        if (!st) return st.take_error();
      }
      const SecretSpec* where = nullptr;
      if (auto why = link_signing_secrets(cfg.secrets, &where); !why.empty())
        return config_error(where->pos, why + " in [secrets]");
    } else if (key == "providers") {
      const auto* t = v.as_table();
      if (t == nullptr) return config_error(pos_of(v, path), "providers must be a table of [providers.NAME] sections");
      for (const auto& [name, node] : *t) {
        auto st = parse_provider(std::string(name.str()), node, path, cfg);
        if (!st) return st.take_error();
      }
    } else if (key == "masking") {
      auto st = parse_masking(v, path, cfg);
      if (!st) return st.take_error();
    } else if (key == "audit") {
      auto st = parse_audit(v, path, cfg);
      if (!st) return st.take_error();
    } else if (key == "server") {
      auto st = parse_server(v, path, cfg);
      if (!st) return st.take_error();
    } else if (key == "blind") {
      auto st = parse_blind(v, path, cfg);
      if (!st) return st.take_error();
    } else if (key == "mcp") {
      auto st = parse_mcp_table(v, path, "", cfg);
      if (!st) return st.take_error();
    } else if (key == "canary") {
      auto st = parse_canary(v, path, cfg);
      if (!st) return st.take_error();
    } else {
      return config_error(pos_of(v, path), "unknown section \"" + key + "\" (known: secrets, providers, masking, audit, blind, server, mcp, canary)");
    }
  }
  if (auto st = check_canary_names(cfg); !st) return st.take_error();
  if (!cfg.audit.path.empty()) cfg.audit.path = config_relative(cfg.audit.path, cfg.dir);
  if (!cfg.audit.http_ca_file.empty()) cfg.audit.http_ca_file = config_relative(cfg.audit.http_ca_file, cfg.dir);
  if (!cfg.blind.ca_file.empty()) cfg.blind.ca_file = config_relative(cfg.blind.ca_file, cfg.dir);
  if (!cfg.server.ca_file.empty()) cfg.server.ca_file = config_relative(cfg.server.ca_file, cfg.dir);
  if (!cfg.mcp.fetch.ca_file.empty()) cfg.mcp.fetch.ca_file = config_relative(cfg.mcp.fetch.ca_file, cfg.dir);
  for (SecretSpec& s : cfg.secrets)
    if (s.oauth && !s.oauth->ca_file.empty()) s.oauth->ca_file = config_relative(s.oauth->ca_file, cfg.dir);
  if (!cfg.mcp.replicas.deny_list.empty()) cfg.mcp.replicas.deny_list = config_relative(cfg.mcp.replicas.deny_list, cfg.dir);
  if (!cfg.server.identity_token_file.empty())
    cfg.server.identity_token_file = config_relative(cfg.server.identity_token_file, cfg.dir);
  // toml++ iterates tables in key order; keep the declaration order for output.
  const auto by_position = [](const SecretSpec& a, const SecretSpec& b) {
    return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
  };
  std::stable_sort(cfg.secrets.begin(), cfg.secrets.end(), by_position);
  std::stable_sort(cfg.canaries.begin(), cfg.canaries.end(), by_position);
  return cfg;
}

}  // namespace kz
