// The one UTC formatter (core/utc_time.h) that records, MCP answers and rotation
// expiries share.
#include <gtest/gtest.h>

#include "core/utc_time.h"

namespace kz {
namespace {

TEST(UtcTime, SecondsAndMilliseconds) {
  EXPECT_EQ(utc_iso(std::int64_t{0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_iso(std::int64_t{1796622426}), "2026-12-07T05:47:06Z");
  const auto t = std::chrono::system_clock::from_time_t(1796622426) + std::chrono::milliseconds(7);
  EXPECT_EQ(utc_iso(t, true), "2026-12-07T05:47:06.007Z");
  EXPECT_EQ(utc_iso(t), "2026-12-07T05:47:06Z");
}

}  // namespace
}  // namespace kz
