// aws-sm: AWS Secrets Manager (GetSecretValue over the JSON 1.1 protocol, SigV4-signed).
//
// Ref syntax:
//     SECRET[?PARAM=VALUE[&PARAM=VALUE]][#JSONKEY]
//   SECRET   secret name (prod/db) or full ARN
//            (arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf)
//   PARAM    version_stage=STAGE (alias: stage=STAGE)  e.g. AWSPREVIOUS, AWSPENDING
//            version_id=ID                               a specific version
//            Without either, the provider's `version_stage` setting (default AWSCURRENT).
//   JSONKEY  pick one top-level key of a JSON-object SecretString (string values as-is,
//            numbers/booleans/objects as JSON text). Everything after the first '#' is the
//            key, so keys may contain '?' or '&'.
//   Examples: prod/db   prod/db#password   prod/db?version_stage=AWSPREVIOUS#password
//             arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf#user
//   ('?' and '#' cannot occur in secret names or ARNs, so the split is unambiguous.)
//   A SecretBinary secret (no SecretString) is base64-decoded; #JSONKEY then applies to
//   the decoded bytes.
//
// Settings ([providers.aws-sm]; each overrides the environment): region, profile, endpoint,
// ca_cert, version_stage. See aws_credentials.h for the environment variables and files.
#include <algorithm>
#include <cctype>
#include <vector>

#include "kz/providers/aws_credentials.h"
#include "kz/aws_sigv4.h"
#include "kz/providers/http_client.h"
#include "kz/providers/json_util.h"
#include "kz/providers/registry.h"

namespace kz {
namespace {

constexpr const char* kName = "aws-sm";

struct ParsedRef {
  std::string secret_id;
  std::string version_stage;
  std::string version_id;
  bool has_json_key = false;
  std::string json_key;
};

Result<ParsedRef> parse_ref(const std::string& ref, const std::string& prefix) {
  ParsedRef out;
  std::string head = ref;
  if (auto hash = ref.find('#'); hash != std::string::npos) {
    out.has_json_key = true;
    out.json_key = ref.substr(hash + 1);
    head = ref.substr(0, hash);
    if (out.json_key.empty())
      return make_error(ErrorKind::Config, prefix + ": empty JSON key after '#'");
  }
  std::string query;
  if (auto q = head.find('?'); q != std::string::npos) {
    query = head.substr(q + 1);
    head.resize(q);
  }
  out.secret_id = head;
  if (out.secret_id.empty())
    return make_error(ErrorKind::Config, prefix + ": empty secret name (expected NAME or ARN)");
  size_t i = 0;
  while (!query.empty() && i <= query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string::npos) j = query.size();
    std::string part = query.substr(i, j - i);
    i = j + 1;
    auto eq = part.find('=');
    std::string k = part.substr(0, eq);
    std::string v = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (v.empty())
      return make_error(ErrorKind::Config, prefix + ": parameter '" + k + "' needs a value");
    if (k == "version_stage" || k == "stage") {
      out.version_stage = v;
    } else if (k == "version_id") {
      out.version_id = v;
    } else {
      return make_error(ErrorKind::Config, prefix + ": unknown parameter '" + k +
                                               "' (expected version_stage or version_id)");
    }
  }
  return out;
}

// Standard base64 (padding optional, whitespace ignored) into a locked buffer.
Result<SecretValue> base64_decode(const std::string& in, const std::string& prefix) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  size_t chars = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    if (val(c) < 0)
      return make_error(ErrorKind::Protocol, prefix + ": SecretBinary is not valid base64");
    ++chars;
  }
  if (chars % 4 == 1)
    return make_error(ErrorKind::Protocol, prefix + ": SecretBinary is not valid base64");
  const size_t n = chars / 4 * 3 + (chars % 4 == 0 ? 0 : chars % 4 - 1);
  SecretValue out = SecretValue::allocate(n);
  unsigned acc = 0;
  int bits = 0;
  size_t pos = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (pos < n) out.data()[pos++] = static_cast<char>((acc >> bits) & 0xff);
    }
  }
  acc = 0;
  return out;
}



class AwsSmProvider final : public Provider {
 public:
  AwsSmProvider(aws::Resolved r, std::string default_stage)
      : r_(std::move(r)), default_stage_(std::move(default_stage)) {
    // Split the endpoint into host[:port] and base path for signing.
    std::string rest = r_.endpoint.substr(r_.endpoint.find("://") + 3);
    auto slash = rest.find('/');
    host_ = rest.substr(0, slash);
    path_ = slash == std::string::npos ? "/" : rest.substr(slash);
    if (path_.empty() || path_.back() != '/') path_ += '/';
    url_ = r_.endpoint.substr(0, r_.endpoint.find("://") + 3) + host_ + path_;
  }

  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    ValueLease unused;
    return resolve_leased(ref, deadline, unused);
  }

  // Secrets Manager has no lease: a rotation moves the AWSCURRENT stage to a new version,
  // so re-reading the stage (the default VersionStage) picks it up; VersionId names it.
  Result<SecretValue> resolve_leased(const SecretRef& ref, Deadline deadline, ValueLease& lease) override {
    const std::string prefix = std::string(kName) + " (" + ref.name + ", ref '" + ref.ref + "')";
    auto parsed = parse_ref(ref.ref, prefix);
    if (!parsed) return parsed.take_error();
    const ParsedRef& pr = *parsed;
    if (Clock::now() >= deadline)
      return make_error(ErrorKind::Timeout, prefix + ": deadline passed before the request");

    nlohmann::json body_json = {{"SecretId", pr.secret_id}};
    if (!pr.version_id.empty()) body_json["VersionId"] = pr.version_id;
    if (!pr.version_stage.empty()) body_json["VersionStage"] = pr.version_stage;
    else if (pr.version_id.empty()) body_json["VersionStage"] = default_stage_;

    sigv4::SigV4Request sreq;
    sreq.method = "POST";
    sreq.path = path_;
    sreq.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                    {"Host", host_},
                    {"X-Amz-Target", "secretsmanager.GetSecretValue"}};
    sreq.body = body_json.dump();

    sigv4::SigV4Params sp;
    sp.access_key_id = r_.credentials.access_key_id;
    sp.secret_access_key = r_.credentials.secret_access_key.view();
    sp.session_token = r_.credentials.session_token.view();
    sp.region = r_.region;
    sp.service = "secretsmanager";
    sp.amz_date = sigv4::format_amz_date(std::chrono::system_clock::now());
    auto signed_r = sigv4::sign_request(sreq, sp);
    if (!signed_r)
      return make_error(ErrorKind::Internal, prefix + ": signing failed: " + signed_r.error().message);

    HttpRequest hreq;
    hreq.method = "POST";
    hreq.url = url_;
    hreq.headers = sreq.headers;
    for (auto& h : signed_r->add_headers) hreq.headers.emplace_back(h.first, std::move(h.second));
    hreq.headers.emplace_back("Accept", "application/json");
    hreq.body = std::move(sreq.body);
    hreq.ca_file = r_.ca_file;
    hreq.deadline = deadline;
    auto resp = http_send(std::move(hreq), prefix + ": GetSecretValue at " + r_.endpoint);
    if (!resp) {
      Error e = resp.take_error();
      scrub(e.message);
      return e;
    }
    if (resp->status != 200) return map_error(*resp, prefix);
    return extract(*resp, pr, prefix, lease);
  }

 private:
  void scrub(std::string& msg) const {
    redact(msg, r_.credentials.secret_access_key.view());
    redact(msg, r_.credentials.session_token.view());
  }

  Error map_error(HttpResponse& resp, const std::string& prefix) const {
    std::string type, message;
    auto j = nlohmann::json::parse(resp.body.str(), nullptr, false);
    if (j.is_object()) {
      if (auto it = j.find("__type"); it != j.end() && it->is_string()) type = *it;
      for (const char* k : {"Message", "message"})
        if (auto it = j.find(k); it != j.end() && it->is_string()) { message = *it; break; }
    }
    wipe_json(j);
    if (type.empty()) {
      if (auto it = resp.headers.find("x-amzn-errortype"); it != resp.headers.end()) type = it->second;
    }
    if (auto c = type.find(':'); c != std::string::npos) type.resize(c);
    if (auto h = type.rfind('#'); h != std::string::npos) type = type.substr(h + 1);
    std::string detail = "HTTP " + std::to_string(resp.status);
    if (!type.empty()) detail += " " + type;
    if (!message.empty()) detail += ": " + sanitize_message(message);
    scrub(detail);

    ErrorKind kind = ErrorKind::Protocol;
    if (type == "ResourceNotFoundException") {
      kind = ErrorKind::NotFound;
    } else if (type == "AccessDeniedException" || type == "UnrecognizedClientException" ||
               type == "InvalidSignatureException" || type == "SignatureDoesNotMatch" ||
               type == "IncompleteSignature" || type == "MissingAuthenticationToken" ||
               type == "ExpiredTokenException" || resp.status == 401 || resp.status == 403) {
      kind = ErrorKind::Denied;
    } else if (type.empty() && resp.status == 404) {
      kind = ErrorKind::NotFound;
    }
    std::string hint;
    if (kind == ErrorKind::Denied)
      hint = " (credentials from " + r_.credentials.source + ", region " + r_.region + ")";
    return make_error(kind, prefix + ": " + detail + hint);
  }

  Result<SecretValue> extract(HttpResponse& resp, const ParsedRef& pr, const std::string& prefix,
                              ValueLease& lease) const {
    auto parsed = parse_json_body(resp.body.str(), prefix + ": GetSecretValue response");
    if (!parsed) return parsed.take_error();
    ScrubbedJson doc(std::move(*parsed));
    nlohmann::json& j = doc.get();
    if (!j.is_object())
      return make_error(ErrorKind::Protocol, prefix + ": GetSecretValue response is not a JSON object");

    if (auto v = j.find("VersionId"); v != j.end() && v->is_string()) lease.version = v->get<std::string>();
    SecretValue payload;
    if (auto it = j.find("SecretString"); it != j.end() && it->is_string()) {
      payload = SecretValue::from(it->get_ref<const std::string&>());
    } else if (auto b = j.find("SecretBinary"); b != j.end() && b->is_string()) {
      auto dec = base64_decode(b->get_ref<const std::string&>(), prefix);
      if (!dec) return dec.take_error();
      payload = std::move(*dec);
    } else {
      return make_error(ErrorKind::Protocol,
                        prefix + ": GetSecretValue response has neither SecretString nor SecretBinary");
    }
    if (!pr.has_json_key) return payload;

    auto inner = nlohmann::json::parse(payload.view(), nullptr, /*allow_exceptions=*/false);
    ScrubbedJson inner_doc(std::move(inner));
    nlohmann::json& obj = inner_doc.get();
    if (obj.is_discarded() || !obj.is_object())
      return make_error(ErrorKind::Protocol, prefix + ": #" + pr.json_key +
                                                 " needs a secret that is a JSON object, and this one is not");
    auto it = obj.find(pr.json_key);
    if (it == obj.end()) {
      std::vector<std::string> keys;
      for (auto k = obj.begin(); k != obj.end(); ++k) keys.push_back(k.key());
      std::string list;
      for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
      return make_error(ErrorKind::NotFound, prefix + ": key '" + pr.json_key +
                                                 "' is not in the secret; available keys: " +
                                                 (list.empty() ? "(none)" : list));
    }
    if (it->is_string()) return SecretValue::from(it->get_ref<const std::string&>());
    if (it->is_null())
      return make_error(ErrorKind::NotFound, prefix + ": key '" + pr.json_key + "' is null");
    ScrubbedString text(it->dump());
    return SecretValue::from(text.str());
  }

  aws::Resolved r_;
  std::string default_stage_;
  std::string host_, path_, url_;
};

std::string path_setting(const ProviderSettings& s, const char* key, const ProviderContext& ctx) {
  const SettingValue* v = find_setting(s, key);
  if (v == nullptr || v->text.empty()) return {};
  std::string p = expand_home(v->text, ctx.home);
  if (p[0] != '/' && !ctx.config_dir.empty()) p = ctx.config_dir + "/" + p;
  return p;
}

Result<std::unique_ptr<Provider>> make_aws_sm(const ProviderSettings& s, const ProviderContext& ctx) {
  aws::Inputs in;
  if (const auto* v = find_setting(s, "profile")) in.profile_setting = v->text;
  if (const auto* v = find_setting(s, "region")) in.region_setting = v->text;
  if (const auto* v = find_setting(s, "endpoint")) in.endpoint_setting = v->text;
  in.ca_setting = path_setting(s, "ca_cert", ctx);
  std::string stage = "AWSCURRENT";
  if (const auto* v = find_setting(s, "version_stage")) {
    if (v->text.empty())
      return make_error(ErrorKind::Config, format_pos(v->pos) + ": aws-sm: version_stage is empty");
    stage = v->text;
  }
  auto r = aws::resolve(in, *ctx.env, ctx.home, kName);
  if (!r) return r.take_error();
  return std::unique_ptr<Provider>(std::make_unique<AwsSmProvider>(std::move(*r), stage));
}

}  // namespace

ProviderSpec aws_sm_provider_spec() {
  return {kName,
          {
              {"region", SettingType::String,
               "AWS region, e.g. eu-west-1 (default: AWS_REGION, AWS_DEFAULT_REGION, then the "
               "profile's region in ~/.aws/config)"},
              {"profile", SettingType::String,
               "profile in ~/.aws/credentials and ~/.aws/config (default: AWS_PROFILE, then "
               "\"default\"); when set, environment keys are not used"},
              {"endpoint", SettingType::String,
               "https URL of the Secrets Manager endpoint, for VPC endpoints and tests "
               "(default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, then "
               "https://secretsmanager.<region>.amazonaws.com)"},
              {"ca_cert", SettingType::Path,
               "PEM CA bundle to verify the endpoint (default: AWS_CA_BUNDLE, then the system "
               "trust store)"},
              {"version_stage", SettingType::String,
               "version stage fetched when a ref names none (default AWSCURRENT)"},
          },
          make_aws_sm};
}

}  // namespace kz
