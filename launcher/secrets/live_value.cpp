#include "secrets/live_value.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "core/signal_free_thread.h"
#include "kz/wire/fingerprint.h"
#include "secrets/token_table.h"

namespace kz {

namespace {

constexpr std::int64_t kRetryCeiling = 30;

const unsigned char* bytes_of(const SecretValue& v) { return reinterpret_cast<const unsigned char*>(v.view().data()); }

}  // namespace

std::optional<LiveValue::Snapshot> LiveValue::current(std::int64_t now) const {
  std::lock_guard lock(mu_);
  if (cur_.value.empty() || (expires_at_ != 0 && now >= expires_at_)) return std::nullopt;
  Snapshot s;
  s.value = SecretValue::from(cur_.value.view());
  s.fp_hash = cur_.fp_hash;
  s.fq_hash = cur_.fq_hash;
  s.forms = cur_.forms;
  return s;
}

namespace {

bool equal_ct(std::string_view v, std::string_view bytes) {
  return !v.empty() && v.size() == bytes.size() && CRYPTO_memcmp(v.data(), bytes.data(), v.size()) == 0;
}

}  // namespace

bool LiveValue::is_value(std::string_view bytes, std::int64_t now) const {
  std::lock_guard lock(mu_);
  bool hit = equal_ct(cur_.value.view(), bytes);
  for (const auto& r : retired_)
    if (r.expires_at == 0 || now < r.expires_at) hit = equal_ct(r.value.view(), bytes) || hit;
  return hit;
}

std::vector<SecretValue> LiveValue::retired(std::int64_t now) const {
  std::lock_guard lock(mu_);
  std::vector<SecretValue> out;
  for (const auto& r : retired_)
    if (r.expires_at == 0 || now < r.expires_at) out.push_back(SecretValue::from(r.value.view()));
  return out;
}

void LiveValue::set(FreshValue v, std::int64_t now) {
  Snapshot s;
  s.fp_hash = wire::fp_hash(bytes_of(v.value), v.value.size(), fp_base_);
  s.fq_hash = wire::fq_hash(bytes_of(v.value), v.value.size(), fq_base_);
  s.forms = form_prints_of(v.value.view(), fp_base_, fq_base_);
  s.value = std::move(v.value);
  std::lock_guard lock(mu_);
  // The value replaced may still be echoed while it is valid (see retired()).
  std::erase_if(retired_, [now](const Retired& r) { return r.expires_at != 0 && now >= r.expires_at; });
  if (!cur_.value.empty()) {
    if (retired_.size() == kRetiredKept) retired_.erase(retired_.begin());
    retired_.push_back(Retired{std::move(cur_.value), expires_at_});
  }
  cur_ = std::move(s);
  if (v.expires_in > 0) {
    expires_at_ = now + v.expires_in;
    // Renew `skew` before expiry, but never in the first half of the lifetime (a short
    // lived token would otherwise be renewed all the time).
    const std::int64_t ahead = std::min<std::int64_t>(skew_.count(), v.expires_in / 2);
    due_ = expires_at_ - ahead;
  } else {
    expires_at_ = due_ = 0;
  }
}

std::int64_t LiveValue::refresh_due() const {
  std::lock_guard lock(mu_);
  return due_;
}

std::int64_t LiveValue::expires_at() const {
  std::lock_guard lock(mu_);
  return expires_at_;
}

LiveRefresher::LiveRefresher(std::vector<Item> items, AuditRecorder& audit,
                             std::function<void(std::string_view)> on_value)
    : items_(std::move(items)), retry_at_(items_.size(), 0), audit_(audit), on_value_(std::move(on_value)) {
  if (!items_.empty()) thread_ = signal_free_thread([this] { loop(); });
}

LiveRefresher::~LiveRefresher() { stop(); }

void LiveRefresher::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  for (auto& it : items_) it.live->source().cancel();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LiveRefresher::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    const std::int64_t now = unix_now();
    std::int64_t next = 0;
    for (std::size_t i = 0; i < items_.size() && !stop_; ++i) {
      Item& it = items_[i];
      const std::int64_t due = std::max(it.live->refresh_due(), retry_at_[i]);
      if (due == 0) continue;
      if (due > now) {
        next = next == 0 ? due : std::min(next, due);
        continue;
      }
      lock.unlock();
      auto fresh = it.live->source().fetch();
      if (fresh && on_value_) on_value_(fresh->value.view());   // masked first: once in use, it may be printed
      lock.lock();
      if (stop_) break;   // cancelled as the run ends: nothing to record
      const std::int64_t after = unix_now();
      // Every optional is named here: GCC 12 at -O1 (the sanitizer build) takes a later
      // assignment into a defaulted optional<string> for a read of uninitialised memory.
      OAuthMint rec{.secret = it.secret,
                    .source = "refresh",
                    .decision = fresh ? "ok" : "error",
                    .token_id = std::optional<std::string>(it.token_id),
                    .host = std::nullopt,
                    .reason = std::nullopt};
      if (fresh) {
        rec.expires_in = fresh->expires_in;
        it.live->set(std::move(*fresh), after);
        retry_at_[i] = 0;
      } else {
        const std::int64_t left = it.live->expires_at() - after;
        const std::int64_t wait = std::clamp<std::int64_t>(left / 2, 1, kRetryCeiling);
        retry_at_[i] = after + wait;
        rec.reason = fresh.error().message +
                     (left > 0 ? "; the last access token stays in use until it expires in " + std::to_string(left) + " s"
                               : "; the access token has expired: its token is swapped nowhere until a renewal succeeds");
      }
      audit_.record(std::move(rec));
      next = now;   // look again: another item may be due
      break;
    }
    if (stop_) break;
    if (next == now) continue;
    if (next == 0) cv_.wait(lock, [this] { return stop_; });
    else cv_.wait_until(lock, std::chrono::system_clock::from_time_t(static_cast<std::time_t>(next)), [this] { return stop_; });
  }
}

}  // namespace kz
