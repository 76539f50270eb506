#include "run/child_env.h"

#include <cstring>
#include <fstream>
#include <map>

#include "config/config.h"

namespace kz {

namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

Result<std::string> unquote(const std::string& raw, const SourcePos& pos) {
  if (raw.empty()) return raw;
  const char q = raw[0];
  if (q != '"' && q != '\'') {
    auto hash = raw.find(" #");
    return trim(hash == std::string::npos ? raw : raw.substr(0, hash));
  }
  std::string out;
  for (std::size_t i = 1; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == q) {
      std::string rest = trim(raw.substr(i + 1));
      if (!rest.empty() && rest[0] != '#')
        return make_error(ErrorKind::Config, format_pos(pos) + ": unexpected text after closing quote");
      return out;
    }
    if (q == '"' && c == '\\' && i + 1 < raw.size()) {
      char n = raw[++i];
      out += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
      continue;
    }
    out += c;
  }
  return make_error(ErrorKind::Config, format_pos(pos) + ": unterminated quoted value");
}

}  // namespace

Result<std::vector<EnvVar>> parse_env_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error(ErrorKind::Config, path + ": cannot read env file");
  std::vector<EnvVar> out;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.rfind("export ", 0) == 0) t = trim(t.substr(7));
    SourcePos pos{path, lineno, 0};
    auto eq = t.find('=');
    if (eq == std::string::npos)
      return make_error(ErrorKind::Config, format_pos(pos) + ": expected NAME=VALUE");
    std::string name = trim(t.substr(0, eq));
    if (!is_env_name(name))
      return make_error(ErrorKind::Config, format_pos(pos) + ": \"" + name + "\" is not a valid variable name");
    auto value = unquote(trim(t.substr(eq + 1)), pos);
    if (!value) return value.take_error();
    out.push_back(EnvVar{name, std::move(*value), pos});
  }
  return out;
}

const std::vector<std::string>& clean_env_base() {
  static const std::vector<std::string> base = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM"};
  return base;
}

std::vector<std::string> provider_credential_vars(const std::vector<std::string>& providers_used) {
  std::vector<std::string> out;
  for (const auto& p : providers_used) {
    if (p == "vault") out.insert(out.end(), {"VAULT_TOKEN"});
    if (p == "aws-sm") out.insert(out.end(), {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"});
    if (p == "1password") out.insert(out.end(), {"OP_SERVICE_ACCOUNT_TOKEN", "OP_CONNECT_TOKEN", "OP_SESSION_*"});
  }
  return out;
}

const char* EnvBlock::get(const std::string& name) const {
  for (char* const* p = ptrs_.data(); *p != nullptr; ++p)
    if (std::strncmp(*p, name.c_str(), name.size()) == 0 && (*p)[name.size()] == '=') return *p + name.size() + 1;
  return nullptr;
}

void EnvBlock::wipe() {
  SecretValue empty;
  storage_ = std::move(empty);   // SecretValue wipes on release
  ptrs_.assign(1, nullptr);
}

EnvBlock build_child_env(char** parent, const ChildEnvOptions& opts,
                         const std::vector<ResolvedSecret>& secrets) {
  // Order: inherited (filtered), then plain, then secrets; later entries replace earlier.
  std::vector<std::pair<std::string_view, std::string_view>> entries;
  std::map<std::string_view, std::size_t> index;
  auto put = [&](std::string_view k, std::string_view v) {
    auto it = index.find(k);
    if (it != index.end()) entries[it->second].second = v;
    else { index[k] = entries.size(); entries.emplace_back(k, v); }
  };
  for (char** e = parent; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = kv.substr(0, eq);
    bool kept = false;
    for (const auto& n : opts.keep) kept = kept || k == n;
    bool dropped = false;
    for (const auto& d : opts.drop) {
      if (!d.empty() && d.back() == '*') dropped = dropped || k.substr(0, d.size() - 1) == std::string_view(d).substr(0, d.size() - 1);
      else dropped = dropped || k == d;
    }
    if (dropped && !kept) continue;
    if (opts.clean) {
      bool keep = false;
      for (const auto& n : clean_env_base()) keep = keep || k == n;
      for (const auto& n : opts.keep) keep = keep || k == n;
      if (!keep) continue;
    }
    put(k, kv.substr(eq + 1));
  }
  for (const auto& v : opts.plain) put(v.name, v.value);
  for (const auto& s : secrets) put(s.name, s.value.view());

  std::size_t total = 0;
  for (const auto& [k, v] : entries) total += k.size() + v.size() + 2;
  EnvBlock b;
  b.storage_ = SecretValue::allocate(total, /*forkable=*/true);
  char* p = b.storage_.data();
  for (const auto& [k, v] : entries) {
    b.ptrs_.push_back(p);
    std::memcpy(p, k.data(), k.size());
    p += k.size();
    *p++ = '=';
    std::memcpy(p, v.data(), v.size());
    p += v.size();
    *p++ = '\0';
  }
  b.ptrs_.push_back(nullptr);
  return b;
}

}  // namespace kz
