// Where the parts of kz that see an auditable event send it: the broker, the proxy, the
// sensors, blind mode, the MCP tools, the PDP. They hold an AuditRecorder and know
// nothing of files, sinks or run ids; AuditTrail (audit_trail.h) is the one that writes.
#pragma once

#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit_schema.h"

namespace kz {

class AuditRecorder {
 public:
  virtual ~AuditRecorder() = default;
  // Thread-safe: the broker thread, the proxy's I/O threads and the tap's reader call
  // it at once. Never throws for a write that failed (that is reported, not raised).
  virtual void record(AuditEvent event) = 0;
};

// Keeps each record (as JSON, without ts/prev/run) in memory: for tests, and for tools
// that want the records rather than a file.
class MemoryAuditRecorder final : public AuditRecorder {
 public:
  void record(AuditEvent event) override {
    nlohmann::json j = to_record(event);
    std::lock_guard lock(mu_);
    records_.push_back(std::move(j));
  }
  std::vector<nlohmann::json> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }
  // Every record, one per line (for a search of the whole text, and a failure message).
  std::string dump() const {
    std::string out;
    for (const auto& r : records()) out += r.dump() + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<nlohmann::json> records_;
};

}  // namespace kz
