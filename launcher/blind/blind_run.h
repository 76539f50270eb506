// Blind mode for one `kz run --blind`: checks the set-up before anything is resolved,
// then mints the tokens, starts the broker, and says what the child's environment gets
// (tokens in place of values; LD_PRELOAD and the broker's address for the shim).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/audit_recorder.h"
#include "secrets/binding.h"
#include "secrets/canary.h"
#include "secrets/live_value.h"
#include "blind/fallback.h"
#include "blind/approval_channels.h"
#include "blind/broker.h"
#include "secrets/peer_verify.h"
#include "secrets/process_tree.h"
#include "secrets/token_table.h"
#include "config/config.h"
#include "run/child_env.h"
#include "resolve/resolver.h"
#include "sensors/leak_detector.h"
#include "sensors/process_sensor.h"

namespace kz {

struct BlindModeOptions {
  bool allow_any_host = false;
  bool proxy_all = false;     // --blind=proxy: no swapping shim; every program through the proxy
  std::string redirector;     // --redirector (empty: [blind] redirector)
  // approve = ... (blind/approval_channels.h): --approve-via=URL (empty: the terminal)
  // and how long an ask waits for its answer (--approve-timeout).
  std::string approve_via;
  std::chrono::milliseconds approve_timeout{120000};
};

class BlindRun {
 public:
  // Fails (naming file:line of each secret) when a secret has no hosts, when the shim
  // library is missing, when [blind] ca_file cannot be loaded, or when the redirector
  // asked for (or --blind=proxy's need of one) cannot be honoured here.
  static Result<std::unique_ptr<BlindRun>> prepare(const Config& cfg, const std::vector<std::string>& names,
                                                   const BlindModeOptions& mode);
  // stop() first: the members would otherwise go in reverse order, the approval gate
  // before the proxy whose held requests wait on it.
  ~BlindRun() { stop(); }

  // The process sensor (sensors/run_sensors.h) the broker and the proxy ask for
  // membership and lineage; null: read /proc. Before start(), or to drop a sensor that
  // failed before the child ran.
  void use_sensor(const ProcessSensor* s) { tree_.set_sensor(s); }
  // Canaries (secrets/canary.h): each name and the token minted for it. The broker and
  // the proxy refuse their tokens and raise `alarm` (which outlives stop()). Before start().
  void plant_canaries(std::vector<std::pair<std::string, SecretValue>> tokens, CanaryAlarm* alarm) {
    canaries_ = std::move(tokens);
    alarm_ = alarm;
  }
  // The secrets whose values rotate (resolve/refresher.h): never granted per connection,
  // and replaceable behind their tokens. Before start().
  void set_rotating(std::vector<std::string> names) { rotating_ = std::move(names); }
  // Rotation, from the refresher's thread: `value` (the whole new value) behind the
  // secret's token from the next swap on, the old one wiped; whether it changed.
  Result<bool> rotate(const std::string& name, SecretValue value) { return table_->replace_value(name, std::move(value)); }
  // The secret's value expired: its swaps are refused until the next rotate().
  void expire(const std::string& name) { table_->set_expired(name, true); }
  // The token id of a secret (for the records), "" when unknown.
  std::string token_id_of(const std::string& name) const;
  // Takes the resolved values, mints tokens, records one "token" audit record per
  // secret and starts the broker. `audit` outlives stop() (the broker and the proxy call it).
  Status start(std::vector<ResolvedSecret> values, AuditRecorder& audit);
  // Before start: gets every value that appears during the run (a minted credential's
  // renewal, a token sealed from a token endpoint's answer), for the output masks.
  void set_value_hook(std::function<void(std::string_view)> f) { on_value_ = std::move(f); }
  // What the TLS tap watches for: each secret's token, value and binding. The values are
  // views into the token table, read while the detector is built.
  // Known gap: the list is taken once, when the detector is built. A value that appears
  // later (a minted credential's renewal, a rotation, a token sealed from a token
  // endpoint's answer) is not watched for by the TLS tap; the output masks do get it
  // (set_value_hook). Rebuilding the detector on each new value is not done yet.
  std::vector<WatchedSecret> watch_list() const;
  // NAME=token for each secret.
  std::vector<ResolvedSecret> child_secrets() const;
  // LD_PRELOAD (the shim first, then any inherited preloads), KZ_BROKER, KZ_PRELOAD,
  // KZ_FIXUP_LENGTHS; with the fallback, the trust variables of its CA bundles. With
  // --blind=proxy only the latter: no shim swaps (the run may preload it as the
  // sensors' witness, which holds no value and knows no broker).
  std::vector<EnvVar> child_vars(char** parent_env) const;
  // In the child between fork and exec (async-signal-safe): joins the redirect.
  int child_prepare() noexcept { return fallback_ ? fallback_->child_prepare() : 0; }
  // The agent's pid, once forked: the broker serves its process tree; the redirector
  // starts supervising it. An error means the child must not run unredirected.
  Status set_root(pid_t pid);
  void stop();
  const std::string& preload_path() const { return preload_; }
  // --blind=proxy: every program's TLS goes through the proxy; no shim swaps.
  bool proxies_everything() const { return proxy_all_; }
  // The fallback proxy's listeners (empty without a fallback), and whether a process is
  // routed to it: for the TLS tap, which must not take kz's own proxy for an unbound host.
  std::vector<std::pair<std::string, int>> proxy_endpoints() const {
    return fallback_ ? fallback_->listen_endpoints() : std::vector<std::pair<std::string, int>>{};
  }
  bool routes_to_proxy(pid_t pid) const { return fallback_ && fallback_->routes_to_proxy(pid); }
  // Held while an approval prompt reads the terminal (null: no secret needs approval).
  StdinGate* stdin_gate() { return approvals_ ? &stdin_gate_ : nullptr; }
  // The cgroup the redirect made for the run ("" when none); valid until stop().
  std::string run_cgroup() const { return fallback_ ? fallback_->run_cgroup() : std::string(); }

 private:
  BlindRun(std::vector<std::pair<std::string, Binding>> bindings, std::string preload, PeerVerifier verifier)
      : bindings_(std::move(bindings)), preload_(std::move(preload)), verifier_(std::move(verifier)) {}
  Status start_fallback(AuditRecorder& audit);

  std::vector<std::pair<std::string, Binding>> bindings_;
  std::string preload_;
  PeerVerifier verifier_;
  bool grant_connections_ = true;
  bool http2_ = true;   // [blind] http2
  TokenShape token_shape_ = TokenShape::Auto;
  std::vector<std::string> rotating_;
  std::optional<TokenTable> table_;
  std::vector<std::pair<std::string, SecretValue>> canaries_;
  CanaryAlarm* alarm_ = nullptr;
  ProcessTree tree_{getpid()};
  std::unique_ptr<Broker> broker_;
  bool proxy_all_ = false;
  FallbackOptions fallback_opts_;
  std::unique_ptr<Fallback> fallback_;
  std::unique_ptr<LiveRefresher> refresher_;   // minted credentials' renewals
  // approve = ...: the gate the broker asks, and where people answer it.
  StdinGate stdin_gate_;
  bool stopped_ = false;
  std::unique_ptr<ApprovalGate> approvals_;
  std::unique_ptr<ApprovalChannels> approval_channels_;
  std::function<void(std::string_view)> on_value_;   // set_value_hook: new values to mask
};

}  // namespace kz
