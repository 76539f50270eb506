// The encoded forms of a value and of its token (kz/wire/value_forms.h): each encoding
// against a known answer, and the token's form made exactly as long as the hit.
#include <gtest/gtest.h>

#include <string>

#include "kz/wire/value_forms.h"

namespace kz::wire {
namespace {

std::string enc(ValueForm f, const std::string& in, std::size_t cap = kMaxFormLen) {
  std::string out(cap, '\0');
  const std::size_t n =
      encode_form(f, reinterpret_cast<const unsigned char*>(in.data()), in.size(), out.data(), out.size());
  out.resize(n);
  return out;
}

std::string tok_form(ValueForm f, const std::string& tok, std::size_t hit_len) {
  std::string out(hit_len, '\0');
  EXPECT_EQ(token_in_form(f, tok.data(), tok.size(), hit_len, out.data(), out.size()), hit_len);
  return out;
}

TEST(ValueForms, KnownAnswers) {
  EXPECT_EQ(enc(ValueForm::Raw, "ab?"), "ab?");
  EXPECT_EQ(enc(ValueForm::Base64, "foob"), "Zm9vYg==");
  EXPECT_EQ(enc(ValueForm::Base64NoPad, "foob"), "Zm9vYg");
  EXPECT_EQ(enc(ValueForm::Base64, "foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc(ValueForm::Base64, "\xfb\xff"), "+/8=");
  EXPECT_EQ(enc(ValueForm::Base64Url, "\xfb\xff"), "-_8=");
  EXPECT_EQ(enc(ValueForm::Base64UrlNoPad, "\xfb\xff"), "-_8");
  EXPECT_EQ(enc(ValueForm::HexLower, "\x01\xab"), "01ab");
  EXPECT_EQ(enc(ValueForm::HexUpper, "\x01\xab"), "01AB");
  EXPECT_EQ(enc(ValueForm::Percent, "a b/c~_.-"), "a%20b%2Fc~_.-");
  EXPECT_EQ(enc(ValueForm::Json, "a\"b\\c\n\x01/"), "a\\\"b\\\\c\\n\\u0001/");
  EXPECT_EQ(enc(ValueForm::PercentLower, "a b/"), "a%20b%2f");
  EXPECT_EQ(enc(ValueForm::JsonSlash, "a/b"), "a\\/b");
}

TEST(ValueForms, TooSmallForTheOutputIsZero) {
  EXPECT_EQ(enc(ValueForm::HexLower, "abc", 5), "");
  EXPECT_EQ(enc(ValueForm::Base64, "abcd", 7), "");
  EXPECT_EQ(enc(ValueForm::Percent, "a b", 4), "");
  EXPECT_EQ(enc(ValueForm::Json, "\x01", 5), "");
}

TEST(ValueForms, SameLengthTokenInEveryLengthPreservingForm) {
  const std::string value = "sk-live-0123456789abcdefghijkl";
  const std::string token = "KZ_TOK_sameLenToken0123456789A";
  for (ValueForm f : {ValueForm::Raw, ValueForm::Base64, ValueForm::Base64NoPad, ValueForm::Base64Url,
                      ValueForm::Base64UrlNoPad, ValueForm::HexLower, ValueForm::HexUpper}) {
    const std::string hit = enc(f, value);
    EXPECT_EQ(tok_form(f, token, hit.size()), enc(f, token)) << static_cast<int>(f);
  }
}

TEST(ValueForms, EscapedFormsGrowTheTokenWithEscapesThatDecodeToIt) {
  const std::string token = "KZ_TOK_sameLenToken0123456789A";
  // A value with two bytes percent-encoding spells as %XX: 4 bytes longer than the token.
  const std::string value = "sk/live+0123456789abcdefghijkl";
  const std::string hit = enc(ValueForm::Percent, value);
  ASSERT_EQ(hit.size(), token.size() + 4);
  EXPECT_EQ(tok_form(ValueForm::Percent, token, hit.size()), "KZ_TOK_sameLenToken012345678%39%41");
  // JSON: a newline and a control byte (\n: +1, \u0001: +5) make 6 more bytes: one \u00XX
  // escape (+5) and one filler.
  const std::string jv = "sk\nlive\x01" "0123456789abcdefghijkl";
  ASSERT_EQ(jv.size(), token.size());
  const std::string jhit = enc(ValueForm::Json, jv);
  ASSERT_EQ(jhit.size(), token.size() + 6);
  EXPECT_EQ(tok_form(ValueForm::Json, token, jhit.size()), "KZ_TOK_sameLenToken0123456789\\u0041*");
}

TEST(ValueForms, ShortSecretsGetTheTokenCut) {
  const std::string token = "KZ_TOK_shortSecretToken9876543";
  EXPECT_EQ(tok_form(ValueForm::Raw, token, 10), token.substr(0, 10));
  EXPECT_EQ(tok_form(ValueForm::HexLower, token, 20), enc(ValueForm::HexLower, token).substr(0, 20));
}

TEST(ValueForms, TokenInFormRefusesWhatDoesNotFit) {
  char out[4];
  EXPECT_EQ(token_in_form(ValueForm::Raw, "KZ_TOK_x", 8, 5, out, sizeof out), 0u);
  EXPECT_EQ(token_in_form(ValueForm::Raw, "KZ_TOK_x", 8, 0, out, sizeof out), 0u);
}

}  // namespace
}  // namespace kz::wire
