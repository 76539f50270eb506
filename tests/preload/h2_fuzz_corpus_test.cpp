// Replays the checked-in seed corpus of the HTTP/2 fuzz target (tests/fuzz/corpus/h2/)
// through LLVMFuzzerTestOneInput, so every build (and the ASan/UBSan build) runs the
// target's inputs and properties without libFuzzer. scripts/fuzz-h2 does the fuzzing.
#include <gtest/gtest.h>

#include "../fuzz/h2_frames_fuzz.cpp"   // NOLINT(bugprone-suspicious-include): the target itself
#include "test_support.h"

namespace {

TEST(H2FuzzCorpus, ReplaysSeedCorpus) {
  const auto seeds = kz::test::fuzz_corpus("h2");
  for (const auto& [name, data] : seeds) {
    SCOPED_TRACE(name);
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size()), 0);
  }
  EXPECT_GE(seeds.size(), 20u) << "seed corpus too small (or tests/fuzz/corpus/h2 missing)";
  std::printf("replayed %zu corpus inputs\n", seeds.size());
}

}  // namespace
