#include "masking/masker.h"

#include <gtest/gtest.h>

#include "masking/encodings.h"

namespace kz {
namespace {

const std::string R = "<concealed by kz>";

std::string mask_all(const std::vector<std::string_view>& secrets, std::string_view text,
                     std::size_t chunk = std::string::npos, MaskerOptions opts = {}) {
  auto p = MaskPatterns::build(secrets, opts);
  StreamMasker m(p);
  std::string out;
  if (chunk == std::string::npos) chunk = text.size() == 0 ? 1 : text.size();
  for (std::size_t i = 0; i < text.size(); i += chunk) m.feed(text.substr(i, chunk), out);
  m.flush(out);
  return out;
}

TEST(Masker, ReplacesValue) {
  EXPECT_EQ(mask_all({"s3cr3t-value"}, "key=s3cr3t-value;"), "key=" + R + ";");
  EXPECT_EQ(mask_all({"s3cr3t-value"}, "nothing here"), "nothing here");
  EXPECT_EQ(mask_all({"s3cr3t-value"}, ""), "");
}

TEST(Masker, SplitAtEveryBoundary) {
  const std::string secret = "abcd-efgh-1234";
  const std::string text = "x " + secret + " y " + secret;
  for (std::size_t split = 0; split <= text.size(); ++split) {
    auto p = MaskPatterns::build({secret});
    StreamMasker m(p);
    std::string out;
    m.feed(std::string_view(text).substr(0, split), out);
    m.feed(std::string_view(text).substr(split), out);
    m.flush(out);
    EXPECT_EQ(out, "x " + R + " y " + R) << "split at " << split;
  }
  EXPECT_EQ(mask_all({secret}, text, 1), "x " + R + " y " + R);
}

TEST(Masker, HoldsBackOnlyPossiblePrefixes) {
  auto p = MaskPatterns::build({"Password-value-9"});
  StreamMasker m(p);
  std::string out;
  m.feed("Enter ", out);
  EXPECT_EQ(out, "Enter ");
  EXPECT_FALSE(m.has_pending());
  m.feed("Pa", out);   // could be the start of the secret
  EXPECT_EQ(out, "Enter ");
  EXPECT_TRUE(m.has_pending());
  m.flush(out);        // idle: the prefix is released unchanged
  EXPECT_EQ(out, "Enter Pa");
  EXPECT_FALSE(m.has_pending());
  m.feed("ss", out);
  EXPECT_EQ(out, "Enter Pass");
}

TEST(Masker, LongestMatchWinsForPrefixSecrets) {
  EXPECT_EQ(mask_all({"abcd1234", "abcd1234XYZW"}, "[abcd1234XYZW]"), "[" + R + "]");
  EXPECT_EQ(mask_all({"abcd1234", "abcd1234XYZW"}, "[abcd1234XYZ]"), "[" + R + "XYZ]");
  for (std::size_t chunk = 1; chunk < 14; ++chunk)
    EXPECT_EQ(mask_all({"abcd1234XYZW", "abcd1234"}, "[abcd1234XYZW]", chunk), "[" + R + "]") << chunk;
}

TEST(Masker, LeftmostWinsForOverlaps) {
  // "bcd-long" starts later than "abc-1"... overlap: the leftmost match is taken.
  EXPECT_EQ(mask_all({"zzabcd", "cdefgh"}, "zzabcdefgh"), R + "efgh");
  EXPECT_EQ(mask_all({"bcde", "abcdefgh"}, "abcdefgh"), R);
  EXPECT_EQ(mask_all({"bcde", "abcdefgh"}, "abcdefgX"), "a" + R + "fgX");
}

TEST(Masker, MultiLineAndTerminalRendering) {
  const std::string pem = "-----BEGIN KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQ\nAAAA==\n-----END KEY-----";
  EXPECT_EQ(mask_all({pem}, "k:" + pem + ":"), "k:" + R + ":");
  std::string crlf = "-----BEGIN KEY-----\r\nMIIBVAIBADANBgkqhkiG9w0BAQ\r\nAAAA==\r\n-----END KEY-----";
  EXPECT_EQ(mask_all({pem}, crlf), R);
  // One long line of it printed alone.
  EXPECT_EQ(mask_all({pem}, "line MIIBVAIBADANBgkqhkiG9w0BAQ end"), "line " + R + " end");
}

TEST(Masker, Encodings) {
  const std::string v = "sk-\"live\"/val ue+9~";
  struct Case { const char* name; std::string form; };
  const Case cases[] = {
      {"base64", base64_encode(v, false, true)},
      {"base64-nopad", base64_encode(v, false, false)},
      {"base64url", base64_encode(v, true, false)},
      {"percent-upper", percent_encode(v, true, false)},
      {"percent-lower", percent_encode(v, false, false)},
      {"form", percent_encode(v, true, true)},
      {"json", json_escape(v, false)},
      {"json-slash", json_escape(v, true)},
      {"hex", hex_encode(v, false)},
      {"HEX", hex_encode(v, true)},
  };
  for (const auto& c : cases) {
    EXPECT_NE(c.form, v) << c.name;
    const std::string out = mask_all({v}, "<" + c.form + ">");
    EXPECT_EQ(out.find(c.form), std::string::npos) << c.name << ": " << out;
    EXPECT_NE(out.find(R), std::string::npos) << c.name;
  }
  EXPECT_EQ(percent_encode("a b/~", true, false), "a%20b%2F~");
  EXPECT_EQ(json_escape(std::string("a\x01\"", 3), false), "a\\u0001\\\"");
  EXPECT_EQ(base64_encode("hello", false, true), "aGVsbG8=");
}

TEST(Masker, BasicAuthAtEveryAlignment) {
  const std::string secret = "ghp_0123456789abcdefXYZ";
  for (const std::string user : {"user:", "u:", "us:", "longer-user:", ""}) {
    for (const std::string tail : {"", "x", "xy"}) {
      const std::string b64 = base64_encode(user + secret + tail, false, true);
      const std::string out = mask_all({secret}, "Authorization: Basic " + b64 + "\n");
      EXPECT_NE(out.find(R), std::string::npos) << "user=" << user << " tail=" << tail << " " << out;
      // What is left of the base64 cannot be decoded back to the secret.
      const std::string inner1 = base64_inner(secret, static_cast<int>(user.size() % 3));
      EXPECT_EQ(out.find(inner1), std::string::npos);
    }
  }
}

TEST(Masker, ShortValuesSkippedAndReplacementConfigurable) {
  auto p = MaskPatterns::build({"abc"});
  EXPECT_EQ(p->pattern_count(), 0u);
  EXPECT_EQ(mask_all({"abc"}, "abcabc"), "abcabc");
  MaskerOptions o;
  o.replacement = "***";
  EXPECT_EQ(mask_all({"secret-1"}, "a secret-1 b", std::string::npos, o), "a *** b");
}

TEST(Masker, HoldBackIsBounded) {
  auto p = MaskPatterns::build({"abcdefghij"});
  EXPECT_GE(p->max_pattern_len(), 10u);
  StreamMasker m(p);
  std::string out;
  std::string text(100000, 'a');   // every byte could start the secret; only the last may be held
  m.feed(text, out);
  EXPECT_GE(out.size(), text.size() - p->max_pattern_len());
}

}  // namespace
}  // namespace kz
