// SigV4 signer against the AWS test suites in /work/shared/vectors/sigv4 (located as
// KZ_SOURCE_DIR/../shared/vectors/sigv4): every case of the classic suite
// (aws-sig-v4-test-suite, 33 cases) and of the aws-c-auth v4 suite (38 cases, header
// signing and presigned/query signing). Outputs are compared byte for byte.
// The suites must be there: a missing directory or a different case count fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kz/aws_sigv4.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace kz::sigv4;

namespace {

const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::string vectors_dir() { return kz::test::source_dir() + "/../shared/vectors/sigv4"; }
std::string classic_dir() { return vectors_dir() + "/aws-sig-v4-test-suite"; }
std::string v4_dir() { return vectors_dir() + "/aws-signing-test-suite/v4"; }

std::string slurp(const fs::path& p) { return kz::test::read_file(p.string()); }

// Parse a raw HTTP request file (.req / request.txt). The request target may contain
// spaces (get-space); folded header lines (leading blanks) continue the previous value
// and are joined with one space.
SigV4Request parse_request(const std::string& text) {
  SigV4Request r;
  std::vector<std::string> lines;
  size_t i = 0;
  size_t body_start = std::string::npos;
  while (i <= text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string line = text.substr(i, j - i);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() && !lines.empty()) { body_start = j + 1; break; }
    lines.push_back(line);
    i = j + 1;
  }
  if (body_start != std::string::npos && body_start < text.size()) r.body = text.substr(body_start);
  const std::string& first = lines.at(0);
  size_t sp1 = first.find(' ');
  size_t sp2 = first.rfind(' ');
  r.method = first.substr(0, sp1);
  std::string target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  r.query = q == std::string::npos ? "" : target.substr(q + 1);
  for (size_t k = 1; k < lines.size(); ++k) {
    const std::string& l = lines[k];
    if ((l[0] == ' ' || l[0] == '\t') && !r.headers.empty()) {
      auto b = l.find_first_not_of(" \t");
      r.headers.back().second += " " + l.substr(b);
      continue;
    }
    size_t colon = l.find(':');
    r.headers.emplace_back(l.substr(0, colon), l.substr(colon + 1));
  }
  return r;
}

std::string header_of(const SigV4Request& r, const std::string& lname) {
  for (const auto& [k, v] : r.headers) {
    std::string kl = k;
    std::transform(kl.begin(), kl.end(), kl.begin(), ::tolower);
    if (kl == lname) return v;
  }
  return {};
}

std::string signature_in(const std::string& authz) {
  auto p = authz.find("Signature=");
  return p == std::string::npos ? "" : authz.substr(p + 10);
}

std::string param_name(const std::string& rel) {
  std::string n = rel;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

// Case directories (relative names like "normalize-path/get-space"): a directory that
// holds a file named <dir>.req.
std::vector<std::string> classic_cases() {
  std::vector<std::string> out;
  if (!fs::is_directory(classic_dir())) return out;
  for (const auto& e : fs::recursive_directory_iterator(classic_dir())) {
    if (!e.is_regular_file() || e.path().extension() != ".req") continue;
    if (e.path().stem() != e.path().parent_path().filename()) continue;
    out.push_back(fs::relative(e.path().parent_path(), classic_dir()).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> v4_cases() {
  std::vector<std::string> out;
  if (!fs::is_directory(v4_dir())) return out;
  for (const auto& e : fs::directory_iterator(v4_dir()))
    if (e.is_directory() && fs::exists(e.path() / "context.json"))
      out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SigV4Vectors, SuitesArePresentAndComplete) {
  ASSERT_TRUE(fs::is_directory(classic_dir())) << "missing test vectors: " << classic_dir();
  ASSERT_TRUE(fs::is_directory(v4_dir())) << "missing test vectors: " << v4_dir();
  EXPECT_EQ(classic_cases().size(), 33u);
  EXPECT_EQ(v4_cases().size(), 38u);
}

// ---------------------------------------------------------------- classic suite

class ClassicSuite : public ::testing::TestWithParam<std::string> {};

TEST_P(ClassicSuite, Case) {
  const std::string rel = GetParam();
  const fs::path dir = fs::path(classic_dir()) / rel;
  const std::string base = (dir / dir.filename()).string();
  SigV4Request req = parse_request(slurp(base + ".req"));
  const std::string want_creq = slurp(base + ".creq");
  const std::string want_sts = slurp(base + ".sts");
  const std::string want_authz = slurp(base + ".authz");

  SigV4Params p;
  p.access_key_id = "AKIDEXAMPLE";
  p.secret_access_key = kSecret;
  p.region = "us-east-1";
  p.service = "service";
  p.amz_date = "20150830T123600Z";
  // get-vanilla-with-session-token (added by aws-c-auth): the token is not in the .req
  // but is signed (it is in the .creq); it comes from the .sreq, as the signer adds it.
  std::string token;
  if (header_of(req, "x-amz-security-token").empty() &&
      want_creq.find("x-amz-security-token") != std::string::npos) {
    token = header_of(parse_request(slurp(base + ".sreq")), "x-amz-security-token");
    ASSERT_FALSE(token.empty()) << rel;
  }
  p.session_token = token;

  auto r = sign_request(req, p);
  ASSERT_TRUE(r.ok()) << rel << ": " << r.error().message;

  const std::string name = dir.filename().string();
  if (name == "post-x-www-form-urlencoded" || name == "post-x-www-form-urlencoded-parameters") {
    // Known inconsistency in the published suite (see vectors/sigv4/NOTE.md): the .creq
    // signs content-length but the .sts/.authz signatures were computed without it. For
    // these two cases only the .sts -> signature step is checked (plus our canonical
    // request against the .creq); the v4 suite has self-consistent versions of both.
    EXPECT_EQ(r->canonical_request.str(), want_creq) << rel;
    kz::ScrubbedString key = derive_signing_key(kSecret, "20150830", "us-east-1", "service");
    EXPECT_EQ(hex(hmac_sha256(key.str(), want_sts)), signature_in(want_authz)) << rel;
    return;
  }
  EXPECT_EQ(r->canonical_request.str(), want_creq) << rel;
  EXPECT_EQ(r->string_to_sign, want_sts) << rel;
  EXPECT_EQ(r->authorization, want_authz) << rel;
}

INSTANTIATE_TEST_SUITE_P(Aws, ClassicSuite, ::testing::ValuesIn(classic_cases()),
                         [](const auto& info) { return param_name(info.param); });

// ---------------------------------------------------------------- v4 (aws-c-auth) suite

struct V4Context {
  SigV4Params params;
  std::string secret, token;
  long expires = 0;
};

void load_context(const fs::path& dir, V4Context* c) {
  auto j = nlohmann::json::parse(slurp(dir / "context.json"));
  c->secret = j["credentials"]["secret_access_key"].get<std::string>();
  c->token = j["credentials"].value("token", "");
  c->params.access_key_id = j["credentials"]["access_key_id"].get<std::string>();
  c->params.region = j["region"].get<std::string>();
  c->params.service = j["service"].get<std::string>();
  std::string ts = j["timestamp"].get<std::string>();   // 2015-08-30T12:36:00Z
  ts.erase(std::remove_if(ts.begin(), ts.end(), [](char ch) { return ch == '-' || ch == ':'; }),
           ts.end());
  c->params.amz_date = ts;
  c->params.options.normalize_path = j.value("normalize", true);
  c->params.options.double_encode_path = true;   // service "service": not S3
  c->params.options.add_content_sha256 = j.value("sign_body", false);
  c->params.options.omit_session_token = j.value("omit_session_token", false);
  c->expires = j.value("expiration_in_seconds", 3600L);
  c->params.secret_access_key = c->secret;
  c->params.session_token = c->token;
}

std::string line_starting(const std::string& text, const std::string& prefix) {
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string line = text.substr(i, j - i);
    if (line.rfind(prefix, 0) == 0) return line;
    i = j + 1;
  }
  return {};
}

class V4Suite : public ::testing::TestWithParam<std::string> {};

TEST_P(V4Suite, HeaderSigning) {
  const fs::path dir = fs::path(v4_dir()) / GetParam();
  V4Context c;
  load_context(dir, &c);
  SigV4Request req = parse_request(slurp(dir / "request.txt"));
  auto r = sign_request(req, c.params);
  ASSERT_TRUE(r.ok()) << GetParam() << ": " << r.error().message;
  EXPECT_EQ(r->canonical_request.str(), slurp(dir / "header-canonical-request.txt")) << GetParam();
  EXPECT_EQ(r->string_to_sign, slurp(dir / "header-string-to-sign.txt")) << GetParam();
  EXPECT_EQ(r->signature, slurp(dir / "header-signature.txt")) << GetParam();
  // The Authorization line of the signed request.
  std::string authz_line = line_starting(slurp(dir / "header-signed-request.txt"), "Authorization:");
  ASSERT_FALSE(authz_line.empty()) << GetParam();
  EXPECT_EQ("Authorization:" + r->authorization, authz_line) << GetParam();
}

TEST_P(V4Suite, QuerySigning) {
  const fs::path dir = fs::path(v4_dir()) / GetParam();
  V4Context c;
  load_context(dir, &c);
  SigV4Request req = parse_request(slurp(dir / "request.txt"));
  auto r = presign_request(req, c.params, c.expires);
  ASSERT_TRUE(r.ok()) << GetParam() << ": " << r.error().message;
  EXPECT_EQ(r->canonical_request.str(), slurp(dir / "query-canonical-request.txt")) << GetParam();
  EXPECT_EQ(r->string_to_sign, slurp(dir / "query-string-to-sign.txt")) << GetParam();
  EXPECT_EQ(r->signature, slurp(dir / "query-signature.txt")) << GetParam();
  // The request line of the presigned request carries our query string.
  SigV4Request signed_req = parse_request(slurp(dir / "query-signed-request.txt"));
  EXPECT_EQ(r->presigned_query, signed_req.query) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Aws, V4Suite, ::testing::ValuesIn(v4_cases()),
                         [](const auto& info) { return param_name(info.param); });

// ---------------------------------------------------------------- building blocks

TEST(SigV4Blocks, HmacSha256Rfc4231Case2) {
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SigV4Blocks, SigningKeyFromAwsDocumentation) {
  kz::ScrubbedString k = derive_signing_key(kSecret, "20120215", "us-east-1", "iam");
  EXPECT_EQ(hex(k.str()), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Blocks, Sha256OfEmptyString) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(SigV4Blocks, PathEncodingModes) {
  SigV4Options aws;   // defaults: normalize + double-encode
  EXPECT_EQ(canonical_uri("/a%20b/../c", aws), "/c");
  EXPECT_EQ(canonical_uri("/a%20b", aws), "/a%2520b");
  EXPECT_EQ(canonical_uri("", aws), "/");
  SigV4Options s3;
  s3.normalize_path = false;
  s3.double_encode_path = false;
  EXPECT_EQ(canonical_uri("/a%20b//./c", s3), "/a%20b//./c");
  EXPECT_EQ(canonical_uri("/a b", s3), "/a%20b");
}

TEST(SigV4Blocks, QueryCanonicalisation) {
  EXPECT_EQ(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
  EXPECT_EQ(canonical_query("k=a%2fb&x=%7E"), "k=a%2Fb&x=~");
  EXPECT_EQ(canonical_query(""), "");
}

TEST(SigV4Blocks, AmzDateFormat) {
  auto t = std::chrono::system_clock::from_time_t(1440938160);   // 2015-08-30T12:36:00Z
  EXPECT_EQ(format_amz_date(t), "20150830T123600Z");
}

TEST(SigV4Blocks, SessionTokenSignedAndReturned) {
  SigV4Request req;
  req.method = "POST";
  req.headers = {{"Host", "example.amazonaws.com"}};
  SigV4Params p;
  p.access_key_id = "AKIDEXAMPLE";
  p.secret_access_key = kSecret;
  p.session_token = "TOKEN123";
  p.region = "us-east-1";
  p.service = "secretsmanager";
  p.amz_date = "20150830T123600Z";
  auto r = sign_request(req, p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->signed_headers, "host;x-amz-date;x-amz-security-token");
  ASSERT_EQ(r->add_headers.size(), 3u);
  EXPECT_EQ(r->add_headers.back().first, "Authorization");
  EXPECT_EQ(r->authorization.find(kSecret), std::string::npos);
  p.amz_date = "2015-08-30";
  EXPECT_FALSE(sign_request(req, p).ok());
}

}  // namespace
