// Copies of audit records for places the local user cannot rewrite: syslog/journald and
// an HTTP(S) collector (a SIEM). The file stays the record of truth: AuditLog::append
// writes it synchronously first; only then does a copy of the line go to the sinks.
//
// Back-pressure never reaches the run or the file: each sink has a bounded in-memory
// queue served by its own thread. submit() only takes a short lock and pushes; when a
// sink's queue is full the record is dropped from that sink only and counted. The count
// travels to the sink itself in a note record ({"event":"audit.sink.dropped", ...}) with
// the next batch that gets through, and finish() returns it so the run can warn on stderr
// and write it to the file. HTTP batches are retried with exponential backoff; a batch
// that still fails is counted as failed. At the end of a run the sinks get a bounded
// time to drain; a request still in flight then is abandoned (libcurl notices within
// about a second).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "audit/audit_settings.h"
#include "kz/result.h"

namespace kz {

struct AuditSinkStats {
  std::string sink;                 // "syslog" | "http"
  std::size_t delivered = 0;        // records the sink accepted
  std::size_t dropped_full = 0;     // not queued: the queue was full
  std::size_t failed = 0;           // in batches that failed after every retry
  std::size_t undelivered = 0;      // still queued when the drain time ran out
  std::size_t lost() const { return dropped_full + failed + undelivered; }
};

struct AuditSinkTuning {
  std::chrono::milliseconds request_timeout{5000};   // one POST
  int attempts = 5;                                  // per batch
  std::chrono::milliseconds backoff{200};            // doubled per retry, at most 5 s
};

class AuditSink;

class AuditSinks {
 public:
  // Starts a thread per configured sink; none configured gives an object that does
  // nothing. Errors: http_token_env names a variable that is not set (the message names
  // the variable, never a value).
  static Result<std::unique_ptr<AuditSinks>> start(const AuditConfig& cfg, AuditSinkTuning tuning = {});
  ~AuditSinks();   // finish(2 s) if not finished
  AuditSinks(const AuditSinks&) = delete;
  AuditSinks& operator=(const AuditSinks&) = delete;

  bool empty() const { return sinks_.empty(); }
  // One complete JSON line as written to the file. Never blocks on a sink.
  void submit(const std::string& line);
  // Stops accepting, lets each sink drain for up to `drain`, joins the threads.
  std::vector<AuditSinkStats> finish(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));

 private:
  AuditSinks() = default;
  std::vector<std::unique_ptr<AuditSink>> sinks_;
  bool finished_ = false;
};

}  // namespace kz
