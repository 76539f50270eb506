// An AWS credential set as the places that issue temporary credentials hand it out, for
// a secret declared with format = "aws-credentials" (docs/aws.md): one JSON object that
// holds the access key id, the secret access key and, for temporary credentials, the
// session token. kz takes all three from one resolution, so the id, the key and the
// token always belong together (three separate look-ups of a rotating source could mix
// two sets).
//
// Shapes read (the first name found of each field):
//   credential_process output    {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
//   Vault AWS secrets engine     {"access_key", "secret_key", "security_token"}, or the whole
//                                response {"data": {...}, "lease_id": ...}
//   ~/.aws/credentials names     {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
#pragma once

#include <string>
#include <string_view>

#include "kz/result.h"
#include "kz/secret.h"

namespace kz {

inline constexpr std::string_view kAwsCredentialsFormat = "aws-credentials";

struct AwsCredentialSet {
  std::string access_key_id;       // not secret
  SecretValue secret_access_key;   // locked memory
  SecretValue session_token;       // empty: long-term credentials
};

// Errors name what is missing or malformed (field names, never a value; the JSON parser's
// own message is not passed on, as it may quote the text).
Result<AwsCredentialSet> split_aws_credentials(std::string_view json_text);

}  // namespace kz
