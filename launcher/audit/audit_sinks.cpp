#include "audit/audit_sinks.h"

#include <syslog.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "audit/audit_schema.h"
#include "core/log.h"
#include "core/utc_time.h"
#include "kz/providers/http_client.h"
#include "kz/wipe.h"
#include "core/signal_free_thread.h"

namespace kz {

namespace {

std::string now_ts() { return utc_iso(std::chrono::system_clock::now()); }

}  // namespace

// One destination: a bounded queue and the thread that empties it. Subclasses say how
// a batch is delivered.
class AuditSink {
 public:
  AuditSink(std::string name, std::size_t queue_max, std::size_t batch, std::chrono::milliseconds flush)
      : name_(std::move(name)), queue_max_(queue_max), batch_(batch), flush_(flush) {}
  virtual ~AuditSink() = default;
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  void start() {
    // Signals stay with the supervisor's signalfd (signal_free_thread.h).
    thread_ = signal_free_thread([this] { loop(); });
  }

  void submit(const std::string& line) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      if (q_.size() >= queue_max_) {
        ++stats_.dropped_full;
        ++dropped_unreported_;
        return;
      }
      q_.push_back(line);
    }
    cv_.notify_one();
  }

  // Two phases so that several sinks drain at the same time, within one deadline.
  void begin_finish(std::chrono::steady_clock::time_point deadline) {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      drain_deadline_ = deadline;
    }
    cv_.notify_all();
  }

  AuditSinkStats end_finish() {
    {
      // Past the drain time, retries stop waiting and the queue is given up.
      std::unique_lock lk(mu_);
      if (!cv_.wait_until(lk, drain_deadline_, [&] { return done_; })) {
        abort_ = true;
        cancel_ = true;   // a request in flight is abandoned too (within about a second)
      }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lk(mu_);
    stats_.undelivered += q_.size();
    q_.clear();
    return stats_;
  }

 protected:
  // Deliver one batch (the note about drops, if any, comes first). True when accepted.
  virtual bool deliver(const std::vector<std::string>& lines, std::chrono::steady_clock::time_point deadline) = 0;
  virtual int attempts() const { return 1; }
  virtual std::chrono::milliseconds backoff() const { return std::chrono::milliseconds(0); }
  virtual std::chrono::milliseconds request_timeout() const { return std::chrono::milliseconds(5000); }

  const std::atomic<bool>* cancel_flag() const { return &cancel_; }

  // Errors are reported once per distinct message, not once per batch.
  void report(const std::string& error) {
    if (error == last_error_) return;
    last_error_ = error;
    spdlog::warn("audit sink {}: {}", name_, error);
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stopping_ || !q_.empty(); });
      if (!stopping_ && q_.size() < batch_)
        cv_.wait_for(lk, flush_, [&] { return stopping_ || q_.size() >= batch_; });
      if (abort_ || (stopping_ && q_.empty())) break;
      if (q_.empty()) continue;
      std::vector<std::string> lines;
      const std::size_t n = std::min(batch_, q_.size());
      if (dropped_unreported_ > 0) {
        lines.push_back(to_record(SinkDropped{name_, now_ts(), dropped_unreported_,
                                              "queue full or delivery failed: the missing records are in the audit file"})
                            .dump());
      }
      for (std::size_t i = 0; i < n; ++i) {
        lines.push_back(std::move(q_.front()));
        q_.pop_front();
      }
      const std::size_t reported = dropped_unreported_;
      bool ok = false;
      auto wait = backoff();
      for (int attempt = 0; attempt < attempts() && !abort_; ++attempt) {
        if (attempt > 0) {
          if (cv_.wait_for(lk, wait, [&] { return abort_; })) break;
          wait = std::min(wait * 2, std::chrono::milliseconds(5000));
        }
        auto deadline = std::chrono::steady_clock::now() + request_timeout();
        if (stopping_) deadline = std::min(deadline, drain_deadline_);
        lk.unlock();
        ok = deliver(lines, deadline);
        lk.lock();
        if (ok) break;
      }
      if (ok) {
        stats_.delivered += n;
        dropped_unreported_ -= std::min(dropped_unreported_, reported);
      } else {
        // The sink is told about these with the next batch that gets through.
        stats_.failed += n;
        dropped_unreported_ += n;
      }
    }
    done_ = true;
    lk.unlock();
    cv_.notify_all();
  }

  std::string name_;
  const std::size_t queue_max_, batch_;
  const std::chrono::milliseconds flush_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  AuditSinkStats stats_{name_};
  std::size_t dropped_unreported_ = 0;
  bool stopping_ = false, abort_ = false, done_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::string last_error_;
  std::atomic<bool> cancel_{false};
  std::thread thread_;
};

namespace {

// syslog(3): ident "kz", LOG_AUTHPRIV (the facility for security/authorization messages;
// journald keeps it with the rest of the system's auth log). One record per message.
class SyslogSink final : public AuditSink {
 public:
  explicit SyslogSink(std::size_t queue_max) : AuditSink("syslog", queue_max, 64, std::chrono::milliseconds(0)) {
    openlog("kz", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
  }
  ~SyslogSink() override { closelog(); }

 protected:
  bool deliver(const std::vector<std::string>& lines, std::chrono::steady_clock::time_point) override {
    for (const auto& l : lines) syslog(LOG_AUTHPRIV | LOG_INFO, "%s", l.c_str());
    return true;
  }
};

class HttpSink final : public AuditSink {
 public:
  HttpSink(const AuditConfig& cfg, std::string token, AuditSinkTuning t)
      : AuditSink("http", cfg.queue_max, cfg.http_batch, cfg.http_flush),
        url_(cfg.http_url), ca_file_(cfg.http_ca_file), token_(std::move(token)), tuning_(t) {}
  ~HttpSink() override { wipe(token_); }

 protected:
  int attempts() const override { return tuning_.attempts; }
  std::chrono::milliseconds backoff() const override { return tuning_.backoff; }
  std::chrono::milliseconds request_timeout() const override { return tuning_.request_timeout; }

  bool deliver(const std::vector<std::string>& lines, std::chrono::steady_clock::time_point deadline) override {
    HttpRequest req;
    req.method = "POST";
    req.url = url_;
    req.ca_file = ca_file_;
    req.deadline = deadline;
    req.cancel = cancel_flag();
    req.headers.emplace_back("Content-Type", "application/json");
    if (!token_.empty()) req.headers.emplace_back("Authorization", "Bearer " + token_);
    std::size_t size = 2;
    for (const auto& l : lines) size += l.size() + 1;
    req.body.reserve(size);
    req.body += '[';
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) req.body += ',';
      req.body += lines[i];
    }
    req.body += ']';
    // The URL is not in messages (a collector URL may carry a key in its query).
    auto r = http_send(std::move(req), "audit sink: POST");
    if (!r) {
      report(r.error().message);
      return false;
    }
    if (r->status < 200 || r->status > 299) {
      report("the collector answered HTTP " + std::to_string(r->status));
      return false;
    }
    return true;
  }

 private:
  std::string url_, ca_file_, token_;
  AuditSinkTuning tuning_;
};

}  // namespace

Result<std::unique_ptr<AuditSinks>> AuditSinks::start(const AuditConfig& cfg, AuditSinkTuning tuning) {
  std::unique_ptr<AuditSinks> s(new AuditSinks());
  std::string token;
  if (!cfg.http_token_env.empty()) {
    const char* v = std::getenv(cfg.http_token_env.c_str());
    if (v == nullptr || *v == '\0')
      return make_error(ErrorKind::Config, format_pos(cfg.http_token_env_pos) + ": audit.http_token_env: " +
                                               cfg.http_token_env + " is not set (it must hold the collector's token)");
    token = v;
  }
  if (cfg.syslog) s->sinks_.push_back(std::make_unique<SyslogSink>(cfg.queue_max));
  if (!cfg.http_url.empty()) s->sinks_.push_back(std::make_unique<HttpSink>(cfg, std::move(token), tuning));
  wipe(token);
  for (auto& k : s->sinks_) k->start();
  return s;
}

AuditSinks::~AuditSinks() {
  if (!finished_) finish();
}

void AuditSinks::submit(const std::string& line) {
  for (auto& k : sinks_) k->submit(line);
}

std::vector<AuditSinkStats> AuditSinks::finish(std::chrono::milliseconds drain) {
  std::vector<AuditSinkStats> out;
  if (finished_) return out;
  finished_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain;
  for (auto& k : sinks_) k->begin_finish(deadline);
  for (auto& k : sinks_) out.push_back(k->end_finish());
  return out;
}

}  // namespace kz
