// dump_json must write exactly what nlohmann's compact dump (with replacement of invalid
// UTF-8) writes: audit lines are hashed as written, and readers parse them with nlohmann.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "core/json_dump.h"

namespace kz {
namespace {

using nlohmann::json;

std::string reference(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

TEST(JsonDump, MatchesNlohmannOnEveryKindOfValue) {
  const json cases[] = {
      nullptr, true, false, 0, -1, 42, INT64_MIN, INT64_MAX, UINT64_MAX, 1.5, -0.0, 1e300, 3.0, 0.1,
      "", "plain ascii", "quote \" and backslash \\", "tab\tnewline\ncr\r", std::string("nul\0byte", 8),
      "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "invalid \xff\xfe utf-8 \xc3", "</script>",
      json::array(), json::object(), json::array({1, "two", nullptr, json::array({json::object()})}),
      json::binary({1, 2, 3}),
      json{{"z", 1}, {"a", json{{"nested", "x\"y"}, {"k\xe9y", 2.25}}}, {"m", json::array({true, false})}},
  };
  for (const auto& j : cases) EXPECT_EQ(dump_json(j), reference(j)) << reference(j);
}

// The plain-string check works a word at a time: every position of a long string, each
// kind of byte that needs escaping (or is not ASCII), and the printable bytes around them.
TEST(JsonDump, EveryByteThatNeedsEscapingIsFoundAtEveryPosition) {
  const std::string base = "abcdefghijklmnopqrstuvwxyz0123456789 ~!#$%&'()*+,-./:;<=>?@[]^_`{|}";
  for (const int special : {0x00, 0x01, 0x1f, 0x22, 0x5c, 0x7f, 0x80, 0xc3, 0xff}) {   // 0x22 '"', 0x5c '\\'
    for (std::size_t at = 0; at < base.size(); ++at) {
      std::string s = base;
      s[at] = static_cast<char>(special);
      ASSERT_EQ(dump_json(json(s)), reference(json(s))) << "byte " << special << " at " << at;
    }
  }
  for (int c = 0x20; c < 0x7f; ++c) {   // every printable byte alone and in a word
    const std::string s(9, static_cast<char>(c));
    ASSERT_EQ(dump_json(json(s)), reference(json(s))) << c;
  }
}

TEST(JsonDump, AnAuditRecordIsTheSameLine) {
  const json record = json::parse(R"J({"decision":"allow","decision_id":"087b5ddcbb4d51aee538a03eb7119dc9",
    "endpoint":"decide","event":"decision","input":{"identity":{"aud":"keyzero","exp":1796605172,
    "iss":"https://auth.bench","service":"data-pipeline-agent","sub":"bench","groups":["a","b"]},
    "request":{"source":"127.0.0.1","time":1796601575},"secrets":[{"name":"DB","provider":"vault",
    "ref":"secret/data/prod/db#password"}]},"result":[{"allow":true,"reason":"allowed by (identity.service == 'x')"}],
    "sub":"bench","ts":"2026-12-06T23:59:35.083Z"})J");
  EXPECT_EQ(dump_json(record), reference(record));
  std::string out = "prefix:";
  dump_json(record, out);
  EXPECT_EQ(out, "prefix:" + reference(record));
}

}  // namespace
}  // namespace kz
