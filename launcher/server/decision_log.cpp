#include "server/decision_log.h"

#include <vector>

#include "core/log.h"
#include "core/signal_free_thread.h"

namespace kz {

DecisionLog::DecisionLog(AuditLog log, std::function<void(const std::string&)> sink, std::size_t max_queue)
    : log_(std::move(log)), sink_(std::move(sink)), max_(max_queue) {
  thread_ = signal_free_thread([this] { run(); });
}

DecisionLog::~DecisionLog() { flush(); }

void DecisionLog::submit(nlohmann::json record) {
  std::unique_lock lock(mu_);
  has_room_.wait(lock, [&] { return queue_.size() < max_ || stopping_; });
  queue_.push_back(std::move(record));
  has_work_.notify_one();
}

void DecisionLog::flush() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  has_work_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DecisionLog::run() {
  for (;;) {
    std::vector<nlohmann::json> batch;
    {
      std::unique_lock lock(mu_);
      has_work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;   // stopping, and everything is written
      const std::size_t n = std::min<std::size_t>(queue_.size(), 1024);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    has_room_.notify_all();
    std::vector<std::string> lines;
    if (auto st = log_.append_batch(std::move(batch), sink_ ? &lines : nullptr); !st)
      spdlog::error("decision log: {}", st.error().message);
    for (const auto& l : lines) sink_(l);
  }
}

}  // namespace kz
