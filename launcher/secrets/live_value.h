// A value that changes while a blind run goes on: a minted OAuth access token
// (resolve/oauth_mint.h). The agent's token for it stays the same for the whole run; the
// broker swaps in whichever value is current, and a refresher renews the value before it
// expires. A value past its expiry that could not be renewed is swapped nowhere (fail
// closed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/audit_recorder.h"
#include "kz/result.h"
#include "kz/secret.h"
#include "kz/wire/protocol.h"

namespace kz {

// How many earlier values of a secret that changes (a rotation, a renewal) inbound
// redaction keeps matching.
inline constexpr std::size_t kRetiredKept = 4;

struct FreshValue {
  SecretValue value;
  std::int64_t expires_in = 0;   // seconds from now, as the issuer said; 0: it did not say
};

// Where a live value's next value comes from (the token endpoint). fetch() is called
// from the refresher's thread; it must return within its own timeout. Errors never carry
// a value.
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  virtual Result<FreshValue> fetch() = 0;
  // The run is ending: a fetch under way gives up soon (and later ones at once).
  virtual void cancel() {}
};

// The current value of one secret, its fingerprints (for inbound redaction, like a
// TokenEntry's) and when it expires. Thread-safe.
class LiveValue {
 public:
  struct Snapshot {
    SecretValue value;
    std::uint64_t fp_hash = 0, fq_hash = 0;
    std::vector<wire::FormPrint> forms;
  };

  LiveValue(std::shared_ptr<ValueSource> source, std::chrono::seconds skew, std::uint64_t fp_base,
            std::uint64_t fq_base)
      : source_(std::move(source)), skew_(skew), fp_base_(fp_base), fq_base_(fq_base) {}

  // The current value, or nothing once it expired (now: unix_now()).
  std::optional<Snapshot> current(std::int64_t now) const;
  // Whether `bytes` is the current value or a retired one still unexpired at `now`
  // (constant time over all of them).
  bool is_value(std::string_view bytes, std::int64_t now) const;
  // Copies of the values set() replaced that had not expired by `now` (newest last, at
  // most kRetiredKept): a server may still echo one, and inbound redaction must catch it.
  std::vector<SecretValue> retired(std::int64_t now) const;
  // A new value obtained at `now` (unix seconds).
  void set(FreshValue v, std::int64_t now);
  // Unix seconds when to renew (0: never: no expiry was given).
  std::int64_t refresh_due() const;
  std::int64_t expires_at() const;
  ValueSource& source() { return *source_; }

 private:
  std::shared_ptr<ValueSource> source_;
  std::chrono::seconds skew_;
  std::uint64_t fp_base_, fq_base_;
  mutable std::mutex mu_;
  Snapshot cur_;
  std::int64_t expires_at_ = 0, due_ = 0;
  struct Retired {
    SecretValue value;
    std::int64_t expires_at = 0;   // 0: no expiry was given (kept until the run ends)
  };
  std::vector<Retired> retired_;
};

// Renews live values before they expire, on one thread, and records a "mint" record for
// each renewal (source "refresh"). A failed renewal keeps the last value until it
// expires and retries (after half the time left, at most 30 s, at least 1 s).
class LiveRefresher {
 public:
  struct Item {
    std::string secret, token_id;
    std::shared_ptr<LiveValue> live;
  };
  // `on_value`, when set, gets each renewed value before it is used (for output masks:
  // once in use, it may be printed).
  LiveRefresher(std::vector<Item> items, AuditRecorder& audit,
                std::function<void(std::string_view)> on_value = nullptr);
  ~LiveRefresher();
  LiveRefresher(const LiveRefresher&) = delete;
  LiveRefresher& operator=(const LiveRefresher&) = delete;
  void stop();

 private:
  void loop();
  std::vector<Item> items_;
  std::vector<std::int64_t> retry_at_;
  AuditRecorder& audit_;
  std::function<void(std::string_view)> on_value_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kz
