// Rotation without restart: re-resolves, in the background, the secrets of a run that say
// `refresh` (config.h), on their interval and before the provider's lease ends, and hands
// each new value to the run (blind mode: the token table, behind the same token; standard
// mode with --restart-on-change: the next start of the command).
//
// A refresh that fails keeps the last good value until it expires: the lease's end when
// the provider gave one, `max_stale` after the last good read when set (the earlier of the
// two), else 3 × the refresh interval. Then the value is expired (blind mode refuses its
// swaps: fail closed) until a refresh succeeds. Every new value, failure and expiry is a
// "rotate" audit record; never the value.
//
// trigger() refreshes every such secret now (kz run takes SIGHUP for it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audit/audit_recorder.h"
#include "config/config.h"
#include "kz/result.h"
#include "kz/secret.h"

namespace kz {

struct RefreshHooks {
  // A new good value for the secret `name` (on the refresher's thread): puts it in use.
  // Returns whether it differs from the value in use, or why it cannot be used (recorded
  // as a failed refresh; the last good value stays).
  std::function<Result<bool>(const std::string& name, SecretValue value)> apply;
  // The value in use for `name` expired with no good refresh since.
  std::function<void(const std::string& name)> expire;
  // After a round of refreshes in which values changed: their names.
  std::function<void(const std::vector<std::string>& changed)> changed;
  // Optional: the token id standing for `name` (blind mode), for the records.
  std::function<std::string(const std::string& name)> token_id;
};

struct RefresherOptions {
  const Config* cfg = nullptr;                 // outlives the refresher
  // The secrets of the run that refresh, with the lease their first resolution reported.
  std::vector<std::pair<std::string, ValueLease>> secrets;
  AuditRecorder* audit = nullptr;              // required
  RefreshHooks hooks;
  const Environment* env = nullptr;            // default: the process environment
  std::string home;
};

class Refresher {
 public:
  // The run's secrets that refresh (cfg order), among `names`.
  static std::vector<std::string> refreshing(const Config& cfg, const std::vector<std::string>& names);
  // Makes the providers (an error names the provider that cannot be configured) and
  // starts the thread.
  static Result<std::unique_ptr<Refresher>> start(RefresherOptions opts);
  ~Refresher();
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Refresh every secret now (and again on its schedule after that).
  void trigger();
  // Ends the thread (a refresh under way finishes first, within its provider's timeout).
  void stop();

  struct Item;   // one secret's provider and schedule

 private:
  explicit Refresher(RefresherOptions opts);
  void run();
  void refresh(Item& it, std::vector<std::string>& changed);
  void record(const Item& it, SecretRotated r) const;

  RefresherOptions opts_;
  std::vector<std::unique_ptr<Item>> items_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, triggered_ = false;
  std::thread thread_;
};

}  // namespace kz
