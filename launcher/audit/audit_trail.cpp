#include "audit/audit_trail.h"

#include <sys/random.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <vector>

#include "core/json_dump.h"
#include "core/log.h"
#include "core/signal_free_thread.h"
#include "kz/digest.h"

namespace kz {

namespace {

// Batched mode: how long the writer lets records gather after the first, unless this
// many are already waiting.
constexpr auto kGroupLinger = std::chrono::milliseconds(2);
constexpr std::size_t kGroupCommit = 256;

std::string new_run_id() {
  unsigned char rid[8];
  // From the kernel: a standard kz run needs no other random bytes, and OpenSSL's DRBG
  // costs more to set up (config, provider, cipher fetch) than the whole rest of the
  // trail; RAND_bytes only if getrandom fails.
  if (getrandom(rid, sizeof rid, 0) != static_cast<ssize_t>(sizeof rid)) RAND_bytes(rid, sizeof rid);
  return hex_lower(std::string_view(reinterpret_cast<char*>(rid), sizeof rid));
}

}  // namespace

Result<std::unique_ptr<AuditTrail>> AuditTrail::open(AuditTrailOptions opts) {
  if (opts.path.empty()) opts.path = default_audit_path();
  auto log = AuditLog::open(opts.path);
  if (!log) return make_error(log.error().kind, log.error().message + opts.open_hint);
  auto sinks = AuditSinks::start(opts.sinks, opts.sink_tuning);
  if (!sinks) return sinks.take_error();
  return std::unique_ptr<AuditTrail>(new AuditTrail(std::move(opts), std::move(*log), std::move(*sinks)));
}

AuditTrail::AuditTrail(AuditTrailOptions opts, AuditLog log, std::unique_ptr<AuditSinks> sinks)
    : opts_(std::move(opts)), log_(std::move(log)), sinks_(std::move(sinks)) {
  if (opts_.per_run) {
    run_id_ = new_run_id();
    pid_ = static_cast<long>(getpid());
  }
  if (opts_.batched) writer_ = signal_free_thread([this] { write_batches(); });
}

AuditTrail::~AuditTrail() { close(); }

PendingRecord AuditTrail::stamped(AuditEvent&& event) const {
  if (auto* decision = std::get_if<PdpDecision>(&event); decision != nullptr && decision->serialized()) {
    // The PDP's decision records come already serialised: no tree is built or dumped.
    SerializedRecord r = serialized_record(std::move(*decision));
    auto text = [](std::string_view s) {
      std::string out;
      dump_json_string(s, out);
      return out;
    };
    if (opts_.per_run) {
      r.fields.emplace_back("run", text(run_id_));
      r.fields.emplace_back("pid", std::to_string(pid_));
    }
    if (!opts_.replica.empty()) r.fields.emplace_back("replica", text(opts_.replica));
    r.sort();
    return r;
  }
  nlohmann::json j = to_record(std::move(event));
  if (opts_.per_run) {
    j["run"] = run_id_;
    if (!j.contains("pid")) j["pid"] = pid_;
  }
  if (!opts_.replica.empty()) j["replica"] = opts_.replica;
  return j;
}

void AuditTrail::record(AuditEvent event) {
  PendingRecord j = stamped(std::move(event));
  if (opts_.batched) {
    std::unique_lock lock(queue_mu_);
    if (!stopping_) {
      has_room_.wait(lock, [&] { return queue_.size() < opts_.max_queue || stopping_; });
      if (!stopping_) {
        queue_.push_back(std::move(j));
        has_work_.notify_one();
        return;
      }
    }
  }
  // Immediate, or after close(): written before returning (or by flush(), when held).
  std::lock_guard lock(write_mu_);
  held_.push_back(std::move(j));
  if (!holding_) write_now();
}

void AuditTrail::hold() {
  std::lock_guard lock(write_mu_);
  holding_ = true;
}

void AuditTrail::flush() {
  std::lock_guard lock(write_mu_);
  holding_ = false;
  write_now();
}

void AuditTrail::write_now() {
  if (held_.empty()) return;
  std::vector<PendingRecord> batch;
  batch.swap(held_);
  std::vector<std::string> lines;
  if (auto st = log_.append_batch(std::move(batch), &lines); !st) spdlog::warn("{}", st.error().message);
  for (const auto& l : lines) sinks_->submit(l);
}

void AuditTrail::write_batches() {
  for (;;) {
    std::vector<PendingRecord> batch;
    {
      std::unique_lock lock(queue_mu_);
      has_work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;   // stopping, and everything is written
      if (!stopping_ && queue_.size() < kGroupCommit) {
        // Let a batch gather: each append costs a lock, a read of the last line, a write
        // and a head update whatever its size, and a writer woken for every record (the
        // PDP at thousands a second) spends more on those than on the records. Pushes
        // meanwhile find no waiter, so they cost the request threads no wake-up either.
        lock.unlock();
        std::this_thread::sleep_for(kGroupLinger);
        lock.lock();
      }
      const std::size_t n = std::min<std::size_t>(queue_.size(), 1024);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    has_room_.notify_all();
    std::vector<std::string> lines;
    std::lock_guard lock(write_mu_);
    if (auto st = log_.append_batch(std::move(batch), sinks_->empty() ? nullptr : &lines); !st)
      spdlog::error("audit log: {}", st.error().message);
    for (const auto& l : lines) sinks_->submit(l);
  }
}

void AuditTrail::stop_writer() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  has_work_.notify_all();
  has_room_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void AuditTrail::begin(AuditEvent start, std::optional<AuditEvent> unfinished) {
  {
    std::lock_guard lock(write_mu_);
    unfinished_ = std::move(unfinished);
    ended_ = false;
  }
  record(std::move(start));
}

void AuditTrail::end(AuditEvent stop) {
  {
    std::lock_guard lock(write_mu_);
    if (ended_) return;
    ended_ = true;
    unfinished_.reset();
  }
  record(std::move(stop));
}

void AuditTrail::close() {
  flush();
  std::optional<AuditEvent> unfinished;
  {
    std::lock_guard lock(write_mu_);
    if (closed_) return;
    closed_ = true;
    unfinished = std::move(unfinished_);
    unfinished_.reset();
  }
  if (unfinished) end(std::move(*unfinished));
  stop_writer();
  // After the last record: the sinks drain (2 s at most), and what a sink lost is counted
  // on stderr and in the file (not sent to the sinks, which are finished).
  for (const auto& st : sinks_->finish()) {
    if (st.lost() == 0) continue;
    spdlog::warn("audit sink {}: {} record(s) not delivered ({} dropped: queue full, {} failed, {} still queued at "
                 "the end); the audit file has them all",
                 st.sink, st.lost(), st.dropped_full, st.failed, st.undelivered);
    std::lock_guard lock(write_mu_);
    (void)log_.append(to_record(SinkShortfall{st.sink, run_id_, st.delivered, st.lost(),
                                              "records not delivered to the sink"}));
  }
}

}  // namespace kz
