// Tripwires (canaries in the output): seen in any chunking and in their encoded forms,
// reported once per sight, masked or passed through as asked.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "masking/encodings.h"
#include "masking/masker.h"

namespace kz {
namespace {

struct Fed {
  std::string out;
  std::vector<std::size_t> seen;
};

Fed feed_in_chunks(const std::shared_ptr<const MaskPatterns>& p, const std::string& text, std::size_t chunk) {
  Fed f;
  StreamMasker m(p, [&](std::size_t i) { f.seen.push_back(i); });
  for (std::size_t i = 0; i < text.size(); i += chunk) m.feed(std::string_view(text).substr(i, chunk), f.out);
  m.flush(f.out);
  return f;
}

TEST(Tripwire, MaskedTripwireIsReplacedAndReported) {
  const std::string real = "real-secret-value-123", canary = "sk-proj-AAAABBBBCCCCDDDD";
  auto p = MaskPatterns::build({real}, {}, {{canary, true}});
  for (std::size_t chunk : {1u, 3u, 7u, 100u}) {
    Fed f = feed_in_chunks(p, "a " + real + " b " + canary + " c\n", chunk);
    EXPECT_EQ(f.out, "a <concealed by kz> b <concealed by kz> c\n") << chunk;
    EXPECT_EQ(f.seen, std::vector<std::size_t>{0}) << chunk;
  }
}

TEST(Tripwire, UnmaskedTripwirePassesThroughAndIsReported) {
  const std::string tok = "KZ_TOK_0123456789abcdefABCDEF";
  auto p = MaskPatterns::build({}, {}, {{"other-canary-value-xyz", true}, {tok, false}});
  Fed f = feed_in_chunks(p, "env: sk-proj-" + tok + "\nagain " + tok + "\n", 5);
  EXPECT_EQ(f.out, "env: sk-proj-" + tok + "\nagain " + tok + "\n");
  EXPECT_EQ(f.seen, (std::vector<std::size_t>{1, 1}));
}

TEST(Tripwire, EncodedFormsAreSightsToo) {
  const std::string canary = "ghp_0123456789abcdefghijABCDEFGHIJ0123";
  auto p = MaskPatterns::build({}, {}, {{canary, true}});
  Fed f = feed_in_chunks(p, base64_encode(canary, false, true) + "\n" + percent_encode(canary, true, false) + "\n", 4);
  EXPECT_EQ(f.seen.size(), 2u);
  EXPECT_EQ(f.out.find("ghp_"), std::string::npos);
}

TEST(Tripwire, RealValuesAreNotTripwires) {
  auto p = MaskPatterns::build({"real-secret-value-123"}, {}, {});
  Fed f = feed_in_chunks(p, "real-secret-value-123\n", 2);
  EXPECT_TRUE(f.seen.empty());
}

}  // namespace
}  // namespace kz
