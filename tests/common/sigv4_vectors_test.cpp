// kz's SigV4 (kz/sigv4.h) against the published test vectors in ../shared/vectors/sigv4:
// the newer aws-signing-test-suite/v4 (header and presigned-query signing of each case)
// and the classic aws-sig-v4-test-suite. From each signed request as sent, kz must
// rebuild the exact canonical request, string to sign and signature. Also kz's own
// allocation-free SHA-256 (kz/wire/sha256.h, the shim's) against OpenSSL's.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kz/digest.h"
#include "kz/sigv4.h"
#include "kz/wire/sha256.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using namespace kz::sigv4;

const std::string kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::string vectors() { return kz::test::source_dir() + "/../shared/vectors/sigv4"; }

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Checked {
  std::string creq, sts, sig;
};

// Rebuilds what the signed request `sreq` was signed over.
Checked rebuild(const std::string& sreq, UriStyle style, const std::string& secret) {
  auto h = parse_head(sreq);
  EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error().message);
  if (!h.ok()) return {};
  auto s = parse_signed(*h, sreq);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  if (!s.ok()) return {};
  std::string body = sreq.substr(h->end);
  while (!body.empty() && body.back() == '\n') body.pop_back();   // the files' trailing newlines
  const auto payloads = payload_candidates(*s, kz::sha256_hex(body));
  EXPECT_FALSE(payloads.empty());
  Checked c;
  c.creq = canonical_request(*h, *s, style, payloads.empty() ? "" : payloads[0]);
  c.sts = string_to_sign(*s, c.creq);
  c.sig = signature(secret, *s, c.sts);
  EXPECT_EQ(c.sig.size(), 64u);
  EXPECT_EQ(sreq.substr(s->signature_pos, 64), s->signature);
  return c;
}

TEST(SigV4Vectors, SigningSuiteV4HeaderAndQuery) {
  const fs::path root = vectors() + "/aws-signing-test-suite/v4";
  ASSERT_TRUE(fs::is_directory(root)) << root;
  int cases = 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    const auto ctx = nlohmann::json::parse(slurp(dir.path() / "context.json"));
    const bool normalize = ctx.value("normalize", true);
    const UriStyle style = normalize ? UriStyle::EncodeTwiceNormalized : UriStyle::EncodeTwice;
    const std::string secret = ctx["credentials"]["secret_access_key"];
    for (const std::string kind : {"header", "query"}) {
      if (!fs::exists(dir.path() / (kind + "-signed-request.txt"))) continue;
      SCOPED_TRACE(dir.path().filename().string() + " " + kind);
      std::string sreq = slurp(dir.path() / (kind + "-signed-request.txt"));
      if (ctx.value("omit_session_token", false) && kind == "query") {
        // The token was appended to the URL after signing (not signed): drop it, as the
        // signer saw the request.
        const std::size_t p = sreq.find("&X-Amz-Security-Token=");
        if (p != std::string::npos) sreq.erase(p, sreq.find('&', p + 1) - p);
      }
      const Checked c = rebuild(sreq, style, secret);
      EXPECT_EQ(c.creq, slurp(dir.path() / (kind + "-canonical-request.txt")));
      EXPECT_EQ(c.sts, slurp(dir.path() / (kind + "-string-to-sign.txt")));
      EXPECT_EQ(c.sig, slurp(dir.path() / (kind + "-signature.txt")));
      ++cases;
    }
  }
  EXPECT_EQ(cases, 76);
}

TEST(SigV4Vectors, ClassicSuite) {
  const fs::path root = vectors() + "/aws-sig-v4-test-suite";
  int cases = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".sreq") continue;
    const fs::path base = e.path().parent_path() / e.path().stem();
    const std::string name = e.path().stem().string();
    SCOPED_TRACE(name);
    const std::string authz = slurp(base.string() + ".authz");
    ++cases;
    // These two were signed over another canonical request than their .creq and .sreq
    // say (../shared/vectors/sigv4/NOTE.md): only the HMAC chain, .sts -> signature, holds.
    if (name == "post-x-www-form-urlencoded" || name == "post-x-www-form-urlencoded-parameters") {
      const std::string sreq = slurp(e.path());
      auto h = parse_head(sreq);
      ASSERT_TRUE(h.ok());
      auto s = parse_signed(*h, sreq);
      ASSERT_TRUE(s.ok()) << s.error().message;
      EXPECT_EQ(authz.substr(authz.size() - 64), signature(kSecret, *s, slurp(base.string() + ".sts")));
      continue;
    }
    const Checked c = rebuild(slurp(e.path()), UriStyle::EncodeTwiceNormalized, kSecret);
    EXPECT_EQ(c.creq, slurp(base.string() + ".creq"));
    EXPECT_EQ(c.sts, slurp(base.string() + ".sts"));
    EXPECT_EQ(authz.substr(authz.size() - 64), c.sig);
  }
  EXPECT_EQ(cases, 33);
}

TEST(SigV4, RefusesWhatItCannotReproduce) {
  const std::string base = "GET / HTTP/1.1\r\nHost: s3.amazonaws.com\r\nX-Amz-Date: 20150830T123600Z\r\n";
  const std::string sig = std::string(64, 'a');
  auto signed_of = [&](const std::string& text) {
    auto h = parse_head(text);
    EXPECT_TRUE(h.ok());
    return parse_signed(*h, text);
  };
  const std::string cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request";
  EXPECT_TRUE(signed_of(base + "Authorization: AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date, Signature=" +
                        sig + "\r\n\r\n").ok());
  // A signed header the request does not carry.
  EXPECT_FALSE(signed_of(base + "Authorization: AWS4-HMAC-SHA256 " + cred +
                         ", SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + sig + "\r\n\r\n").ok());
  // host not signed.
  EXPECT_FALSE(signed_of(base + "Authorization: AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, Signature=" +
                         sig + "\r\n\r\n").ok());
  // Two signatures.
  EXPECT_FALSE(signed_of(base + "Authorization: AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date, Signature=" +
                         sig + "\r\nAuthorization: AWS4-HMAC-SHA256 " + cred +
                         ", SignedHeaders=host;x-amz-date, Signature=" + std::string(64, 'b') + "\r\n\r\n").ok());
  // The signature's digits twice in the head: which bytes to replace is ambiguous.
  EXPECT_FALSE(signed_of(base + "X-Echo: " + sig + "\r\nAuthorization: AWS4-HMAC-SHA256 " + cred +
                         ", SignedHeaders=host;x-amz-date, Signature=" + sig + "\r\n\r\n").ok());
  // A date outside its scope.
  EXPECT_FALSE(signed_of("GET / HTTP/1.1\r\nHost: a\r\nX-Amz-Date: 20150831T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 " +
                         cred + ", SignedHeaders=host;x-amz-date, Signature=" + sig + "\r\n\r\n").ok());
  // Another algorithm.
  EXPECT_FALSE(signed_of(base + "Authorization: AWS4-ECDSA-P256-SHA256 " + cred + ", SignedHeaders=host, Signature=" +
                         sig + "\r\n\r\n").ok());
}

static std::string openssl_sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return kz::hex_lower(std::string_view(reinterpret_cast<const char*>(md), len));
}

// The shim's SHA-256, which kz::sha256_hex also uses below 256 KiB, against OpenSSL's
// EVP and the FIPS 180-4 examples.
TEST(SigV4, ShimSha256MatchesOpenSsl) {
  std::string data;
  for (std::size_t n = 0; n < 300; ++n) {
    char out[64];
    kz::wire::sha256_hex(data.data(), data.size(), out);
    EXPECT_EQ(std::string(out, 64), openssl_sha256_hex(data)) << n;
    EXPECT_EQ(kz::sha256_hex(data), openssl_sha256_hex(data)) << n;
    data += static_cast<char>('a' + n % 26);
  }
  EXPECT_EQ(kz::sha256_hex(std::string_view()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(kz::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(kz::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');   // above the threshold: OpenSSL's path
  EXPECT_EQ(kz::sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  char out[64];
  kz::wire::sha256_hex(million.data(), million.size(), out);
  EXPECT_EQ(std::string(out, 64), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in pieces.
  kz::wire::Sha256 s;
  const std::string big(100000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 777) s.update(big.data() + i, std::min<std::size_t>(777, big.size() - i));
  unsigned char d[32];
  s.finish(d);
  EXPECT_EQ(kz::hex_lower(std::string_view(reinterpret_cast<char*>(d), 32)), openssl_sha256_hex(big));
}

}  // namespace
