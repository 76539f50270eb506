// UTC timestamps as kz writes them in records and messages: ISO 8601 / RFC 3339,
// "2026-12-07T05:57:06Z", or with milliseconds, "2026-12-07T05:57:06.204Z".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kz {

std::string utc_iso(std::chrono::system_clock::time_point t, bool millis = false);
// Unix seconds.
std::string utc_iso(std::int64_t unix_seconds);

}  // namespace kz
