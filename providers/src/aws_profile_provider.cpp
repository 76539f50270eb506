// aws-profile: a field of an AWS CLI profile, as the AWS CLI would read it (issue 17).
//   ref = "PROFILE"                         its aws_secret_access_key
//   ref = "PROFILE#aws_session_token"       (or #aws_secret_access_key, #aws_access_key_id)
// The profile is looked up in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
// default ~/.aws/credentials), then in the config file (AWS_CONFIG_FILE, default
// ~/.aws/config, "[profile NAME]"). A profile with `credential_process` runs that command
// (its output: the JSON the AWS CLI documents, {"Version": 1, "AccessKeyId": ...,
// "SecretAccessKey": ..., "SessionToken": ...}). Values never appear in messages.
#include <nlohmann/json.hpp>

#include "kz/providers/aws_credentials.h"
#include "kz/providers/json_util.h"
#include "kz/providers/registry.h"
#include "kz/providers/subprocess.h"

namespace kz {
namespace {

constexpr const char* kFields[] = {"aws_secret_access_key", "aws_session_token", "aws_access_key_id"};

// The credential_process output's name for a profile field.
const char* process_key(const std::string& field) {
  if (field == "aws_secret_access_key") return "SecretAccessKey";
  if (field == "aws_session_token") return "SessionToken";
  return "AccessKeyId";
}

// The command line of credential_process: words split on blanks, "double quotes" kept together.
std::vector<std::string> split_command(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, any = false;
  for (char c : s) {
    if (c == '"') { quoted = !quoted; any = true; continue; }
    if (!quoted && (c == ' ' || c == '\t')) {
      if (any) out.push_back(cur);
      cur.clear();
      any = false;
      continue;
    }
    cur += c;
    any = true;
  }
  if (any) out.push_back(cur);
  return out;
}

class AwsProfileProvider final : public Provider {
 public:
  explicit AwsProfileProvider(ProviderContext ctx) : ctx_(std::move(ctx)) {}

  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    const std::size_t hash = ref.ref.find('#');
    const std::string profile = ref.ref.substr(0, hash);
    const std::string field = hash == std::string::npos ? "aws_secret_access_key" : ref.ref.substr(hash + 1);
    const std::string what = "aws-profile provider (" + ref.name + ")";
    if (profile.empty()) return make_error(ErrorKind::Config, what + ": the ref names no profile (PROFILE#field)");
    if (std::find(std::begin(kFields), std::end(kFields), field) == std::end(kFields))
      return make_error(ErrorKind::Config, what + ": unknown field \"" + field +
                                               "\" (known: aws_secret_access_key, aws_session_token, aws_access_key_id)");
    const std::string cred_path = aws::credentials_file_path(*ctx_.env, ctx_.home);
    const std::string conf_path = aws::config_file_path(*ctx_.env, ctx_.home);
    auto creds = aws::ProfileFile::load(cred_path, false);
    if (!creds) return creds.take_error();
    auto conf = aws::ProfileFile::load(conf_path, true);
    if (!conf) return conf.take_error();
    const aws::ProfileFile* found = creds->has_profile(profile) ? &*creds : conf->has_profile(profile) ? &*conf : nullptr;
    if (found == nullptr)
      return make_error(ErrorKind::NotFound, what + ": no profile \"" + profile + "\" in " + cred_path + " or " + conf_path);
    if (const std::string* v = found->get(profile, field); v != nullptr && !v->empty()) return SecretValue::from(*v);
    const std::string* process = found->get(profile, "credential_process");
    if (process == nullptr) process = conf->get(profile, "credential_process");
    if (process == nullptr)
      return make_error(ErrorKind::NotFound, what + ": profile \"" + profile + "\" has no " + field +
                                                 " and no credential_process");
    return from_process(*process, field, deadline, what);
  }

 private:
  Result<SecretValue> from_process(const std::string& command, const std::string& field, Deadline deadline,
                                   const std::string& what) {
    SubprocessOptions o;
    o.argv = split_command(command);
    if (o.argv.empty()) return make_error(ErrorKind::Config, what + ": credential_process is empty");
    auto r = run_subprocess(o, deadline, what + " credential_process");
    if (!r) return r.take_error();
    if (r->exit_code != 0)
      return make_error(ErrorKind::Denied, what + ": credential_process exited with " + std::to_string(r->exit_code) +
                                               ": " + first_line(r->err));
    auto j = parse_json_body(r->out.str(), what + " credential_process");
    if (!j) return j.take_error();
    const char* key = process_key(field);
    std::optional<SecretValue> out;
    if (j->is_object() && j->contains(key) && (*j)[key].is_string()) out = SecretValue::from((*j)[key].get<std::string>());
    wipe_json(*j);
    if (!out || out->empty())
      return make_error(ErrorKind::Protocol, what + ": credential_process output has no " + key);
    return std::move(*out);
  }

  ProviderContext ctx_;
};

}  // namespace

ProviderSpec aws_profile_provider_spec() {
  return {"aws-profile", {}, [](const ProviderSettings&, const ProviderContext& ctx)
                                 -> Result<std::unique_ptr<Provider>> {
            return std::unique_ptr<Provider>(std::make_unique<AwsProfileProvider>(ctx));
          }};
}

}  // namespace kz
