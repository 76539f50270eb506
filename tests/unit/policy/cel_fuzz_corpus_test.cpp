// Replays the CEL fuzz target (tests/fuzz/cel_parse_fuzz.cpp) over its checked-in seed
// corpus, then over deterministic mutations of it (byte flips, token insertions,
// truncations, splices), so the ASan/UBSan build exercises the parser and evaluator on
// malformed input even where libFuzzer is not available. scripts/fuzz-cel runs the
// real fuzzer.
#include <gtest/gtest.h>

#include <random>

#include "../fuzz/cel_parse_fuzz.cpp"
#include "test_support.h"

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> out;
  for (auto& [name, data] : kz::test::fuzz_corpus("cel")) out.push_back(std::move(data));
  return out;
}

int run(const std::string& s) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

TEST(CelFuzzCorpus, SeedsRunClean) {
  const auto seeds = corpus();
  ASSERT_GT(seeds.size(), 20u);
  for (const auto& s : seeds) EXPECT_EQ(run(s), 0) << s;
}

TEST(CelFuzzCorpus, MutationsRunClean) {
  const auto seeds = corpus();
  static const char* tokens[] = {"(", ")", "[", "]", "{", "}", ".", ",", ":", "?", "'", "\"", "'''", "\\",
                                 "\\x", "\\u", "\\U0010FFFF", "r'", "b'", "`", "&&", "||", "!", "-", "in",
                                 ".all(x,", ".map(x,", "has(", "size(", "1/0", "9223372036854775808",
                                 "0x", "1e999", "u", "\xff", "\xc3", "null", "identity.", "x"};
  std::mt19937 rng(20261126);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  std::size_t runs = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seeds[pick(seeds.size())];
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = s.empty() ? 0 : pick(s.size() + 1);
      switch (pick(5)) {
        case 0: if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(pick(256)); break;
        case 1: s.insert(pos, tokens[pick(sizeof tokens / sizeof *tokens)]); break;
        case 2: s.resize(pos); break;
        case 3: if (pos < s.size()) s.erase(pos, 1 + pick(4)); break;
        default: {
          const std::string& other = seeds[pick(seeds.size())];
          s.insert(pos, other.substr(pick(other.size() + 1)));
        }
      }
    }
    EXPECT_EQ(run(s), 0);
    ++runs;
  }
  EXPECT_EQ(runs, 20000u);
}

}  // namespace
