#include "kz/providers/aws_credentials.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "kz/wipe.h"

namespace kz::aws {

namespace {

std::string_view trim_view(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string env_or_empty(const Environment& env, const char* name) {
  const char* v = env.get(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string first_env(const Environment& env, std::initializer_list<const char*> names,
                      std::string* which = nullptr) {
  for (const char* n : names) {
    const char* v = env.get(n);
    if (v != nullptr && *v != '\0') {
      if (which != nullptr) *which = n;
      return v;
    }
  }
  return {};
}

}  // namespace

ProfileFile::~ProfileFile() {
  for (auto& [name, kv] : sections_)
    for (auto& [k, v] : kv) wipe(v);
}

ProfileFile ProfileFile::parse(const std::string& text, bool is_config_file) {
  ProfileFile pf;
  pf.exists = true;
  std::string current;
  bool in_section = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    // Lines are not copied: the file holds secret keys, and only the values we keep are.
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    // Indented lines belong to a nested block (e.g. "s3 =\n  max_concurrent_requests=…").
    const bool indented = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    std::string_view t = trim_view(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      auto close = t.find(']');
      std::string name(trim_view(t.substr(1, close == std::string_view::npos ? std::string_view::npos
                                                                               : close - 1)));
      if (is_config_file && name.rfind("profile ", 0) == 0) {
        name = std::string(trim_view(std::string_view(name).substr(8)));
      } else if (is_config_file && name != "default" && name.find(' ') != std::string::npos) {
        in_section = false;   // [sso-session x], [services x]: not a profile
        continue;
      }
      current = name;
      in_section = true;
      pf.sections_[current];
      continue;
    }
    if (!in_section || indented) continue;
    auto eq = t.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key(trim_view(t.substr(0, eq)));
    auto& slot = pf.sections_[current][key];
    wipe(slot);
    slot.assign(trim_view(t.substr(eq + 1)));
  }
  return pf;
}

Result<ProfileFile> ProfileFile::load(const std::string& path, bool is_config_file) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return ProfileFile{};
    return make_error(ErrorKind::Io, "cannot read " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorKind::Io, path + " is not a regular file");
  if (st.st_size > (1 << 20)) return make_error(ErrorKind::Io, path + " is too large");
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Io, "cannot open " + path);
  ScrubbedString text;
  text.str().resize(static_cast<size_t>(st.st_size));
  f.read(text.str().data(), st.st_size);
  text.str().resize(static_cast<size_t>(f.gcount()));
  return parse(text.str(), is_config_file);
}

const std::string* ProfileFile::get(const std::string& profile, const std::string& key) const {
  auto s = sections_.find(profile);
  if (s == sections_.end()) return nullptr;
  auto k = s->second.find(key);
  if (k == s->second.end() || k->second.empty()) return nullptr;
  return &k->second;
}

bool ProfileFile::has_profile(const std::string& profile) const {
  return sections_.count(profile) != 0;
}

std::string credentials_file_path(const Environment& env, const std::string& home) {
  std::string p = first_env(env, {"AWS_SHARED_CREDENTIALS_FILE"});
  return p.empty() ? home + "/.aws/credentials" : expand_home(p, home);
}

std::string config_file_path(const Environment& env, const std::string& home) {
  std::string p = first_env(env, {"AWS_CONFIG_FILE"});
  return p.empty() ? home + "/.aws/config" : expand_home(p, home);
}

std::string default_secretsmanager_endpoint(const std::string& region) {
  return "https://secretsmanager." + region + ".amazonaws.com";
}

Result<Resolved> resolve(const Inputs& in, const Environment& env, const std::string& home,
                         const std::string& what) {
  Resolved out;
  std::string profile_src = "from the `profile` setting";
  out.profile = in.profile_setting;
  if (out.profile.empty()) {
    out.profile = first_env(env, {"AWS_PROFILE"});
    profile_src = "from AWS_PROFILE";
  }
  if (out.profile.empty()) {
    out.profile = "default";
    profile_src = "AWS_PROFILE not set";
  }

  const std::string cred_path = credentials_file_path(env, home);
  const std::string conf_path = config_file_path(env, home);
  auto creds_file = ProfileFile::load(cred_path, false);
  if (!creds_file) return make_error(ErrorKind::Config, what + ": " + creds_file.error().message);
  auto conf_file = ProfileFile::load(conf_path, true);
  if (!conf_file) return make_error(ErrorKind::Config, what + ": " + conf_file.error().message);

  // An explicitly named profile must exist somewhere.
  if (profile_src != "AWS_PROFILE not set" && !creds_file->has_profile(out.profile) &&
      !conf_file->has_profile(out.profile)) {
    return make_error(ErrorKind::Config,
                      what + ": AWS profile '" + out.profile + "' (" + profile_src +
                          ") is not in " + cred_path + " or " + conf_path);
  }

  // --- credentials
  const std::string env_akid = env_or_empty(env, "AWS_ACCESS_KEY_ID");
  const char* env_secret = env.get("AWS_SECRET_ACCESS_KEY");
  const bool env_has_secret = env_secret != nullptr && *env_secret != '\0';
  bool have = false;
  if (in.profile_setting.empty() && (!env_akid.empty() || env_has_secret)) {
    if (env_akid.empty())
      return make_error(ErrorKind::Config, what + ": AWS_SECRET_ACCESS_KEY is set but "
                                                  "AWS_ACCESS_KEY_ID is not");
    if (!env_has_secret)
      return make_error(ErrorKind::Config, what + ": AWS_ACCESS_KEY_ID is set but "
                                                  "AWS_SECRET_ACCESS_KEY is not");
    out.credentials.access_key_id = env_akid;
    out.credentials.secret_access_key = SecretValue::from(env_secret);
    if (const char* tok = env.get("AWS_SESSION_TOKEN"); tok != nullptr && *tok != '\0')
      out.credentials.session_token = SecretValue::from(tok);
    out.credentials.source = "environment (AWS_ACCESS_KEY_ID)";
    have = true;
  }
  if (!have) {
    const std::pair<const ProfileFile*, const std::string*> sources[] = {
        {&*creds_file, &cred_path}, {&*conf_file, &conf_path}};
    for (const auto& pair : sources) {
      const ProfileFile& pf = *pair.first;
      const std::string* akid = pf.get(out.profile, "aws_access_key_id");
      const std::string* secret = pf.get(out.profile, "aws_secret_access_key");
      if (akid == nullptr && secret == nullptr) continue;
      if (akid == nullptr || secret == nullptr)
        return make_error(ErrorKind::Config,
                          what + ": AWS profile '" + out.profile + "' in " + *pair.second +
                              " has " + (akid ? "aws_access_key_id but no aws_secret_access_key"
                                              : "aws_secret_access_key but no aws_access_key_id"));
      out.credentials.access_key_id = *akid;
      out.credentials.secret_access_key = SecretValue::from(*secret);
      if (const std::string* tok = pf.get(out.profile, "aws_session_token"))
        out.credentials.session_token = SecretValue::from(*tok);
      out.credentials.source = "profile '" + out.profile + "' in " + *pair.second;
      have = true;
      break;
    }
  }
  if (!have) {
    std::string where = in.profile_setting.empty()
                            ? "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set, and "
                            : "";
    return make_error(ErrorKind::Config,
                      what + ": no AWS credentials: " + where + "profile '" + out.profile +
                          "' (" + profile_src + ") has no aws_access_key_id/"
                          "aws_secret_access_key in " + cred_path +
                          (creds_file->exists ? "" : " (missing)") + " or " + conf_path +
                          (conf_file->exists ? "" : " (missing)"));
  }

  // --- region
  out.region = in.region_setting;
  if (out.region.empty()) out.region = first_env(env, {"AWS_REGION", "AWS_DEFAULT_REGION"});
  if (out.region.empty()) {
    if (const std::string* r = conf_file->get(out.profile, "region")) out.region = *r;
  }
  if (out.region.empty())
    return make_error(ErrorKind::Config,
                      what + ": no AWS region: set `region` in [providers.aws-sm], AWS_REGION or "
                             "AWS_DEFAULT_REGION, or `region` in profile '" + out.profile +
                          "' of " + conf_path + (conf_file->exists ? "" : " (missing)"));
  for (char c : out.region) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
      return make_error(ErrorKind::Config, what + ": invalid AWS region '" + out.region + "'");
  }

  // --- endpoint
  out.endpoint = in.endpoint_setting;
  if (out.endpoint.empty())
    out.endpoint = first_env(env, {"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"});
  if (out.endpoint.empty()) out.endpoint = default_secretsmanager_endpoint(out.region);
  // Secrets never travel over plain HTTP.
  if (out.endpoint.rfind("https://", 0) != 0 || out.endpoint.size() <= 8)
    return make_error(ErrorKind::Config,
                      what + ": endpoint '" + out.endpoint + "' must be an https:// URL");
  while (out.endpoint.size() > 8 && out.endpoint.back() == '/') out.endpoint.pop_back();

  // --- CA bundle
  out.ca_file = in.ca_setting;
  if (out.ca_file.empty()) out.ca_file = expand_home(first_env(env, {"AWS_CA_BUNDLE"}), home);
  if (out.ca_file.empty()) {
    if (const std::string* c = conf_file->get(out.profile, "ca_bundle"))
      out.ca_file = expand_home(*c, home);
  }
  return out;
}

}  // namespace kz::aws
