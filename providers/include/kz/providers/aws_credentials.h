// AWS credential, region and endpoint resolution, the way the AWS CLI/SDKs do it (the
// static-credential subset: no SSO, no assume-role, no instance metadata).
//
// Inputs, highest precedence first:
//   profile:     `profile` setting, AWS_PROFILE, "default"
//   credentials: when the `profile` setting is given: that profile only; otherwise
//                AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), then the
//                profile in the shared credentials file ([name]), then in the config file
//                ([profile name], or [default])
//   files:       AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials),
//                AWS_CONFIG_FILE (default ~/.aws/config)
//   region:      `region` setting, AWS_REGION, AWS_DEFAULT_REGION, `region` of the profile
//                in the config file
//   endpoint:    `endpoint` setting, AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL,
//                https://secretsmanager.<region>.amazonaws.com
//   CA bundle:   `ca_cert` setting, AWS_CA_BUNDLE, `ca_bundle` of the profile; else the
//                system trust store
// Missing pieces are ErrorKind::Config errors that say what is missing and where it was
// looked for. Secrets (secret key, session token) never appear in messages.
#pragma once

#include <map>
#include <string>

#include "kz/providers/provider.h"
#include "kz/secret.h"

namespace kz::aws {

struct Credentials {
  std::string access_key_id;
  SecretValue secret_access_key;   // locked memory
  SecretValue session_token;       // empty when there is none
  std::string source;              // "environment", "profile 'x' in /home/u/.aws/credentials"
};

// One INI-style AWS file: section name -> key -> value. Config-file section names are
// normalised: "[profile x]" -> "x", "[default]" -> "default". Values are wiped on
// destruction (credentials files hold secret keys).
class ProfileFile {
 public:
  ProfileFile() = default;
  ~ProfileFile();
  ProfileFile(ProfileFile&&) = default;
  ProfileFile& operator=(ProfileFile&&) = default;
  // A missing file is not an error (empty result); an unreadable one is.
  static Result<ProfileFile> load(const std::string& path, bool is_config_file);
  static ProfileFile parse(const std::string& text, bool is_config_file);
  const std::string* get(const std::string& profile, const std::string& key) const;
  bool has_profile(const std::string& profile) const;
  bool exists = false;

 private:
  std::map<std::string, std::map<std::string, std::string>> sections_;
};

struct Inputs {
  std::string profile_setting;  // `profile` key ("" when not set)
  std::string region_setting;
  std::string endpoint_setting;
  std::string ca_setting;       // already expanded to a path
};

struct Resolved {
  Credentials credentials;
  std::string profile;          // effective profile name
  std::string region;
  std::string endpoint;         // scheme://host[:port][/path], no trailing slash
  std::string ca_file;          // "" = system trust store
};

std::string credentials_file_path(const Environment& env, const std::string& home);
std::string config_file_path(const Environment& env, const std::string& home);

// `what` prefixes messages, e.g. "aws-sm".
Result<Resolved> resolve(const Inputs& in, const Environment& env, const std::string& home,
                         const std::string& what);

std::string default_secretsmanager_endpoint(const std::string& region);

}  // namespace kz::aws
