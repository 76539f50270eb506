#include "server/pdp_metrics.h"

#include <cstdio>

namespace kz {

void PdpMetrics::request(const std::string& endpoint, std::chrono::nanoseconds took) {
  Histogram& h = endpoint == "resolve" ? resolve_ : decide_;
  const double s = std::chrono::duration<double>(took).count();
  for (std::size_t i = 0; i < kBuckets.size(); ++i)
    if (s <= kBuckets[i]) h.le[i].fetch_add(1, std::memory_order_relaxed);
  h.count.fetch_add(1, std::memory_order_relaxed);
  h.sum_ns.fetch_add(static_cast<std::uint64_t>(took.count()), std::memory_order_relaxed);
}

std::string PdpMetrics::render(const std::string& revision) const {
  std::string out;
  char line[256];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    out += line;
  };
  auto u = [](const std::atomic<std::uint64_t>& a) { return static_cast<unsigned long long>(a.load()); };
  out += "# HELP kz_pdp_decisions_total Policy decisions, one per secret asked for.\n";
  out += "# TYPE kz_pdp_decisions_total counter\n";
  add("kz_pdp_decisions_total{effect=\"allow\"} %llu\n", u(allow_));
  add("kz_pdp_decisions_total{effect=\"deny\"} %llu\n", u(deny_));
  out += "# HELP kz_pdp_provider_errors_total Allowed secrets a provider failed to resolve.\n";
  out += "# TYPE kz_pdp_provider_errors_total counter\n";
  add("kz_pdp_provider_errors_total %llu\n", u(provider_errors_));
  out += "# HELP kz_pdp_auth_failures_total Requests refused because the identity token did not verify.\n";
  out += "# TYPE kz_pdp_auth_failures_total counter\n";
  add("kz_pdp_auth_failures_total %llu\n", u(auth_failures_));
  out += "# HELP kz_pdp_reloads_total Bundle reloads by result (a failed one keeps the old bundle).\n";
  out += "# TYPE kz_pdp_reloads_total counter\n";
  add("kz_pdp_reloads_total{result=\"ok\"} %llu\n", u(reload_ok_));
  add("kz_pdp_reloads_total{result=\"failed\"} %llu\n", u(reload_failed_));
  out += "# HELP kz_pdp_bundle_info The bundle being served.\n";
  out += "# TYPE kz_pdp_bundle_info gauge\n";
  out += "kz_pdp_bundle_info{revision=\"" + revision + "\"} 1\n";
  out += "# HELP kz_pdp_request_duration_seconds API requests, from the request read to the reply.\n";
  out += "# TYPE kz_pdp_request_duration_seconds histogram\n";
  for (const auto& [name, h] : {std::pair<const char*, const Histogram*>{"decide", &decide_}, {"resolve", &resolve_}}) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      add("kz_pdp_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", name, kBuckets[i], u(h->le[i]));
    add("kz_pdp_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", name, u(h->count));
    add("kz_pdp_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n", name, static_cast<double>(h->sum_ns.load()) / 1e9);
    add("kz_pdp_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", name, u(h->count));
  }
  return out;
}

}  // namespace kz
