#include "core/utc_time.h"

#include <cstdio>
#include <ctime>

namespace kz {

std::string utc_iso(std::chrono::system_clock::time_point t, bool millis) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms)));
  }
  buf[n++] = 'Z';
  return std::string(buf, n);
}

std::string utc_iso(std::int64_t unix_seconds) {
  return utc_iso(std::chrono::system_clock::from_time_t(static_cast<std::time_t>(unix_seconds)));
}

}  // namespace kz
