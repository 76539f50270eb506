// The PDP's decision log: audit records written by a thread of their own, in batches
// (one lock, one write, one head update per batch), so that thousands of decisions a
// second cost the request threads a queue push. Nothing is dropped: when the queue is
// full, submit() waits (back-pressure on the API rather than a gap in the log).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "audit/audit_log.h"

namespace kz {

class DecisionLog {
 public:
  // `sink` gets each line as written (the audit sinks); may be empty.
  DecisionLog(AuditLog log, std::function<void(const std::string&)> sink, std::size_t max_queue = 100000);
  ~DecisionLog();   // flush()
  void submit(nlohmann::json record);
  // Writes everything submitted so far, then stops the thread. Idempotent.
  void flush();

 private:
  void run();

  AuditLog log_;
  std::function<void(const std::string&)> sink_;
  std::size_t max_;
  std::mutex mu_;
  std::condition_variable has_work_, has_room_;
  std::deque<nlohmann::json> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kz
