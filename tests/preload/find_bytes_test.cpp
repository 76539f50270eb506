// find_head_end and find_bytes against glibc's memmem, which they replace on the shim's
// per-request paths: every offset, needles cut by the buffer's end, and many random
// buffers over a small alphabet (so CR/LF runs and near-misses are common).
#include <gtest/gtest.h>

#include <string.h>

#include <random>
#include <string>

#include "kz/preload/find_bytes.h"

namespace kz::preload {
namespace {

const char* reference(const std::string& s, const char* needle, std::size_t m) {
  return static_cast<const char*>(memmem(s.data(), s.size(), needle, m));
}

TEST(FindBytes, HeadEndAtEveryOffset) {
  for (std::size_t at = 0; at < 40; ++at) {
    std::string s(at, 'a');
    s += "\r\n\r\n";
    s += "tail\r\n\r\n";
    EXPECT_EQ(find_head_end(s.data(), s.size()), s.data() + at) << at;
  }
}

TEST(FindBytes, HeadEndNeedsAllFourBytes) {
  for (const std::string s : {"", "\r", "\r\n", "\r\n\r", "\n\r\n\r", "a\r\n\r", "\r\n\n\r\n", "\n\n\n\n",
                              "\r\r\n\n"}) {
    EXPECT_EQ(find_head_end(s.data(), s.size()), nullptr) << s.size();
  }
  const std::string cut = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  for (std::size_t n = 0; n < cut.size(); ++n)
    EXPECT_EQ(find_head_end(cut.data(), n), nullptr) << n;   // the end is beyond n
  EXPECT_EQ(find_head_end(cut.data(), cut.size()), cut.data() + cut.size() - 4);
}

TEST(FindBytes, UnsignedFormAgrees) {
  const std::string s = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  EXPECT_EQ(find_head_end(u, s.size()), u + s.find("\r\n\r\n"));
}

TEST(FindBytes, AgreesWithMemmemOnRandomBuffers) {
  std::mt19937 rng(7);
  const char alphabet[] = {'\r', '\n', 'a', 'A', 'W', 'S', '4', '-'};
  const std::string sig = "AWS4-";
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 48, ' ');
    for (char& c : s) c = alphabet[rng() % sizeof alphabet];
    ASSERT_EQ(find_head_end(s.data(), s.size()), reference(s, "\r\n\r\n", 4)) << round;
    ASSERT_EQ(find_bytes(s.data(), s.size(), "\r\n", 2), reference(s, "\r\n", 2)) << round;
    ASSERT_EQ(find_bytes(s.data(), s.size(), sig.data(), sig.size()), reference(s, sig.data(), sig.size())) << round;
    ASSERT_EQ(find_bytes(s.data(), s.size(), "a", 1), reference(s, "a", 1)) << round;
  }
}

TEST(FindBytes, NeedleAtTheVeryEndAndLongerThanTheBuffer) {
  const std::string s = "xxAWS4-HMAC-SHA256";
  EXPECT_EQ(find_bytes(s.data(), s.size(), "AWS4-HMAC-SHA256", 16), s.data() + 2);
  EXPECT_EQ(find_bytes(s.data(), s.size() - 1, "AWS4-HMAC-SHA256", 16), nullptr);
  EXPECT_EQ(find_bytes(s.data(), 3, "AWS4-HMAC-SHA256", 16), nullptr);
  EXPECT_EQ(find_bytes(s.data(), 0, "A", 1), nullptr);
  EXPECT_EQ(find_bytes(s.data(), s.size(), "", 0), s.data());
}

}  // namespace
}  // namespace kz::preload
