// Replays the checked-in seed corpus of the HTTP/2 fuzz target (tests/fuzz/corpus/h2/)
// through LLVMFuzzerTestOneInput, so every build (and the ASan/UBSan build) runs the
// target's inputs and properties without libFuzzer. scripts/fuzz-h2 does the fuzzing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../fuzz/h2_frames_fuzz.cpp"   // NOLINT(bugprone-suspicious-include): the target itself
#include "test_support.h"

namespace {

TEST(H2FuzzCorpus, ReplaysSeedCorpus) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(kz::test::source_dir()) / "tests/fuzz/corpus/h2";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    SCOPED_TRACE(e.path().filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size()), 0);
    ++n;
  }
  EXPECT_GE(n, 20) << "seed corpus too small";
  std::printf("replayed %d corpus inputs\n", n);
}

}  // namespace
