// Tokens that look right (token_mint.h): which vendor prefix a token keeps, and the table
// a blind run builds with it (the agent's copy as long as the value, the token inside it
// found by the ordinary scan, swap and redaction exact in length both ways).
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "kz/wire/fingerprint.h"
#include "kz/wire/scanner.h"
#include "kz/wire/value_forms.h"
#include "kz/wire/token.h"
#include "secrets/token_mint.h"
#include "secrets/token_table.h"

namespace kz {
namespace {

std::string alnum(std::size_t n) {
  const std::string abc = "aB3dE5gH7jK9mN1pQ2sT4vW6yZ8";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += abc[i % abc.size()];
  return s;
}

std::string_view prefix(const std::string& v) { return token_prefix_for(v, TokenShape::Auto); }

TEST(TokenShape, KnownPrefixesLongestFirst) {
  EXPECT_EQ(prefix("sk-proj-" + alnum(48)), "sk-proj-");
  EXPECT_EQ(prefix("sk-" + alnum(48)), "sk-");
  EXPECT_EQ(prefix("sk-ant-api03-" + alnum(93) + "AA"), "sk-ant-api03-");
  EXPECT_EQ(prefix("ghp_" + alnum(36)), "ghp_");
  EXPECT_EQ(prefix("github_pat_" + alnum(22) + "_" + alnum(59)), "github_pat_");
  EXPECT_EQ(prefix("xoxb-1234567890123-1234567890123-" + alnum(24)), "xoxb-");
  EXPECT_EQ(prefix("sk_live_" + alnum(32)), "sk_live_");
  EXPECT_EQ(prefix("sk_test_" + alnum(32)), "sk_test_");
}

TEST(TokenShape, FallsBackToPlain) {
  EXPECT_EQ(token_prefix_for("sk-proj-" + alnum(48), TokenShape::Plain), "");
  EXPECT_EQ(prefix("no-known-prefix-" + alnum(40)), "");
  EXPECT_EQ(prefix("sk-proj-" + alnum(24)), "sk-proj-");            // just enough
  EXPECT_EQ(prefix("sk-proj-" + alnum(23)), "sk-");                 // too short for "sk-proj-": the next one
  EXPECT_EQ(prefix("sk-proj-" + alnum(15)), "");                    // too short for any: plain
  EXPECT_EQ(prefix("sk-proj-eyJhbGciOi." + alnum(30) + "." + alnum(20)), "");   // dots: a JWT's parts
  EXPECT_EQ(prefix("eyJhbGciOiJIUzI1NiJ9." + alnum(30) + "." + alnum(43)), "");
  EXPECT_EQ(prefix("AKIA" + alnum(40)), "");   // "AKIA" ends in a letter: no boundary before the token
}

// Realistic values: random characters in each vendor's format.
std::string rand_of(std::string_view abc, std::size_t n, std::mt19937& rng) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += abc[rng() % abc.size()];
  return s;
}
constexpr std::string_view kAlnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kB64url = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

bool all_in(std::string_view s, std::string_view abc) {
  return !s.empty() && s.find_first_not_of(abc) == std::string_view::npos;
}
// The vendors' published formats (no std::regex: see canary_test.cpp).
bool ghp_ok(std::string_view s) { return s.size() == 40 && s.starts_with("ghp_") && all_in(s.substr(4), kAlnum); }
bool slack_ok(std::string_view s) {
  if (!s.starts_with("xoxb-")) return false;
  s.remove_prefix(5);
  const std::size_t a = s.find('-'), b = s.find('-', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos) return false;
  return a >= 10 && a <= 13 && b - a - 1 >= 10 && b - a - 1 <= 13 && all_in(s.substr(0, a), kDigits) &&
         all_in(s.substr(a + 1, b - a - 1), kDigits) && s.size() - b - 1 == 24 && all_in(s.substr(b + 1), kAlnum);
}
bool openai_ok(std::string_view s) { return s.starts_with("sk-proj-") && all_in(s.substr(8), kB64url); }
bool pat_ok(std::string_view s) {
  return s.size() == 93 && s.starts_with("github_pat_") && all_in(s.substr(11, 22), kAlnum) && s[33] == '_' &&
         all_in(s.substr(34), kAlnum);
}
bool jwt_ok(std::string_view s) {
  const std::size_t a = s.find('.'), b = s.find('.', a + 1);
  return a != std::string_view::npos && b != std::string_view::npos && all_in(s.substr(0, a), kB64url) &&
         all_in(s.substr(a + 1, b - a - 1), kB64url) && all_in(s.substr(b + 1), kB64url);
}

struct Sample {
  std::string name, value, prefix;
  bool (*strict)(std::string_view);   // the vendor's published format
};

std::vector<Sample> samples(std::mt19937& rng) {
  return {
      {"GITHUB_TOKEN", "ghp_" + rand_of(kAlnum, 36, rng), "ghp_", ghp_ok},
      {"SLACK_BOT_TOKEN",
       "xoxb-" + rand_of(kDigits, 12, rng) + "-" + rand_of(kDigits, 13, rng) + "-" + rand_of(kAlnum, 24, rng),
       "xoxb-", slack_ok},
      {"OPENAI_API_KEY", "sk-proj-" + rand_of(kAlnum, 20, rng) + "_" + rand_of(kB64url, 60, rng), "sk-proj-",
       openai_ok},
      {"GITHUB_PAT", "github_pat_" + rand_of(kAlnum, 22, rng) + "_" + rand_of(kAlnum, 59, rng), "github_pat_",
       pat_ok},
      {"ID_TOKEN",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudCIsImV4cCI6NDEwMjQ0NDgwMH0." +
           rand_of(kAlnum, 10, rng) + rand_of(kB64url, 32, rng) + "w",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudCIsImV4cCI6NDEwMjQ0NDgwMH0.", jwt_ok},
  };
}

int cls(char c) {
  if (c >= '0' && c <= '9') return 0;
  if (c >= 'a' && c <= 'z') return 1;
  if (c >= 'A' && c <= 'Z') return 2;
  return 256 + static_cast<unsigned char>(c);   // any other byte: itself
}

// The generator: prefix, length and every position's class kept (the marker, where the
// rest starts, within the run's class), the marker found by the scanner where the rest
// starts, and no value byte after the prefix.
TEST(ClassedToken, KeepsPrefixLengthAndClassPerPosition) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round)
    for (const Sample& smp : samples(rng)) {
      SCOPED_TRACE(smp.name);
      std::vector<ResolvedSecret> in;
      in.push_back({smp.name, "env", SecretValue::from(smp.value)});
      auto t = TokenTable::build(std::move(in), {}, TokenShape::Auto);
      ASSERT_TRUE(t.ok()) << t.error().message;
      const TokenEntry& e = t->secrets()[0];
      const std::string shown(token_as_shown(e).view());
      ASSERT_EQ(e.shown_prefix, smp.prefix);
      ASSERT_EQ(shown.size(), smp.value.size());
      EXPECT_TRUE(smp.value.size() && smp.strict(smp.value)) << "the sample itself: " << smp.name;
      EXPECT_TRUE(smp.strict(shown)) << shown;
      EXPECT_EQ(shown.find("KZ_TOK_"), std::string::npos);
      const std::size_t at = wire::find_token_prefix(shown.data(), shown.size());
      ASSERT_EQ(at, smp.prefix.size());
      const std::size_t m = wire::marker_at(shown.data() + at, shown.size() - at);
      ASSERT_GT(m, 0u);
      EXPECT_EQ(wire::token_extent(shown.data() + at, shown.size() - at), shown.size() - at);
      for (std::size_t i = at; i < shown.size(); ++i) {
        if (i < at + m) {   // the marker: in the class of the value's first run
          EXPECT_NE(cls(shown[i]), 256) << i;
          EXPECT_LT(cls(shown[i]), 256) << i;
          continue;
        }
        EXPECT_EQ(cls(shown[i]), cls(smp.value[i])) << "position " << i << " of " << shown;
      }
      // The table knows the token, and the swap gives back exactly the value.
      const std::string_view tok = std::string_view(shown).substr(at);
      EXPECT_EQ(t->find_token(tok), &e);
      std::string swapped = shown;
      swapped.replace(at, tok.size(), e.value.view());
      EXPECT_EQ(swapped, smp.value);
      EXPECT_GE(classed_token_bits(e.value.view()), kMinShapedBits);
    }
}

TEST(ClassedToken, MarkerFollowsTheFirstRunsClass) {
  EXPECT_EQ(std::string_view(mint_classed_token("ab" + alnum(40))->view()).substr(0, 7), wire::kMarkerLower);
  EXPECT_EQ(std::string_view(mint_classed_token("ABCDEFGHIJ7" + std::string(30, 'Q'))->view()).substr(0, 7),
            wire::kMarkerUpper);
  const std::string slack = "123456789012-1234567890123-" + alnum(24);
  EXPECT_EQ(std::string_view(mint_classed_token(slack)->view()).substr(0, 10), wire::kMarkerDigits);
}

TEST(ClassedToken, AtLeast96RandomBitsAndOtherwisePlain) {
  // Uniform per position: 5000 tokens of one value differ everywhere but the marker and
  // kept bytes, and each random position takes many characters.
  const std::string rest = "aB3dE5gH7jK9-mN1pQ2sT4_vW6yZ8aB3dE5";
  std::vector<std::set<char>> seen(rest.size());
  for (int i = 0; i < 2000; ++i) {
    auto t = mint_classed_token(rest);
    ASSERT_TRUE(t.ok());
    ASSERT_EQ(t->size(), rest.size());
    for (std::size_t j = 0; j < rest.size(); ++j) seen[j].insert(t->view()[j]);
  }
  for (std::size_t j = 7; j < rest.size(); ++j) {
    if (rest[j] == '-' || rest[j] == '_') EXPECT_EQ(seen[j].size(), 1u);
    else if (rest[j] >= '0' && rest[j] <= '9') EXPECT_EQ(seen[j].size(), 10u) << j;
    else EXPECT_EQ(seen[j].size(), 26u) << j;
  }
  EXPECT_GE(classed_token_bits(rest), kMinShapedBits);
  // Too few random bits, a run too short for its marker, a byte outside [A-Za-z0-9_-]:
  // no class-shaped token (the table falls back to KZ_TOK_).
  EXPECT_TRUE(mint_classed_token("abcdefgh" + std::string(10, '1'))->empty());        // 10 digits: 33 bits
  EXPECT_TRUE(mint_classed_token("abc-" + alnum(40))->empty());                       // first run of 3
  EXPECT_TRUE(mint_classed_token("123456789-" + alnum(40))->empty());                 // 9 digits < 10
  EXPECT_TRUE(mint_classed_token(alnum(30) + "+/" + alnum(20))->empty());             // base64, not url
  std::vector<ResolvedSecret> in;
  in.push_back({"GITHUB_TOKEN", "env", SecretValue::from("ghp_" + std::string(20, 'a'))});   // 13 * 4.7 bits
  in.push_back({"OPENAI_API_KEY", "env", SecretValue::from("sk-proj-" + alnum(48))});
  auto t = TokenTable::build(std::move(in), {}, TokenShape::Plain);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->secrets()[1].token.view().substr(0, 7), "KZ_TOK_");   // token_shape = "plain"
  in.clear();
  in.push_back({"GITHUB_TOKEN", "env", SecretValue::from("ghp_" + std::string(20, 'a'))});
  t = TokenTable::build(std::move(in), {}, TokenShape::Auto);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(token_as_shown(t->secrets()[0]).view().substr(0, 7), "KZ_TOK_");   // too short: plain
}

TEST(ClassedToken, JwtKeepsHeaderAndPayloadUnlessItRotates) {
  std::mt19937 rng(3);
  const Sample jwt = samples(rng)[4];
  std::vector<ResolvedSecret> in;
  in.push_back({"ID_TOKEN", "env", SecretValue::from(jwt.value)});
  in.push_back({"ROTATING", "env", SecretValue::from(jwt.value)});
  auto t = TokenTable::build(std::move(in), {}, TokenShape::Auto, {"ROTATING"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->secrets()[0].shown_prefix, jwt.prefix);
  // The signature is 43 characters: its last one has 2 unused bits, zero.
  const char last = t->secrets()[0].token.view().back();
  EXPECT_NE(std::string("AEIMQUYcgkosw048").find(last), std::string::npos) << last;
  EXPECT_EQ(t->secrets()[1].shown_prefix, "");   // a renewed JWT has other claims
  EXPECT_EQ(t->secrets()[1].token.view().substr(0, 7), "KZ_TOK_");
}

// The table swaps only a whole token: a random string that merely starts with a marker,
// or a token with one byte changed, cut or extended, is no token.
TEST(ClassedToken, LookalikesAreNoTokens) {
  std::mt19937 rng(11);
  std::vector<ResolvedSecret> in;
  for (const Sample& smp : samples(rng)) in.push_back({smp.name, "env", SecretValue::from(smp.value)});
  auto t = TokenTable::build(std::move(in), {}, TokenShape::Auto);
  ASSERT_TRUE(t.ok());
  for (const TokenEntry& e : t->secrets()) {
    const std::string tok(e.token.view());
    const std::size_t m = wire::marker_at(tok.data(), tok.size());
    ASSERT_GT(m, 0u);
    std::string look = tok.substr(0, m) + rand_of(kAlnum, tok.size() - m, rng);
    EXPECT_EQ(t->find_token(look), nullptr);
    for (std::size_t i = m; i < tok.size(); i += 3) {
      std::string one = tok;
      one[i] = one[i] == 'a' ? 'b' : one[i] == '1' ? '2' : one[i] == 'A' ? 'B' : one[i] == '-' ? '_' : 'a';
      EXPECT_EQ(t->find_token(one), nullptr) << i;
    }
    EXPECT_EQ(t->find_token(tok.substr(0, tok.size() - 1)), nullptr);
    EXPECT_EQ(t->find_token(tok + "a"), nullptr);
    EXPECT_EQ(t->find_token(tok), &e);
  }
}

TEST(TokenShape, TableDefaultsToPlain) {
  std::vector<ResolvedSecret> in;
  in.push_back({"OPENAI_API_KEY", "env", SecretValue::from("sk-proj-" + alnum(48))});
  auto t = TokenTable::build(std::move(in), {});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->secrets()[0].shown_prefix, "");
  EXPECT_EQ(token_as_shown(t->secrets()[0]).view().substr(0, 7), "KZ_TOK_");
}

// A kept-prefix value: the token stands for the rest, which a host may return on its own
// in base64 or hex (GitHub's blobs). Those forms of the rest are fingerprinted, and found
// as the rest (the answer is then the bare token in that form), also after a rotation
// for the retired value (review 27b #3).
TEST(ClassedToken, RestOfAKeptPrefixValueIsFingerprintedInItsEncodedForms) {
  const std::string value = "ghp_" + alnum(36);
  std::vector<ResolvedSecret> in;
  in.push_back({"GITHUB_TOKEN", "env", SecretValue::from(value)});
  auto t = TokenTable::build(std::move(in), {}, TokenShape::Auto, {"GITHUB_TOKEN"});
  ASSERT_TRUE(t.ok());
  const TokenEntry& e = t->secrets()[0];
  ASSERT_EQ(e.shown_prefix, "ghp_");
  const auto enc = [](wire::ValueForm f, std::string_view v) {
    std::string out(wire::kMaxFormLen, '\0');
    out.resize(wire::encode_form(f, reinterpret_cast<const unsigned char*>(v.data()), v.size(), out.data(), out.size()));
    return out;
  };
  const auto printed = [&](const std::string& s) {
    const auto h = wire::fp_hash(reinterpret_cast<const unsigned char*>(s.data()), s.size(), t->fp_base());
    for (const auto& p : t->secrets()[0].form_prints)
      if (p.len == s.size() && p.hash == h) return true;
    return false;
  };
  const std::string rest = value.substr(4);
  for (wire::ValueForm f : {wire::ValueForm::Base64, wire::ValueForm::Base64NoPad, wire::ValueForm::HexLower,
                            wire::ValueForm::HexUpper}) {
    SCOPED_TRACE(static_cast<int>(f));
    EXPECT_TRUE(printed(enc(f, value)));   // the whole value, as before
    EXPECT_TRUE(printed(enc(f, rest)));
    bool as_rest = false;
    EXPECT_EQ(t->find_value_in_form(enc(f, rest), f, &as_rest), &e);
    EXPECT_TRUE(as_rest);
    EXPECT_EQ(t->find_value_in_form(enc(f, value), f, &as_rest), &e);
    EXPECT_FALSE(as_rest);
  }
  EXPECT_LE(e.form_prints.size(), wire::kValueFormCount);   // all fit one reply
  // After a rotation: the new rest's forms are printed, the retired rest is still found.
  const std::string next = "ghp_" + alnum(35) + "Z";
  ASSERT_TRUE(t->replace_value("GITHUB_TOKEN", SecretValue::from(next)).ok());
  EXPECT_TRUE(printed(enc(wire::ValueForm::Base64, next.substr(4))));
  bool as_rest = false;
  EXPECT_EQ(t->find_value_in_form(enc(wire::ValueForm::HexLower, rest), wire::ValueForm::HexLower, &as_rest), &e);
  EXPECT_TRUE(as_rest);
}

}  // namespace
}  // namespace kz
