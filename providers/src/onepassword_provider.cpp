// 1password: 1Password secret references, through the `op` CLI or a 1Password Connect server.
//
// Ref syntax (1Password secret references):
//     op://VAULT/ITEM/FIELD
//     op://VAULT/ITEM/SECTION/FIELD
//   VAULT, ITEM, SECTION and FIELD are names (labels/titles) or IDs.
//
// Modes:
//   Connect  when `connect_host` (or OP_CONNECT_HOST) is set: REST calls with the token from
//            `connect_token_file` (or OP_CONNECT_TOKEN), verified with `ca_cert`.
//   CLI      otherwise: `op read --no-newline [--account ACCOUNT] REF`. OP_SERVICE_ACCOUNT_TOKEN
//            from the environment is passed to it.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <vector>

#include "kz/providers/http_client.h"
#include "kz/providers/json_util.h"
#include "kz/providers/registry.h"
#include "kz/providers/subprocess.h"

namespace kz {
namespace {

constexpr const char* kName = "1password";
constexpr const char* kRefForm = "op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD";




std::string quote_filter(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

bool looks_like_id(const std::string& s) {
  if (s.size() != 26) return false;
  for (unsigned char c : s)
    if (!std::islower(c) && !std::isdigit(c)) return false;
  return true;
}

std::string resolve_path(const std::string& v, const ProviderContext& ctx) {
  if (v.empty()) return {};
  std::string p = expand_home(v, ctx.home);
  if (p[0] != '/' && !ctx.config_dir.empty()) p = ctx.config_dir + "/" + p;
  return p;
}

struct ParsedRef {
  std::string vault, item, section, field;
};

Result<ParsedRef> parse_ref(const std::string& ref, const std::string& prefix) {
  const std::string scheme = "op://";
  auto bad = [&] {
    return make_error(ErrorKind::Config, prefix + ": expected a secret reference " + kRefForm);
  };
  if (ref.rfind(scheme, 0) != 0) return bad();
  std::vector<std::string> segs;
  std::string rest = ref.substr(scheme.size());
  size_t i = 0;
  while (i <= rest.size()) {
    size_t j = rest.find('/', i);
    if (j == std::string::npos) j = rest.size();
    segs.push_back(rest.substr(i, j - i));
    i = j + 1;
  }
  if (segs.size() != 3 && segs.size() != 4) return bad();
  for (const auto& s : segs)
    if (s.empty()) return bad();
  ParsedRef out;
  out.vault = segs[0];
  out.item = segs[1];
  if (segs.size() == 4) {
    out.section = segs[2];
    out.field = segs[3];
  } else {
    out.field = segs[2];
  }
  return out;
}

// ------------------------------------------------------------------ CLI mode

class OpCliProvider final : public Provider {
 public:
  OpCliProvider(std::string op_path, std::string account, SecretValue sa_token)
      : op_(std::move(op_path)), account_(std::move(account)), sa_token_(std::move(sa_token)) {}

  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    const std::string prefix = std::string(kName) + " (" + ref.name + ", ref '" + ref.ref + "')";
    auto parsed = parse_ref(ref.ref, prefix);
    if (!parsed) return parsed.take_error();
    SubprocessOptions opts;
    opts.argv = {op_, "read", "--no-newline"};
    if (!account_.empty()) opts.argv.insert(opts.argv.end(), {"--account", account_});
    opts.argv.push_back(ref.ref);
    if (!sa_token_.empty())
      opts.extra_env.emplace_back("OP_SERVICE_ACCOUNT_TOKEN", std::string(sa_token_.view()));
    auto r = run_subprocess(opts, deadline, prefix + ": op read");
    for (auto& [k, v] : opts.extra_env) wipe(v);
    if (!r) {
      Error e = r.take_error();
      redact(e.message, sa_token_.view());
      return e;
    }
    if (r->term_signal != 0)
      return make_error(ErrorKind::Io, prefix + ": op killed by signal " + std::to_string(r->term_signal));
    if (r->exit_code != 0) {
      std::string line = first_line(r->err);
      redact(line, sa_token_.view());
      ErrorKind kind = ErrorKind::Io;
      std::string lower;
      for (char c : line) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (lower.find("signed in") != std::string::npos ||
          lower.find("signin") != std::string::npos ||
          lower.find("unauthorized") != std::string::npos ||
          lower.find("authentication") != std::string::npos ||
          lower.find("invalid token") != std::string::npos ||
          lower.find("forbidden") != std::string::npos)
        kind = ErrorKind::Denied;
      else if (lower.find("could not read secret") != std::string::npos ||
               lower.find("isn't an item") != std::string::npos ||
               lower.find("isn't a vault") != std::string::npos ||
               lower.find("not found") != std::string::npos ||
               lower.find("no item") != std::string::npos)
        kind = ErrorKind::NotFound;
      std::string msg = prefix + ": op exited with status " + std::to_string(r->exit_code);
      if (!line.empty()) msg += ": " + line;
      return make_error(kind, msg);
    }
    auto v = SecretValue::from(r->out.str());
    v.trim_trailing_newline();
    return v;
  }

 private:
  std::string op_;
  std::string account_;
  SecretValue sa_token_;
};

// ------------------------------------------------------------------ Connect mode

class ConnectProvider final : public Provider {
 public:
  ConnectProvider(std::string host, SecretValue token, std::string token_source, std::string ca)
      : host_(std::move(host)), token_(std::move(token)), token_source_(std::move(token_source)),
        ca_(std::move(ca)) {}

  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    const std::string prefix = std::string(kName) + " (" + ref.name + ", ref '" + ref.ref + "')";
    auto parsed = parse_ref(ref.ref, prefix);
    if (!parsed) return parsed.take_error();
    const ParsedRef& pr = *parsed;
    if (Clock::now() >= deadline)
      return make_error(ErrorKind::Timeout, prefix + ": deadline passed before the request");

    auto vid = find_id("/v1/vaults?filter=" + uri_encode("name eq " + quote_filter(pr.vault), false),
                       "vault", pr.vault, deadline, prefix);
    if (!vid) return vid.take_error();
    auto iid = find_id("/v1/vaults/" + uri_encode(*vid, false) + "/items?filter=" +
                           uri_encode("title eq " + quote_filter(pr.item), false),
                       "item", pr.item, deadline, prefix);
    if (!iid) return iid.take_error();

    auto resp = get("/v1/vaults/" + uri_encode(*vid, false) + "/items/" + uri_encode(*iid, false), deadline, prefix);
    if (!resp) return resp.take_error();
    auto body = parse_json_body(resp->body.str(), prefix + ": Connect item response");
    if (!body) return body.take_error();
    ScrubbedJson doc(std::move(*body));
    return pick_field(doc.get(), pr, prefix);
  }

 private:
  Result<HttpResponse> get(const std::string& path, Deadline deadline, const std::string& prefix) {
    HttpRequest req;
    req.method = "GET";
    req.url = host_ + path;
    req.headers = {{"Authorization", "Bearer " + std::string(token_.view())},
                   {"Accept", "application/json"}};
    req.ca_file = ca_;
    req.deadline = deadline;
    const std::string what = prefix + ": GET " + path.substr(0, path.find('?')) + " at " + host_;
    auto resp = http_send(std::move(req), what);
    if (!resp) {
      Error e = resp.take_error();
      redact(e.message, token_.view());
      return e;
    }
    if (resp->status != 200) return map_error(*resp, what);
    return resp;
  }

  Error map_error(HttpResponse& resp, const std::string& what) const {
    std::string message;
    auto j = nlohmann::json::parse(resp.body.str(), nullptr, false);
    if (j.is_object()) {
      auto it = j.find("message");
      if (it != j.end() && it->is_string()) message = *it;
    }
    wipe_json(j);
    std::string msg = what + ": HTTP " + std::to_string(resp.status);
    if (!message.empty()) msg += ": \"" + sanitize_message(message) + "\"";
    ErrorKind kind = ErrorKind::Protocol;
    if (resp.status == 401 || resp.status == 403) {
      kind = ErrorKind::Denied;
      msg += " (token from " + token_source_ + ")";
    } else if (resp.status == 404) {
      kind = ErrorKind::NotFound;
    } else if (resp.status >= 500) {
      kind = ErrorKind::Network;
    }
    redact(msg, token_.view());
    return make_error(kind, msg);
  }

  // List with a filter and return the single match's id.
  Result<std::string> find_id(const std::string& path, const char* kind, const std::string& name,
                              Deadline deadline, const std::string& prefix) {
    auto resp = get(path, deadline, prefix);
    if (!resp) return resp.take_error();
    auto body = parse_json_body(resp->body.str(), prefix + ": Connect " + kind + " list");
    if (!body) return body.take_error();
    ScrubbedJson doc(std::move(*body));
    nlohmann::json& j = doc.get();
    if (!j.is_array())
      return make_error(ErrorKind::Protocol, prefix + ": Connect " + kind + " list is not a JSON array");
    if (j.empty()) {
      if (looks_like_id(name)) return name;
      return make_error(ErrorKind::NotFound, prefix + ": no " + kind + " named '" + name + "'");
    }
    if (j.size() > 1)
      return make_error(ErrorKind::NotFound, prefix + ": " + std::to_string(j.size()) + " " + kind +
                                                 "s are named '" + name + "'; use the " + kind +
                                                 " ID instead");
    const auto& e = j[0];
    if (!e.is_object() || !e.contains("id") || !e["id"].is_string())
      return make_error(ErrorKind::Protocol, prefix + ": Connect " + kind + " list entry has no id");
    return e["id"].get<std::string>();
  }

  Result<SecretValue> pick_field(nlohmann::json& item, const ParsedRef& pr, const std::string& prefix) {
    if (!item.is_object())
      return make_error(ErrorKind::Protocol, prefix + ": Connect item is not a JSON object");
    std::vector<std::string> section_ids;
    if (!pr.section.empty()) {
      auto secs = item.find("sections");
      if (secs != item.end() && secs->is_array())
        for (const auto& s : *secs) {
          if (!s.is_object() || !s.contains("id") || !s["id"].is_string()) continue;
          const std::string id = s["id"];
          bool match = id == pr.section;
          if (auto l = s.find("label"); l != s.end() && l->is_string() && *l == pr.section) match = true;
          if (match) section_ids.push_back(id);
        }
      if (section_ids.empty())
        return make_error(ErrorKind::NotFound, prefix + ": item has no section '" + pr.section + "'");
    }
    auto fields = item.find("fields");
    if (fields == item.end() || !fields->is_array())
      return make_error(ErrorKind::Protocol, prefix + ": Connect item has no fields array");
    std::vector<const nlohmann::json*> matches;
    std::string labels;
    for (const auto& f : *fields) {
      if (!f.is_object()) continue;
      std::string label, id;
      if (auto l = f.find("label"); l != f.end() && l->is_string()) label = *l;
      if (auto i = f.find("id"); i != f.end() && i->is_string()) id = *i;
      std::string sec;
      if (auto s = f.find("section"); s != f.end() && s->is_object())
        if (auto si = s->find("id"); si != s->end() && si->is_string()) sec = *si;
      if (!pr.section.empty() &&
          std::find(section_ids.begin(), section_ids.end(), sec) == section_ids.end())
        continue;
      std::string shown = label.empty() ? id : label;
      if (!shown.empty()) labels += (labels.empty() ? "" : ", ") + shown;
      if (label == pr.field || id == pr.field) matches.push_back(&f);
    }
    if (matches.empty())
      return make_error(ErrorKind::NotFound, prefix + ": item has no field '" + pr.field + "'" +
                                                 (pr.section.empty() ? "" : " in section '" + pr.section + "'") +
                                                 " (fields: " + (labels.empty() ? "(none)" : labels) + ")");
    if (matches.size() > 1)
      return make_error(ErrorKind::NotFound, prefix + ": item has " + std::to_string(matches.size()) +
                                                 " fields named '" + pr.field +
                                                 "'; add the section (op://VAULT/ITEM/SECTION/FIELD) "
                                                 "or use the field ID");
    const nlohmann::json& f = *matches[0];
    auto v = f.find("value");
    if (v == f.end() || v->is_null())
      return make_error(ErrorKind::NotFound, prefix + ": field '" + pr.field + "' has no value");
    if (v->is_string()) return SecretValue::from(v->get_ref<const std::string&>());
    ScrubbedString text(v->dump());
    return SecretValue::from(text.str());
  }

  std::string host_;
  SecretValue token_;
  std::string token_source_;
  std::string ca_;
};

Result<SecretValue> read_token_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorKind::Config, what + ": cannot read " + path);
  ScrubbedString buf;
  buf.str().assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::string& s = buf.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  if (b == s.size()) return make_error(ErrorKind::Config, what + ": " + path + " is empty");
  return SecretValue::from(std::string_view(s).substr(b));
}

Result<std::unique_ptr<Provider>> make_onepassword(const ProviderSettings& s, const ProviderContext& ctx) {
  const Environment& env = *ctx.env;
  std::string host = setting_or_env(s, "connect_host", env, {"OP_CONNECT_HOST"});
  if (!host.empty()) {
    while (!host.empty() && host.back() == '/') host.pop_back();
    if (host.rfind("https://", 0) != 0 && host.rfind("http://", 0) != 0) {
      const auto* v = find_setting(s, "connect_host");
      return make_error(ErrorKind::Config, (v ? format_pos(v->pos) + ": " : std::string()) +
                                               "1password: connect_host '" + host +
                                               "' must start with https:// or http://");
    }
    SecretValue token;
    std::string source;
    if (const auto* v = find_setting(s, "connect_token_file"); v && !v->text.empty()) {
      std::string p = resolve_path(v->text, ctx);
      auto t = read_token_file(p, format_pos(v->pos) + ": 1password: connect_token_file");
      if (!t) return t.take_error();
      token = std::move(*t);
      source = "connect_token_file " + p;
    } else if (const char* e = env.get("OP_CONNECT_TOKEN"); e && *e) {
      token = SecretValue::from(e);
      source = "OP_CONNECT_TOKEN";
    } else {
      return make_error(ErrorKind::Config,
                        "1password: Connect mode (connect_host " + host + ") needs a token: set "
                        "`connect_token_file` in [providers.1password] or OP_CONNECT_TOKEN");
    }
    std::string ca;
    if (const auto* v = find_setting(s, "ca_cert"); v && !v->text.empty()) ca = resolve_path(v->text, ctx);
    return std::unique_ptr<Provider>(
        std::make_unique<ConnectProvider>(host, std::move(token), source, ca));
  }
  std::string op = "op";
  if (const auto* v = find_setting(s, "op_path"); v && !v->text.empty()) {
    op = v->text;
    if (op.find('/') != std::string::npos) op = resolve_path(op, ctx);
  }
  std::string account;
  if (const auto* v = find_setting(s, "account")) account = v->text;
  SecretValue sa;
  if (const char* e = env.get("OP_SERVICE_ACCOUNT_TOKEN"); e && *e) sa = SecretValue::from(e);
  return std::unique_ptr<Provider>(std::make_unique<OpCliProvider>(op, account, std::move(sa)));
}

}  // namespace

ProviderSpec onepassword_provider_spec() {
  return {kName,
          {
              {"connect_host", SettingType::String,
               "1Password Connect server URL; when set (or OP_CONNECT_HOST), secrets are read "
               "from Connect instead of the op CLI"},
              {"connect_token_file", SettingType::Path,
               "file holding the Connect access token (default: OP_CONNECT_TOKEN)"},
              {"op_path", SettingType::String,
               "the 1Password CLI to run in CLI mode (default \"op\", looked up in PATH)"},
              {"account", SettingType::String,
               "account passed to `op read --account` (sign-in address or account ID)"},
              {"ca_cert", SettingType::Path,
               "PEM CA bundle to verify the Connect server (default: the system trust store)"},
          },
          make_onepassword};
}

}  // namespace kz
