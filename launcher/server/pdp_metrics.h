// The PDP's /metrics, in the Prometheus text format: decisions by effect, request
// latency, provider errors, authentication failures, reloads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace kz {

class PdpMetrics {
 public:
  void decision(bool allow) { (allow ? allow_ : deny_).fetch_add(1, std::memory_order_relaxed); }
  void provider_error() { provider_errors_.fetch_add(1, std::memory_order_relaxed); }
  void auth_failure() { auth_failures_.fetch_add(1, std::memory_order_relaxed); }
  void reload(bool ok) { (ok ? reload_ok_ : reload_failed_).fetch_add(1, std::memory_order_relaxed); }
  // One HTTP request of the API (not /metrics or /healthz), from read to reply.
  void request(const std::string& endpoint, std::chrono::nanoseconds took);
  std::string render(const std::string& revision) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
  struct Histogram {
    std::array<std::atomic<std::uint64_t>, kBuckets.size()> le{};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  std::atomic<std::uint64_t> allow_{0}, deny_{0}, provider_errors_{0}, auth_failures_{0};
  std::atomic<std::uint64_t> reload_ok_{0}, reload_failed_{0};
  Histogram decide_, resolve_;
};

}  // namespace kz
