#include "secrets/aws_credential_set.h"

#include <initializer_list>

#include <nlohmann/json.hpp>

#include "kz/wipe.h"

namespace kz {

namespace {

using nlohmann::json;

// The first of `names` that `o` has as a string; nullptr when none. A present field that
// is not a string is an error (named in *bad).
const json* field(const json& o, std::initializer_list<const char*> names, std::string* bad) {
  for (const char* n : names) {
    auto it = o.find(n);
    if (it == o.end() || it->is_null()) continue;
    if (!it->is_string()) {
      *bad = n;
      return nullptr;
    }
    return &*it;
  }
  return nullptr;
}

// Every string in `j` wiped (the parsed copy held the key).
void wipe_json(json& j) {
  if (j.is_string()) {
    wipe(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& v : j) wipe_json(v);
  }
}

struct Wiped {
  json j;
  ~Wiped() { wipe_json(j); }
};

}  // namespace

Result<AwsCredentialSet> split_aws_credentials(std::string_view text) {
  auto fail = [](std::string why) {
    return make_error(ErrorKind::Config, "format = \"aws-credentials\": " + std::move(why));
  };
  Wiped parsed;
  parsed.j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.j.is_discarded() || !parsed.j.is_object())
    return fail("the value is not a JSON object (expected credential_process output, or a Vault AWS "
                "secrets engine response)");
  const json* o = &parsed.j;
  if (auto d = o->find("data"); d != o->end() && d->is_object() && o->find("SecretAccessKey") == o->end()) o = &*d;
  std::string bad;
  const json* id = field(*o, {"AccessKeyId", "access_key", "aws_access_key_id", "access_key_id"}, &bad);
  const json* key = bad.empty() ? field(*o, {"SecretAccessKey", "secret_key", "aws_secret_access_key", "secret_access_key"}, &bad)
                                : nullptr;
  const json* token =
      bad.empty() ? field(*o, {"SessionToken", "security_token", "aws_session_token", "session_token"}, &bad) : nullptr;
  if (!bad.empty()) return fail("the field " + bad + " is not a string");
  if (key == nullptr || key->get_ref<const std::string&>().empty())
    return fail("no secret key in the credential set (SecretAccessKey or secret_key)");
  if (id == nullptr) return fail("no access key id in the credential set (AccessKeyId or access_key)");
  const std::string& idv = id->get_ref<const std::string&>();
  if (idv.size() < 16 || idv.size() > 128 || idv.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != std::string::npos)
    return fail("the credential set's access key id is not 16 to 128 upper-case letters and digits");
  AwsCredentialSet out;
  out.access_key_id = idv;
  out.secret_access_key = SecretValue::from(key->get_ref<const std::string&>());
  if (token != nullptr) out.session_token = SecretValue::from(token->get_ref<const std::string&>());
  return out;
}

}  // namespace kz
