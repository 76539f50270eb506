#include "resolve/refresher.h"

#include <time.h>

#include <algorithm>

#include "core/log.h"
#include "core/utc_time.h"
#include "core/signal_free_thread.h"
#include "resolve/resolver.h"

namespace kz {

namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Steady::time_point kNever = Steady::time_point::max();
// A lease is renewed by reading again when two thirds of it have passed (as Vault Agent
// does), and never sooner than this after a read.
constexpr milliseconds kMinLeaseRefresh{1000};
// A failed refresh is tried again after a third of the time the kept value has left,
// within these bounds.
constexpr milliseconds kMinRetry{1000};
constexpr milliseconds kMaxRetry{30000};

// UTC ISO 8601 of a steady-clock time point (for "expires").
std::string utc_of(Steady::time_point t) {
  return utc_iso(std::chrono::system_clock::now() +
                 std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Steady::now()));
}

}  // namespace

struct Refresher::Item {
  const SecretSpec* spec = nullptr;
  std::shared_ptr<Provider> provider;
  milliseconds timeout{0};
  Steady::time_point next = kNever;       // the next read
  Steady::time_point expires = kNever;    // the value in use stops being used
  bool expired = false;

  // After a good read now, with the lease it reported: when to read again and when the
  // value expires if no read succeeds before.
  void schedule_after_read(const ValueLease& lease) {
    const auto now = Steady::now();
    next = spec->refresh.count() > 0 ? now + spec->refresh : kNever;
    expires = kNever;
    if (lease.duration.count() > 0) {
      next = std::min(next, now + std::max<milliseconds>(kMinLeaseRefresh, lease.duration * 2 / 3));
      expires = now + lease.duration;
    } else if (spec->max_stale.count() == 0 && spec->refresh.count() > 0) {
      expires = now + 3 * spec->refresh;
    }
    if (spec->max_stale.count() > 0) expires = std::min(expires, now + spec->max_stale);
  }

  void schedule_retry() {
    const auto now = Steady::now();
    milliseconds wait = spec->refresh.count() > 0 ? spec->refresh / 2 : kMaxRetry;
    if (expires != kNever && !expired)
      wait = std::min(wait, std::chrono::duration_cast<milliseconds>(expires - now) / 3);
    next = now + std::clamp(wait, kMinRetry, kMaxRetry);
  }
};

std::vector<std::string> Refresher::refreshing(const Config& cfg, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& s : cfg.secrets)
    if (s.refreshes() && std::find(names.begin(), names.end(), s.name) != names.end()) out.push_back(s.name);
  return out;
}

Result<std::unique_ptr<Refresher>> Refresher::start(RefresherOptions opts) {
  auto r = std::unique_ptr<Refresher>(new Refresher(std::move(opts)));
  const Config& cfg = *r->opts_.cfg;
  std::vector<const SecretSpec*> selected;
  for (const auto& [name, lease] : r->opts_.secrets)
    if (const SecretSpec* s = cfg.find_secret(name)) selected.push_back(s);
  std::string errors;
  auto providers = make_providers(cfg, selected, provider_context(cfg, r->opts_.env, r->opts_.home), errors);
  if (!errors.empty()) return make_error(ErrorKind::Config, "cannot configure provider(s) for refresh:\n" + errors);
  for (std::size_t i = 0; i < selected.size(); ++i) {
    auto it = std::make_unique<Item>();
    it->spec = selected[i];
    it->provider = providers[it->spec->provider];
    it->timeout = provider_timeout(cfg, it->spec->provider);
    const ValueLease& lease = r->opts_.secrets[i].second;
    it->schedule_after_read(lease);
    if (it->spec->refresh.count() == 0 && lease.duration.count() == 0)
      spdlog::warn("{}: {} says refresh = \"lease\", and {} reported no lease for it: it is not refreshed "
                   "(SIGHUP still refreshes it)", format_pos(it->spec->pos), it->spec->name, it->spec->provider);
    r->items_.push_back(std::move(it));
  }
  r->thread_ = signal_free_thread([p = r.get()] { p->run(); });
  return r;
}

Refresher::Refresher(RefresherOptions opts) : opts_(std::move(opts)) {}

Refresher::~Refresher() { stop(); }

void Refresher::trigger() {
  {
    std::lock_guard lock(mu_);
    triggered_ = true;
  }
  cv_.notify_all();
}

void Refresher::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Refresher::record(const Item& it, SecretRotated r) const {
  r.secret = it.spec->name;
  r.provider = it.spec->provider;
  if (opts_.hooks.token_id) r.token_id = opts_.hooks.token_id(it.spec->name);
  opts_.audit->record(std::move(r));
}

// One read of it's value (without mu_ held: trigger() and stop() are not held up).
void Refresher::refresh(Item& it, std::vector<std::string>& changed) {
  const SecretSpec& s = *it.spec;
  ValueLease lease;
  auto value = it.provider->resolve_leased(SecretRef{s.name, s.ref, s.pos}, Steady::now() + it.timeout, lease);
  Result<bool> applied = value ? opts_.hooks.apply(s.name, std::move(*value)) : Result<bool>(value.take_error());
  if (!applied) {
    it.schedule_retry();
    SecretRotated r;
    r.decision = "error";
    r.reason = (value ? "the new value cannot be used: " : "") + applied.error().message +
               (it.expired ? std::string("; the value stays expired")
                           : it.expires == kNever ? std::string("; the last good value stays in use")
                                                  : "; the last good value stays in use until it expires");
    if (it.expires != kNever && !it.expired) r.expires = utc_of(it.expires);
    spdlog::warn("refresh of {} failed: {}", s.name, *r.reason);
    record(it, std::move(r));
    return;
  }
  const bool was_expired = it.expired;
  it.expired = false;
  it.schedule_after_read(lease);
  if (!*applied && !was_expired) {
    spdlog::debug("refresh of {}: unchanged", s.name);
    return;
  }
  SecretRotated r;
  r.decision = "ok";
  r.changed = *applied;
  if (!lease.version.empty()) r.version = lease.version;
  if (lease.duration.count() > 0) r.lease_s = lease.duration.count();
  if (was_expired) r.reason = "a good value again after it had expired";
  spdlog::info("{}: {}", s.name, *applied ? "a new value is in use" : "its value is in use again");
  record(it, std::move(r));
  if (*applied) changed.push_back(s.name);
}

void Refresher::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto wake = kNever;
    for (const auto& it : items_) {
      wake = std::min(wake, it->next);
      if (!it->expired) wake = std::min(wake, it->expires);
    }
    if (!triggered_) {
      if (wake == kNever) cv_.wait(lock, [&] { return stop_ || triggered_; });
      else cv_.wait_until(lock, wake, [&] { return stop_ || triggered_; });
    }
    if (stop_) break;
    const bool all = triggered_;
    triggered_ = false;
    lock.unlock();
    std::vector<std::string> changed;
    for (auto& it : items_) {
      if (all || Steady::now() >= it->next) refresh(*it, changed);
      if (!it->expired && Steady::now() >= it->expires) {
        it->expired = true;
        if (opts_.hooks.expire) opts_.hooks.expire(it->spec->name);
        SecretRotated r;
        r.decision = "expired";
        r.reason = "no refresh succeeded before the last good value expired: it is no longer used (fail closed) "
                   "until a refresh succeeds";
        spdlog::error("{}: {}", it->spec->name, *r.reason);
        record(*it, std::move(r));
      }
    }
    if (!changed.empty() && opts_.hooks.changed) opts_.hooks.changed(changed);
    lock.lock();
  }
}

}  // namespace kz
