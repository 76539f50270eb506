// The one writer of audit records, for kz run, kz mcp and kz server alike: opens the
// tamper-evident log (audit_log.h) and the sinks (audit_sinks.h), stamps a run's
// records with its id, writes the records that open and close a session, and at the
// end drains the sinks and records what they lost.
//
// Two ways of writing, one chain:
//   immediate  each record is appended before record() returns, under one lock (kz run:
//              the broker answers, then records, before it reads the next request, so
//              the log holds every answer in order when the run ends);
//   batched    a thread of its own appends batches (one lock, one write, one head update
//              per batch), so thousands of PDP decisions a second cost the request
//              threads a queue push. Nothing is dropped while kz runs: a full queue
//              makes record() wait (back-pressure on the API rather than a gap in the
//              log). A crash or SIGKILL loses what is queued: the records of the last
//              few milliseconds (the writer lets a batch gather for 2 ms), already
//              answered. The hash chain stays valid, so `kz audit verify` cannot tell;
//              a clean stop writes everything.
// Either way each line goes to the sinks after the file has it, and never blocks on one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_recorder.h"
#include "audit/audit_settings.h"
#include "audit/audit_sinks.h"
#include "kz/result.h"

namespace kz {

struct AuditTrailOptions {
  std::string path;                // the log; empty: default_audit_path()
  std::string open_hint;           // appended to the error when the log cannot be opened
  AuditConfig sinks;               // [audit] syslog / http_*; none by default
  AuditSinkTuning sink_tuning;
  // kz run: every record carries a fresh run id ("run") and, when the event names no
  // process, the launcher's pid ("pid").
  bool per_run = false;
  // kz server replicas: every record carries "replica" (which process wrote it) when set.
  std::string replica;
  bool batched = false;            // see the top of this file
  std::size_t max_queue = 100000;  // batched: records waiting before record() waits
};

class AuditTrail final : public AuditRecorder {
 public:
  // Errors: the log cannot be opened (a session that cannot be audited does not start),
  // a sink's token variable is unset.
  static Result<std::unique_ptr<AuditTrail>> open(AuditTrailOptions opts);
  ~AuditTrail() override;   // close()
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  void record(AuditEvent event) override;

  // Immediate mode: records made between hold() and flush() are kept, then written by
  // flush() in one append (one lock, one write, one head update instead of one each):
  // for a burst made at once, like a run's resolve records, one per secret, before the
  // command starts. close() flushes what is held.
  void hold();
  void flush();

  // The record that opens the session (run.start, mcp.start, pdp.start) and, when given,
  // the one close() writes if end() was never called (a run.stop "not started").
  void begin(AuditEvent start, std::optional<AuditEvent> unfinished = std::nullopt);
  // The record that closes the session (run.stop, ...). Once: later calls are ignored.
  void end(AuditEvent stop);
  // end(unfinished) when the session never ended; writes everything queued; gives the
  // sinks up to 2 s to drain and records each sink's shortfall ("audit.sink", and a
  // warning on stderr). Idempotent.
  void close();

  const std::string& run_id() const { return run_id_; }   // empty unless per_run
  const std::string& path() const { return log_.path(); }

 private:
  AuditTrail(AuditTrailOptions opts, AuditLog log, std::unique_ptr<AuditSinks> sinks);
  PendingRecord stamped(AuditEvent&& event) const;
  void write_now();   // what held_ has, in one append (write_mu_ held)
  void write_batches();
  void stop_writer();

  AuditTrailOptions opts_;
  AuditLog log_;
  std::unique_ptr<AuditSinks> sinks_;
  std::string run_id_;
  long pid_ = 0;

  std::mutex write_mu_;   // immediate: one append at a time; the session's state
  std::optional<AuditEvent> unfinished_;
  bool ended_ = false, closed_ = false;
  bool holding_ = false;
  std::vector<PendingRecord> held_;   // immediate mode: to write (at once, or at flush())

  // batched
  std::mutex queue_mu_;
  std::condition_variable has_work_, has_room_;
  std::deque<PendingRecord> queue_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace kz
