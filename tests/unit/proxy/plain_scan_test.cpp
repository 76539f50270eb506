// PlainTokenScanner (launcher/proxy/plain_scan.h): every token in a plain byte stream is
// reported once, also when a chunk boundary falls inside its marker.
#include "proxy/plain_scan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kz/wire/token.h"

namespace kz {
namespace {

struct Sink {
  std::vector<std::string> got;
  static void add(void* ctx, const char* tok, std::size_t len) { static_cast<Sink*>(ctx)->got.emplace_back(tok, len); }
};

std::vector<std::string> scan(const std::vector<std::string>& chunks) {
  Sink s;
  PlainTokenScanner sc(&Sink::add, &s);
  for (const auto& c : chunks) sc.feed(c.data(), c.size());
  sc.finish();
  return s.got;
}

const std::vector<std::string> kMarkers{wire::kTokenPrefix, wire::kMarkerLower, wire::kMarkerUpper,
                                        wire::kMarkerDigits};

TEST(PlainScan, TokenSplitAtEveryPointIsReportedOnce) {
  for (const auto& m : kMarkers) {
    const std::string tok = m + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ";
    const std::string s = "GET /x HTTP/1.1\r\nX-Key: " + tok + "\r\n\r\n";
    for (std::size_t split = 1; split < s.size(); ++split)
      EXPECT_EQ(scan({s.substr(0, split), s.substr(split)}), std::vector<std::string>{tok}) << m << " " << split;
  }
}

// The first chunk ends with a marker's start followed by a second, shorter start of it
// ("…kztok" then "ztokqx…" where the marker begins at the last "k"): the marker starts
// inside the kept fragment, not at its start (review 27b #5).
TEST(PlainScan, SplitInsideSelfOverlappingMarkerIsReported) {
  for (const auto& m : kMarkers) {
    const std::string tok = m + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ";
    for (std::size_t k = 1; k < m.size(); ++k)
      for (std::size_t j = 1; j < m.size(); ++j) {
        const std::string s = "x=" + m.substr(0, k) + tok + "&y=1";
        const std::size_t split = 2 + k + j;
        EXPECT_EQ(scan({s.substr(0, split), s.substr(split)}), std::vector<std::string>{tok})
            << m << " k " << k << " j " << j;
        // Also with the second chunk arriving a byte at a time.
        std::vector<std::string> chunks{s.substr(0, split)};
        for (std::size_t i = split; i < s.size(); ++i) chunks.push_back(s.substr(i, 1));
        EXPECT_EQ(scan(chunks), std::vector<std::string>{tok}) << m << " bytewise k " << k << " j " << j;
      }
  }
}

}  // namespace
}  // namespace kz
