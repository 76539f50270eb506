// The audit log: append-only JSON Lines, one record per event, each carrying the SHA-256
// of the previous line ("prev"), so an edit anywhere breaks the chain that
// `kz audit verify` checks. Records name secrets, providers, hosts and decisions, never
// values. Several kz processes may append to one file: appends take an exclusive flock.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kz/digest.h"
#include "kz/result.h"

namespace kz {

inline constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// $XDG_STATE_HOME/keyzero/audit.jsonl, else ~/.local/state/keyzero/audit.jsonl.
std::string default_audit_path();

class AuditLog {
 public:
  // Opens (creating 0600, and missing parent directories 0700) for appending.
  static Result<AuditLog> open(const std::string& path);
  AuditLog(AuditLog&& o) noexcept;
  AuditLog& operator=(AuditLog&&) = delete;
  AuditLog(const AuditLog&) = delete;
  ~AuditLog();

  // Adds "ts" and "prev" and appends one line.
  Status append(nlohmann::json record);
  const std::string& path() const { return path_; }

 private:
  AuditLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};


struct VerifyReport {
  bool ok = true;
  std::size_t records = 0;
  std::size_t bad_line = 0;     // 1-based line of the first break
  std::string problem;
};
VerifyReport verify_audit_file(const std::string& path);

// Counts for `kz audit summary`. A "use" is a token swapped for its value (blind
// mode); a resolution is a secret fetched from its provider for a run.
struct AuditSummary {
  std::size_t records = 0, runs = 0;
  std::map<std::string, std::size_t> by_event, resolved;
  std::map<std::string, std::size_t> by_secret, by_host, by_exe;   // uses
  std::vector<std::string> refusals;   // one line each: refusals, denials and errors
};
Result<AuditSummary> summarize_audit_file(const std::string& path);

}  // namespace kz
