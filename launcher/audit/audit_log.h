// The audit log: append-only JSON Lines, one record per event, each carrying the SHA-256
// of the previous line ("prev"), so an edit anywhere breaks the chain that
// `kz audit verify` checks. Records name secrets, providers, hosts and decisions, never
// values. Several kz processes may append to one file: appends take an exclusive flock.
//
// Truncation at the end. A hash chain proves that nothing was changed or removed in the
// middle, but cutting off the last N lines leaves a shorter, perfectly valid chain. So
// every append also writes a head file next to the log, "<log>.head" (0600), holding
// {"records": N, "last": SHA-256 of the last line, "path": the log's path}. It is
// rewritten in place (one pwrite of a small fixed-size block) while the log's exclusive
// flock is still held, and verify reads under a shared flock, so the head always
// describes a complete prefix of the log. (write-to-temp + rename was measured and cost
// ~30x the append on ext4; see write_head.)
// `kz audit verify` compares the two: fewer records, or a different last line, than the
// head records means the end was cut off.
//
// Limits, stated plainly: the head is a second file of the same user. It catches
// accidental truncation (a restore from an old copy, a log rotation gone wrong, a disk
// that filled up) and anything that can write the log but not its directory's other
// files. Someone who can rewrite both files as this user can truncate both consistently
// and verify will not notice. An HMAC over the head with a key in another 0600 file of
// the same user would not change that (that someone reads the key too), so it is not
// done; what does is shipping records off the machine as they are written (the syslog
// and HTTP sinks, audit_sinks.h), where the user cannot reach them.
//
// Logs written before the head existed have no head file; they verify with a note. The
// first append to such a log counts its lines once and writes the head.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "kz/digest.h"
#include "kz/result.h"

namespace kz {

inline constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// $XDG_STATE_HOME/keyzero/audit.jsonl, else ~/.local/state/keyzero/audit.jsonl.
std::string default_audit_path();

// A record already written field by field (the PDP's decision records, thousands a
// second, skip building and dumping a json tree): (key, compact JSON text of the value),
// keys in nlohmann's order (sorted bytewise), without "ts" and "prev", which the log
// splices in where a json object would put them, so the line is the same bytes as the
// json form's.
struct SerializedRecord {
  std::vector<std::pair<std::string, std::string>> fields;
  void sort();   // into nlohmann's key order (after adding fields out of order)
};
// A record waiting to be appended: a json object, or the same already serialised.
using PendingRecord = std::variant<nlohmann::json, SerializedRecord>;

class AuditLog {
 public:
  // Opens (creating 0600, and missing parent directories 0700) for appending.
  static Result<AuditLog> open(const std::string& path);
  AuditLog(AuditLog&& o) noexcept;
  AuditLog& operator=(AuditLog&&) = delete;
  AuditLog(const AuditLog&) = delete;
  ~AuditLog();

  // Adds "ts" and "prev", appends one line and updates the head file. When `written`
  // is given it receives the line as written (without the newline), for the sinks.
  Status append(nlohmann::json record, std::string* written = nullptr);
  // Several records under one lock, one write and one head update (the PDP's decision
  // log, thousands a second). Same chain as appending them one by one.
  Status append_batch(std::vector<nlohmann::json> records, std::vector<std::string>* written = nullptr);
  Status append_batch(std::vector<PendingRecord> records, std::vector<std::string>* written = nullptr);
  const std::string& path() const { return path_; }

 private:
  AuditLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};


// "<log>.head": see the comment at the top.
std::string audit_head_path(const std::string& log_path);

struct VerifyReport {
  bool ok = true;
  std::size_t records = 0;
  std::size_t bad_line = 0;     // 1-based line of the first break (0: not about one line)
  std::string problem;
  bool truncated = false;       // the log ends before the record its head names
  bool head_checked = false;    // a head file was there and agrees with the log
  std::string note;             // e.g. no head file (a log from before heads)
};
VerifyReport verify_audit_file(const std::string& path);

// Counts for `kz audit summary`. A "use" is a token swapped for its value (blind
// mode); a resolution is a secret fetched from its provider for a run.
struct AuditSummary {
  std::size_t records = 0, runs = 0;
  std::map<std::string, std::size_t> by_event, resolved;
  std::map<std::string, std::size_t> by_secret, by_host, by_exe;   // uses
  std::map<std::string, std::size_t> signed_by_secret;   // requests kz signed (AWS SigV4), also uses
  // Rotation ("rotate" records): new values taken per secret, and refreshes that failed
  // or let a value expire (those are also listed with the refusals); restarts for them.
  std::map<std::string, std::size_t> rotated, rotate_failed;
  std::size_t restarts = 0;
  std::vector<std::string> refusals;   // one line each: refusals, denials, errors and leaks
  std::size_t leaks = 0;               // records with "event":"leak"
  std::size_t exfil = 0;               // records with "event":"exfil" (a token to an unbound host)
  // One line each: a run whose config (run.start config_sha256) differs from the one the
  // previous run of the same config path used. An agent can edit its project's config.
  std::vector<std::string> config_changes;
};
Result<AuditSummary> summarize_audit_file(const std::string& path);

}  // namespace kz
