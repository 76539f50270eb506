// `kz audit query`: which records match a set of filters, and how one record reads on
// a terminal. Pure functions (no I/O except reading the file in query_audit_file), so
// the filter and the time parsing are unit-tested without a log.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kz/result.h"

namespace kz {

using AuditTime = std::chrono::system_clock::time_point;

// Every filter that is set must match (AND). Strings compare exactly, except host,
// which compares case-insensitively (DNS names are).
struct AuditQuery {
  std::optional<std::string> secret, host, event, decision, run;
  std::optional<long> pid;
  std::optional<AuditTime> since;   // ts >= since
  std::optional<AuditTime> until;   // ts <= until
};

// RFC 3339 ("2026-11-26T03:00:00Z", fractions and +hh:mm offsets allowed), or a time
// relative to `now`: "15m", "2h", "1d", "30s", "1w" (that long ago).
Result<AuditTime> parse_audit_time(std::string_view text, AuditTime now);

// Only RFC 3339 (the records' "ts"); nullopt when it is not one.
std::optional<AuditTime> parse_rfc3339(std::string_view text);

bool audit_record_matches(const nlohmann::json& record, const AuditQuery& q);

// One line: ts event decision secret=… host=… exe=… pid=… lineage=a → b reason.
std::string format_audit_record(const nlohmann::json& record);

// Calls `out(line, record)` for each matching line of the file, in order. Lines that
// are not JSON objects are skipped (verify reports them). Returns the number matched.
Result<std::size_t> query_audit_file(const std::string& path, const AuditQuery& q,
                                     const std::function<void(const std::string&, const nlohmann::json&)>& out);

}  // namespace kz
