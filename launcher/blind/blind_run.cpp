#include "blind/blind_run.h"
#include "config/secret_bindings.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "blind/preload_path.h"
#include "core/log.h"
#include "kz/wire/protocol.h"

extern char** environ;

namespace kz {

Result<std::unique_ptr<BlindRun>> BlindRun::prepare(const Config& cfg, const std::vector<std::string>& names,
                                                    const BlindModeOptions& mode) {
  auto bindings = blind_bindings(cfg, names, mode.allow_any_host);
  if (!bindings) return bindings.take_error();
  for (const auto& [name, b] : *bindings)
    if (b.allow_any)
      spdlog::warn("--allow-any-host: {} has no hosts and will be sent to ANY host whose certificate verifies; "
                   "bind it with hosts = [...]", name);
  // --blind=proxy swaps without the shim, so it does not need it (a run with sensors
  // preloads it as their witness when it is there).
  std::string preload_path;
  if (!mode.proxy_all) {
    auto preload = find_preload_library();
    if (!preload) return preload.take_error();
    preload_path = std::move(*preload);
  }
  auto verifier = PeerVerifier::create(cfg.blind.ca_file);
  if (!verifier) return verifier.take_error();
  // The redirect is chosen before anything is resolved: an explicit choice this machine
  // cannot honour, or --blind=proxy with no way to redirect, stops the run here.
  auto choice = choose_redirector(mode.redirector.empty() ? cfg.blind.redirector : mode.redirector);
  if (!choice) return choice.take_error();
  if (choice->name == "off" && mode.proxy_all)
    return make_error(ErrorKind::Usage, "--blind=proxy needs a redirector, and none is usable here: " + choice->why);
  if (choice->name == "off")
    spdlog::warn("blind mode: no redirect ({}); programs the shim cannot serve (static, Go, Java, node) will "
                 "send tokens unchanged", choice->why);
  auto run = std::unique_ptr<BlindRun>(new BlindRun(std::move(*bindings), std::move(preload_path), std::move(*verifier)));
  // approve = ...: a channel a person can answer on, before anything is resolved.
  const bool approving = std::any_of(run->bindings_.begin(), run->bindings_.end(),
                                     [](const auto& nb) { return nb.second.approve.mode != ApprovalMode::None; });
  if (approving) {
    run->approvals_ = std::make_unique<ApprovalGate>(mode.approve_timeout);
    // No broker takes the answers under --blind=proxy: the proxy's waiters get their own.
    if (mode.proxy_all) run->approvals_->keep_answers(false);
    ApprovalChannelOptions co;
    co.gate = run->approvals_.get();
    co.webhook_url = mode.approve_via;
    co.ca_file = cfg.blind.ca_file;
    co.stdin_gate = &run->stdin_gate_;
    co.in_run = [t = &run->tree_](pid_t p) { return t->contains(p); };
    auto ch = ApprovalChannels::start(std::move(co));
    if (!ch) return ch.take_error();
    run->approval_channels_ = std::move(*ch);
    // Only the proxy sends an approved request itself; the shim hands the approved value
    // to the process that asked (docs/configuration.md, Approvals).
    if (!mode.proxy_all)
      spdlog::warn("approve: in shim mode an approved value goes to the process that asked, and a program that "
                   "speaks the broker protocol keeps it; --blind=proxy (or [blind] mode = \"proxy\") holds the "
                   "request in kz and never gives the agent the value");
  }
  run->grant_connections_ = cfg.blind.grant_connections;
  run->http2_ = cfg.blind.http2;
  run->token_shape_ = cfg.blind.token_shape == "plain" ? TokenShape::Plain : TokenShape::Auto;
  run->proxy_all_ = mode.proxy_all;
  if (choice->name != "off") {
    FallbackOptions& fo = run->fallback_opts_;
    fo.all_programs = mode.proxy_all;
    fo.redirector = std::move(*choice);
    fo.ports.push_back(443);
    for (auto p : cfg.blind.proxy_ports)
      if (std::find(fo.ports.begin(), fo.ports.end(), p) == fo.ports.end()) fo.ports.push_back(p);
    fo.http2 = cfg.blind.http2;
  }
  return run;
}

Status BlindRun::start_fallback(AuditRecorder& audit) {
  DecideContext dc;
  dc.table = &*table_;
  dc.verifier = &verifier_;
  dc.grant_connections = grant_connections_;
  dc.tree = &tree_;
  dc.canary = alarm_;
  dc.via = "proxy";
  dc.sealed = &*table_;
  dc.on_sealed = on_value_;
  // approve = ...: the proxy holds the connection's write on its thread until the gate
  // answers (proxy/held_io.h). With no broker (--blind=proxy) it records the answers too.
  dc.approvals = approvals_.get();
  if (approval_channels_) dc.approval_channels = approval_channels_->description();
  dc.record_approval_answers = proxy_all_;
  auto fb = Fallback::start(fallback_opts_, dc, audit, environ);
  if (!fb) return make_error(fb.error().kind, "blind mode's TLS proxy could not start: " + fb.error().message);
  fallback_ = std::move(*fb);
  return ok_status();
}

Status BlindRun::set_root(pid_t pid) {
  tree_.set_root(pid);
  if (fallback_) return fallback_->after_fork(pid);
  return ok_status();
}

Status BlindRun::start(std::vector<ResolvedSecret> values, AuditRecorder& audit) {
  auto table = TokenTable::build(std::move(values), bindings_, token_shape_, rotating_);
  if (!table) return table.take_error();
  table_.emplace(std::move(*table));
  // The canaries' tokens after the secrets' (recorded in "canary" records when seen).
  for (auto& [name, token] : canaries_) table_->add_canary(std::move(name), std::move(token));
  canaries_.clear();
  for (const auto& s : table_->secrets()) {
    if (s.canary) continue;
    audit.record(TokenMinted{s.name, s.token_id, s.binding.allow_any ? std::vector<std::string>{"*"} : s.binding.hosts,
                             s.token.size() == s.value.size()});
  }
  // Minted credentials are renewed before they expire, behind their stable tokens.
  std::vector<LiveRefresher::Item> live;
  for (const auto& s : table_->secrets())
    if (s.live) live.push_back({s.name, s.token_id, s.live});
  if (!live.empty()) refresher_ = std::make_unique<LiveRefresher>(std::move(live), audit, on_value_);
  if (!fallback_opts_.redirector.name.empty())
    if (auto st = start_fallback(audit); !st) return st;
  if (proxy_all_) {
    spdlog::info("blind mode (proxy): {} token(s); every program's TLS goes through the proxy",
                 table_->secrets().size());
    return ok_status();
  }
  BrokerOptions bo;
  bo.decide.table = &*table_;
  bo.decide.verifier = &verifier_;
  bo.decide.grant_connections = grant_connections_;
  bo.decide.canary = alarm_;
  bo.decide.sealed = &*table_;
  bo.decide.on_sealed = on_value_;
  bo.tree = &tree_;
  bo.audit = &audit;
  bo.decide.approvals = approvals_.get();
  if (approval_channels_) bo.approval_channels = approval_channels_->description();
  auto broker = Broker::start(std::move(bo));
  if (!broker) return broker.take_error();
  broker_ = std::move(*broker);
  spdlog::info("blind mode: {} token(s); shim {}; broker {}", table_->secrets().size(), preload_,
               broker_->socket_path());
  return ok_status();
}

std::string BlindRun::token_id_of(const std::string& name) const {
  if (table_)
    for (const auto& s : table_->secrets())
      if (s.name == name) return s.token_id;
  return {};
}

std::vector<ResolvedSecret> BlindRun::child_secrets() const {
  std::vector<ResolvedSecret> out;
  // Canaries are planted by the run (as their shape's prefix and the token).
  for (const auto& s : table_->secrets())
    if (!s.canary) out.push_back({s.name, "token", token_as_shown(s)});
  return out;
}

std::vector<EnvVar> BlindRun::child_vars(char** parent_env) const {
  std::vector<EnvVar> out;
  if (fallback_) out = fallback_->child_vars();
  if (proxy_all_) return out;
  std::string preload = preload_;
  for (char** e = parent_env; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) == 0 && (*e)[11] != '\0') preload += std::string(":") + (*e + 11);
  out.push_back({"LD_PRELOAD", preload, {}});
  out.push_back({wire::kEnvBroker, broker_ ? broker_->socket_path() : "", {}});
  out.push_back({wire::kEnvPreload, preload_, {}});
  out.push_back({wire::kEnvFixupLengths, table_ && table_->needs_length_fixup() ? "1" : "0", {}});
  out.push_back({wire::kEnvHttp2, http2_ ? "1" : "0", {}});
  return out;
}

void BlindRun::stop() {
  if (stopped_) return;
  stopped_ = true;
  // Open asks end (timeout, channel "stop"); the broker answers their held writes.
  if (approval_channels_) approval_channels_->stop();
  if (refresher_) refresher_->stop();
  if (fallback_) fallback_->stop();
  if (broker_) broker_->stop();
  // After the broker and the proxy: nothing asks the tree any more.
  tree_.set_sensor(nullptr);
}

std::vector<WatchedSecret> BlindRun::watch_list() const {
  std::vector<WatchedSecret> out;
  if (!table_) return out;
  for (const auto& s : table_->secrets())
    out.push_back({s.name, s.value.view(), std::string(s.token.view()), s.binding, s.canary});
  return out;
}

}  // namespace kz
