// kz run: resolve, build the child's environment, start the command under supervision.
// One RunSession per run; cmd_run calls its steps in order:
//   open_audit       the config and the audit trail; run.start (a run that cannot be
//                    audited does not start)
//   plan_environment env files, the selection, what the child does not inherit
//   check_trust      blind mode: the project's bindings are those the user trusted
//   prepare_blind    blind mode checked before anything is resolved
//   resolve          the values, from the providers or through the PDP
//   plant_canaries   the decoys' made-up values (or, in blind mode, tokens)
//   plan_output      output masking
//   start_watchers   the sensors, then blind mode's tokens, broker and proxy
//   start_rotation   the refresher for secrets with `refresh` (blind mode: new values
//                    behind the same tokens; --restart-on-change: restarts)
//   supervise        fork, redirect, wait (and start again for --restart-on-change); the
//                    run.stop record
// A step that ends the run returns the exit code; every path writes run.stop once (the
// trail writes "not started" for a step that ends before the command could run).
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "audit/audit_trail.h"
#include "blind/blind_run.h"
#include "blind/preload_path.h"
#include "kz/preload/witness_wire.h"
#include "config/secret_bindings.h"
#include "secrets/token_table.h"
#include "commands/commands.h"
#include "commands/load.h"
#include "core/hardening.h"
#include "core/host_facts.h"
#include "core/log.h"
#include "kz/wipe.h"
#include "masking/masker.h"
#include "run/child_env.h"
#include "resolve/pdp_client.h"
#include "resolve/refresher.h"
#include "resolve/resolver.h"
#include "run/supervisor.h"
#include "run/survivors.h"
#include "secrets/canary.h"
#include "secrets/token_mint.h"
#include "sensors/run_sensors.h"
#include "trust/trust_check.h"

extern char** environ;

namespace kz {

namespace {

int exit_code_for(const Error& e) {
  switch (e.kind) {
    case ErrorKind::Internal:
    case ErrorKind::Io: return kExitInternal;
    default: return kExitConfig;
  }
}

// A step's result: keep going (nullopt), or end the run with this exit code.
using Step = std::optional<int>;

class RunSession {
 public:
  RunSession(const GlobalOptions& g, const RunOptions& o) : g_(g), o_(o) {}
  // The tap's thread asks blind mode about routes (set_own_proxy): it stops first.
  ~RunSession() {
    if (sensors_) sensors_->stop();
  }

  Step open_audit();
  Step plan_environment();
  Step plan_rotation();
  Step check_trust();
  Step prepare_blind();
  Step resolve();
  Step check_values();
  Step plant_canaries();
  void plan_output();
  Step start_watchers();
  Step start_rotation();
  int supervise();

 private:
  // Ends the run in the log with an error (exit status `code`) and returns `code`.
  int fail(int code, const std::string& reason) {
    trail_->end(RunStop{"error", reason, code});
    return code;
  }
  const std::string& exe() const { return o_.command[0]; }
  Result<std::vector<ResolvedSecret>> resolve_via_server(std::string identity);
  // NAME=decoy for each canary, after the secrets (the child's environment).
  void add_canaries_to_env();
  // LD_PRELOAD with the shim and KZ_WITNESS, when the witness is on.
  void preload_witness();
  // Ends every process of the run now (a canary was seen and on_canary = "kill").
  void kill_run(pid_t child) const;

  // One canary of the run: what the child's environment holds, and what the output
  // tripwire looks for (the value itself; in blind mode the token inside it).
  struct Planted {
    std::string name;
    SecretValue env_value;
    SecretValue token;   // blind mode only
  };

  const GlobalOptions& g_;
  const RunOptions& o_;
  bool blind_proxy_ = false;   // --blind=proxy, or --blind with [blind] mode = "proxy"
  OnLeak on_leak_ = OnLeak::Audit;
  std::optional<Config> cfg_;
  // Declared first, so it closes last: after the sensors' summary and the broker's last
  // record, it writes run.stop if no step did, then drains the sinks.
  std::unique_ptr<AuditTrail> trail_;
  // After trail_ (it records through it), before blind_ and sensors_ (whose threads
  // raise it until they stop).
  std::unique_ptr<CanaryAlarm> alarm_;
  ChildEnvOptions env_opts_;
  ResolveOptions ropts_;
  // Declared before `blind_`, whose broker asks the process sensor until blind_->stop().
  std::unique_ptr<RunSensors> sensors_;
  // The sensors load (BPF verification, kernel BTF) on a thread of their own while the
  // providers resolve; start_watchers() takes them. Declared after trail_, so an early
  // failure joins the thread before the trail closes.
  std::future<std::unique_ptr<RunSensors>> sensors_loading_;
  std::unique_ptr<BlindRun> blind_;
  std::vector<ResolvedSecret> secrets_;
  std::vector<Planted> canaries_;
  SuperviseOptions sup_;

  // Rotation (resolve/refresher.h). The secrets of the run that refresh, and the lease
  // each one's first resolution reported.
  std::vector<std::string> rotating_;
  std::vector<std::pair<std::string, ValueLease>> leases_;
  // What a new value changes while the command runs, on the refresher's thread: the
  // masks (every value of the run, old and new), and with --restart-on-change the
  // secrets the next start of the command gets and the names that changed.
  std::mutex rotation_mu_;
  std::shared_ptr<const MaskPatterns> masks_;
  std::vector<ResolvedSecret> current_;
  std::vector<std::string> changed_;
  std::shared_ptr<SupervisorControl> control_;
  // Declared after blind_ and trail_ (which its hooks use), so it stops before them.
  std::unique_ptr<Refresher> refresher_;
  // Applies a new value (the refresher's hook): masked from now on, then in use.
  Result<bool> apply_rotation(const std::string& name, SecretValue value);
  // Masks `value` too from now on (the caller holds rotation_mu_).
  void add_mask(std::string_view value);
};

Step RunSession::open_audit() {
  harden_process();
  if (o_.command.empty()) {
    spdlog::error("kz run needs a command: kz run [options] -- COMMAND [ARGS...]");
    return kExitConfig;
  }
  auto on_leak = parse_on_leak(o_.on_leak);
  if (!on_leak) { spdlog::error("{}", on_leak.error().message); return kExitConfig; }
  on_leak_ = *on_leak;
  auto cfg = load_config_for(g_);
  if (!cfg) { spdlog::error("{}", cfg.error().message); return kExitConfig; }
  cfg_.emplace(std::move(*cfg));
  // `kz run --blind` takes its form from [blind] mode; --blind=shim|proxy overrides it.
  blind_proxy_ = o_.blind && (o_.blind_mode_given ? o_.blind_proxy : cfg_->blind.mode == "proxy");

  // Opened before anything is resolved; sinks (syslog, HTTP) get a copy of each line
  // after the file has it, and never block the run.
  AuditTrailOptions to;
  to.path = !o_.audit_log.empty() ? o_.audit_log : cfg_->audit.path;
  to.open_hint = " (set [audit] path or --audit-log)";
  to.sinks = cfg_->audit;
  to.per_run = true;
  auto trail = AuditTrail::open(std::move(to));
  if (!trail) { spdlog::error("{}", trail.error().message); return kExitConfig; }
  trail_ = std::move(*trail);
  RunStart start{blind_proxy_ ? "blind-proxy" : o_.blind ? "blind" : "standard", exe(), cfg_->path};
  // The config's hash: `kz audit summary` flags a config that changed between runs.
  if (std::string sha = file_sha256(cfg_->path); sha != "unreadable") start.config_sha256 = std::move(sha);
  start.ptrace_scope = yama_ptrace_scope();
  trail_->begin(std::move(start), RunStop{"error", "not started", std::nullopt});
  const bool kill_on_canary = o_.on_canary.empty() ? cfg_->canary.kill : o_.on_canary == "kill";
  alarm_ = std::make_unique<CanaryAlarm>(*trail_, kill_on_canary);
  RunSensorOptions so;
  so.enabled = !o_.no_sensors;
  so.on_leak = on_leak_;
  so.audit = trail_.get();
  so.canary = alarm_.get();
  if (auto mode = parse_sensor_mode(o_.sensors)) so.mode = *mode;
  sensors_loading_ = std::async(std::launch::async, [so = std::move(so)]() mutable {
    return RunSensors::start(std::move(so));
  });
  return std::nullopt;
}

// Plain variables from --env-file; a clash with a secret is an error unless --override
// (then the file's value is used and that secret is not resolved). The agent gets the
// values, not the keys to the vault: provider credentials and the source variables of
// env secrets are removed from what it inherits.
Step RunSession::plan_environment() {
  const Config& cfg = *cfg_;
  env_opts_.clean = o_.clean_env;
  env_opts_.keep = o_.keep_env;
  // The collector's token is kz's, not the command's; so is the PDP identity token.
  if (!cfg.audit.http_token_env.empty()) env_opts_.drop.push_back(cfg.audit.http_token_env);
  env_opts_.drop.push_back(kEnvIdentityToken);
  // Blind mode: TLS libraries would write the session keys the agent needs to decrypt
  // its own requests (the shim also refuses to swap where key logging is on).
  if (o_.blind) env_opts_.drop.push_back("SSLKEYLOGFILE");
  for (const auto& f : o_.env_files) {
    auto vars = parse_env_file(f);
    if (!vars) { spdlog::error("{}", vars.error().message); return kExitConfig; }
    for (auto& v : *vars) env_opts_.plain.push_back(std::move(v));
  }
  if (auto st = check_selection(cfg, o_.only); !st) { spdlog::error("{}", st.error().message); return kExitConfig; }
  std::set<std::string> overridden;
  for (const auto& v : env_opts_.plain) {
    if (cfg.find_secret(v.name) == nullptr) continue;
    if (!o_.override_env) {
      spdlog::error("{}: {} is also a secret in {} (use --override to let the env file win)",
                    format_pos(v.pos), v.name, cfg.path);
      return kExitConfig;
    }
    overridden.insert(v.name);
  }
  ropts_.on_result = [this](const SecretSpec& s, const Error* e) {
    SecretResolved r{s.name, s.provider, std::nullopt, exe(), e == nullptr ? "ok" : "error"};
    // An exec ref is a command line, which may carry anything: it is not recorded.
    if (s.provider != "exec") r.ref = s.ref;
    if (e != nullptr) r.reason = e->message;
    trail_->record(std::move(r));
    if (s.oauth) {   // a minted credential: its first access token (resolve/oauth_mint.h)
      OAuthMint m{s.name, "start", e == nullptr ? "ok" : "error"};
      if (e != nullptr) m.reason = e->message;
      trail_->record(std::move(m));
    }
  };
  for (const auto& s : cfg.secrets) {
    const bool selected = o_.only.empty() || std::find(o_.only.begin(), o_.only.end(), s.name) != o_.only.end();
    if (selected && overridden.count(s.name) == 0) ropts_.only.push_back(s.name);
  }
  std::vector<std::string> used;
  for (const auto& name : ropts_.only) {
    const SecretSpec* s = cfg.find_secret(name);
    used.push_back(s->provider);
    if (s->provider == "env" && s->ref != s->name) env_opts_.drop.push_back(s->ref);
    // An AWS secret key kz signs with (sign = "sigv4"): its key id is not secret, and
    // the SDK needs it next to the key (or, in blind mode, the token standing for it).
    if (!s->access_key_id.empty()) env_opts_.plain.push_back(EnvVar{"AWS_ACCESS_KEY_ID", s->access_key_id, s->pos});
  }
  for (auto& v : provider_credential_vars(used)) env_opts_.drop.push_back(std::move(v));
  for (const auto& d : env_opts_.drop) spdlog::debug("not passed to the command: {}", d);
  return plan_rotation();
}

// Which secrets refresh in this run, and how a restart asks the command to end.
Step RunSession::plan_rotation() {
  const Config& cfg = *cfg_;
  if (o_.restart_on_change && o_.blind) {
    spdlog::error("--restart-on-change is for standard mode: in blind mode a new value takes the place of the old "
                  "one behind the same token, and the command keeps running");
    return fail(kExitConfig, "--restart-on-change with --blind");
  }
  auto grace = parse_duration(o_.restart_grace);
  if (!grace) {
    spdlog::error("--restart-grace: \"{}\" is not a duration (like \"500ms\", \"10s\" or \"1m\")", o_.restart_grace);
    return fail(kExitConfig, "bad --restart-grace");
  }
  sup_.restart_grace = *grace;
  std::string sig = o_.restart_signal.rfind("SIG", 0) == 0 ? o_.restart_signal.substr(3) : o_.restart_signal;
  const std::pair<const char*, int> kSignals[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP},
                                                  {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
  for (const auto& [name, num] : kSignals)
    if (sig == name) sup_.restart_signal = num;
  rotating_ = Refresher::refreshing(cfg, ropts_.only);
  if (!rotating_.empty() && !cfg.server.url.empty()) {
    spdlog::warn("refresh is not followed for secrets resolved through [server] (the PDP): read once at start");
    rotating_.clear();
  }
  if (!rotating_.empty() && !o_.blind && !o_.restart_on_change) {
    spdlog::info("{} secret(s) say refresh: in standard mode the command keeps the values it started with "
                 "(--restart-on-change restarts it with new ones; --blind swaps them behind the same tokens)",
                 rotating_.size());
    rotating_.clear();
  }
  if (o_.restart_on_change && rotating_.empty())
    spdlog::warn("--restart-on-change: no secret of this run says refresh = \"...\", so nothing restarts it");
  return std::nullopt;
}

// Blind mode sends values only where the config binds them, and the agent can edit the
// config (and the CA file it names): the bindings must be those the user trusted
// (`kz trust`; trust_check.h). Checked before anything is resolved or started.
Step RunSession::check_trust() {
  if (!o_.blind) return std::nullopt;
  auto store = TrustStore::open_default();
  if (!store) {
    spdlog::error("{}", store.error().message);
    return fail(kExitConfig, "the project's trusted bindings could not be checked");
  }
  auto c = check_project_trust(*cfg_, *store);
  if (!c) {
    spdlog::error("{}", c.error().message);
    return fail(kExitConfig, "the project's trusted bindings could not be checked");
  }
  auto record = [&](const char* decision) {
    TrustDecision t{decision, cfg_->path, c->now.config_sha256, {}};
    for (const auto& ch : c->diff.changes) t.changes.push_back((ch.widens ? "+ " : "- ") + ch.text);
    trail_->record(std::move(t));
  };
  switch (c->outcome) {
    case TrustOutcome::FirstUse:
      record("first-use");
      spdlog::info("first blind run of {}: its bindings are now trusted (recorded in {}; `kz trust` shows them)",
                   cfg_->path, store->dir());
      return std::nullopt;
    case TrustOutcome::Unchanged:
      return std::nullopt;
    case TrustOutcome::Narrowed:
      spdlog::debug("bindings narrowed since they were trusted:\n{}", c->diff.format());
      return std::nullopt;
    case TrustOutcome::Widened:
      record("refuse");
      spdlog::error("{}", widened_message(*c));
      return fail(kExitConfig, "the project's bindings widened since they were trusted (kz trust)");
  }
  return std::nullopt;
}

// Every secret needs somewhere it may go, and the shim and the trust store must be
// there: checked before anything is resolved.
Step RunSession::prepare_blind() {
  if (!o_.blind) return std::nullopt;
  BlindModeOptions bm;
  bm.allow_any_host = o_.allow_any_host;
  bm.proxy_all = blind_proxy_;
  bm.redirector = o_.redirector;
  bm.approve_via = o_.approve_via;
  const auto approve_timeout = parse_duration(o_.approve_timeout);
  if (!approve_timeout || approve_timeout->count() < 100 || *approve_timeout > std::chrono::hours(24)) {
    spdlog::error("--approve-timeout: \"{}\" must be a duration between 100ms and 24h, e.g. \"60s\"", o_.approve_timeout);
    return fail(kExitConfig, "blind mode could not be set up");
  }
  bm.approve_timeout = *approve_timeout;
  auto b = BlindRun::prepare(*cfg_, ropts_.only, bm);
  if (!b) {
    spdlog::error("{}", b.error().message);
    return fail(kExitConfig, "blind mode could not be set up");
  }
  blind_ = std::move(*b);
  blind_->set_rotating(rotating_);
  sup_.stdin_gate = blind_->stdin_gate();
  // Values that appear during the run (renewed, sealed) are masked as rotated ones are.
  blind_->set_value_hook([this](std::string_view v) {
    std::lock_guard lock(rotation_mu_);
    add_mask(v);
  });
  return std::nullopt;
}

// Through the PDP: it decides per secret for this identity, and resolves.
Result<std::vector<ResolvedSecret>> RunSession::resolve_via_server(std::string identity) {
  PdpResolveOptions po;
  po.only = ropts_.only;
  po.token = std::move(identity);
  po.on_result = [this](const SecretSpec& s, const Error* e, const std::string& decision_id) {
    SecretResolved r{s.name, s.provider, s.ref, exe(),
                     e == nullptr ? "ok" : e->kind == ErrorKind::Denied ? "deny" : "error"};
    r.via = cfg_->server.url;
    r.decision_id = decision_id;
    if (e != nullptr) r.reason = e->message;
    trail_->record(std::move(r));
  };
  auto r = resolve_via_pdp(*cfg_, po);
  wipe(po.token);
  return r;
}

Step RunSession::resolve() {
  if (ropts_.only.empty()) return std::nullopt;
  const auto t0 = Clock::now();
  Result<std::vector<ResolvedSecret>> r = std::vector<ResolvedSecret>{};
  if (!cfg_->server.url.empty()) {
    for (const auto& s : cfg_->secrets)
      if (!s.format.empty() || !s.from.empty()) {
        spdlog::error("{}: secrets.{}: format = \"aws-credentials\" and from are read from providers, not through "
                      "[server] (a PDP resolves one value per secret)", format_pos(s.pos), s.name);
        return fail(kExitConfig, "a credential set cannot be resolved through the PDP");
      }
    auto token = identity_token(*cfg_, o_.identity_token_file);
    if (!token) {
      spdlog::error("{}", token.error().message);
      return fail(kExitConfig, "no identity token for the PDP");
    }
    // One resolve record per secret, all made at once: written in one append after.
    trail_->hold();
    r = resolve_via_server(std::move(*token));
  } else {
    trail_->hold();
    r = resolve_secrets(*cfg_, ropts_);
  }
  trail_->flush();
  if (!r) {
    spdlog::error("{}", r.error().message);
    trail_->end(RunStop{"error", "resolution failed", kExitConfig});
    return exit_code_for(r.error());
  }
  secrets_ = std::move(*r);
  for (const auto& s : secrets_)
    if (std::find(rotating_.begin(), rotating_.end(), s.name) != rotating_.end()) leases_.emplace_back(s.name, s.lease);
  // A key whose credential set gave its id (format = "aws-credentials"): the id is the
  // command's AWS_ACCESS_KEY_ID, and the binding kz signs under names it.
  for (const auto& rs : secrets_) {
    if (rs.access_key_id.empty()) continue;
    for (auto& s : cfg_->secrets)
      if (s.name == rs.name && s.access_key_id.empty()) {
        s.access_key_id = rs.access_key_id;
        env_opts_.plain.push_back(EnvVar{"AWS_ACCESS_KEY_ID", s.access_key_id, s.pos});
      }
  }
  spdlog::info("resolved {} secret(s) in {} ms", secrets_.size(),
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  return std::nullopt;
}

// A value goes into the environment: it cannot hold a NUL.
Step RunSession::check_values() {
  for (const auto& s : secrets_) {
    if (s.value.view().find('\0') != std::string_view::npos) {
      spdlog::error("secret {} (provider {}) contains a NUL byte and cannot be passed in the environment",
                    s.name, s.provider);
      return kExitConfig;
    }
    if (!s.value.locked())
      spdlog::debug("secret {}: memory could not be locked (RLIMIT_MEMLOCK); it is still excluded from core dumps", s.name);
  }
  return std::nullopt;
}

// A blind run's canary token: ≥ 96 random bits like every token; no value to match.
constexpr std::size_t kCanaryTokenLen = 40;

// Every canary gets a made-up credential of its shape: in a standard run the value
// itself, in blind mode the shape's prefix and a token the broker knows as a canary's.
Step RunSession::plant_canaries() {
  for (const auto& c : cfg_->canaries) {
    const CanaryShape& shape = canary_shape_for(c.name, c.shape);
    Planted p;
    p.name = c.name;
    if (blind_) {
      auto c = make_blind_canary(shape, cfg_->blind.token_shape != "plain", kCanaryTokenLen);
      if (!c) return fail(kExitInternal, c.error().message);
      p.env_value = std::move(c->shown);
      p.token = std::move(c->token);
    } else {
      auto v = make_canary_value(shape);
      if (!v) return fail(kExitInternal, v.error().message);
      p.env_value = std::move(*v);
    }
    canaries_.push_back(std::move(p));
  }
  if (!canaries_.empty())
    spdlog::debug("{} canary(ies) planted; a sight of one is {}", canaries_.size(),
                  alarm_->kills() ? "recorded and ends the run" : "recorded");
  return std::nullopt;
}

void RunSession::add_canaries_to_env() {
  for (const auto& c : canaries_) secrets_.push_back({c.name, "canary", SecretValue::from(c.env_value.view())});
}

void RunSession::kill_run(pid_t child) const {
  ::kill(child, SIGKILL);
  // The rest of the tree (kz is its subreaper when canaries can kill), a few rounds for
  // processes forked meanwhile; the end of the run sweeps what is left.
  for (int round = 0; round < 3; ++round) {
    const auto found = find_descendants(getpid());
    if (found.empty()) break;
    for (const Survivor& s : found) ::kill(s.pid, SIGKILL);
  }
}

void RunSession::plan_output() {
  sup_.argv = o_.command;
  const bool masking = !o_.no_masking && cfg_->masking.enabled;
  if (!masking) {
    sup_.mode = OutputMode::Inherit;
    spdlog::info("output masking is off");
    return;
  }
  MaskerOptions mo;
  mo.replacement = o_.mask_replacement.value_or(cfg_->masking.replacement);
  std::vector<std::string_view> values;
  for (const auto& s : secrets_) {
    values.push_back(s.value.view());
    if (s.value.size() < mo.min_secret_len)
      spdlog::warn("secret {} is shorter than {} bytes and is not masked in output", s.name, mo.min_secret_len);
  }
  // Canaries in the output: a standard run's is masked like a value; a blind run's token
  // is left as every other token is.
  std::vector<Tripwire> trips;
  for (const auto& c : canaries_) trips.push_back({blind_ ? c.token.view() : c.env_value.view(), !blind_});
  sup_.masks = MaskPatterns::build(values, mo, trips);
  masks_ = sup_.masks;
  if (!canaries_.empty())
    sup_.on_tripwire = [this](std::size_t i, int fd) {
      CanarySeen seen;
      seen.secret = canaries_[i].name;
      seen.where = "output";
      seen.stream = fd == 2 ? "stderr" : "stdout";
      seen.exe = exe();
      seen.reason = "the command printed it";
      alarm_->raise(std::move(seen));
    };
  sup_.mode = (!o_.no_pty && isatty(1) == 1) ? OutputMode::Pty : OutputMode::Pipes;
}

// The sensors watch every run (standard or blind) when the host allows eBPF; they are
// in place before the broker or the proxy can be asked anything. In blind mode the
// values then move into the broker's table and the child gets tokens in their place.
Step RunSession::start_watchers() {
  sensors_ = sensors_loading_.get();
  if (blind_) {
    blind_->use_sensor(sensors_->process());
    std::vector<std::pair<std::string, SecretValue>> canary_tokens;
    for (const auto& c : canaries_) canary_tokens.emplace_back(c.name, SecretValue::from(c.token.view()));
    blind_->plant_canaries(std::move(canary_tokens), alarm_.get());
    if (auto st = blind_->start(std::move(secrets_), *trail_); !st) {
      spdlog::error("{}", st.error().message);
      return fail(kExitInternal, st.error().message);
    }
    sensors_->set_own_proxy(blind_->proxy_endpoints(), [b = blind_.get()](pid_t pid) { return b->routes_to_proxy(pid); });
    sensors_->watch(blind_->watch_list(), false, blind_->proxies_everything());
    secrets_ = blind_->child_secrets();
    add_canaries_to_env();
    for (auto& v : blind_->child_vars(environ)) env_opts_.plain.push_back(std::move(v));
    // --blind=proxy loads no shim for swapping; it is loaded to witness the agent's TLS
    // writes in process (as in a standard run), or every write of a dynamically linked
    // client would pay a uprobe trap and a ring copy. It holds no value and no broker.
    if (blind_->proxies_everything()) preload_witness();
    else if (auto w = sensors_->witness_path(); !w.empty())
      env_opts_.plain.push_back({preload::witness::kEnvWitness, w, {}});
    sup_.subreaper = true;
    return std::nullopt;
  }
  // A value may go to the hosts its secret is bound to (hosts, else the catalogue's);
  // a secret bound nowhere may go anywhere, and no leak of it can be told.
  std::vector<std::string> names;
  for (const auto& s : secrets_) names.push_back(s.name);
  auto bindings = blind_bindings(*cfg_, names, true);
  std::vector<WatchedSecret> watch;
  if (bindings)
    for (const auto& [name, b] : *bindings)
      for (const auto& s : secrets_)
        if (s.name == name) watch.push_back({s.name, s.value.view(), "", b});
  // A canary is bound nowhere: the tap and the shim's witness raise the alarm on any
  // write of it.
  for (const auto& c : canaries_) watch.push_back({c.name, c.env_value.view(), "", Binding{}, true});
  sensors_->watch(watch, true);
  preload_witness();
  add_canaries_to_env();
  // Killing on a canary ends the whole tree: kz adopts what daemonises.
  if (alarm_->kills()) sup_.subreaper = true;
  return std::nullopt;
}

// The shim's witness inspects the TLS writes of the processes it is loaded into: the
// shim first in LD_PRELOAD, then what kz inherited; without a shim every process of the
// run gets uprobes.
void RunSession::preload_witness() {
  const std::string w = sensors_->witness_path();
  if (w.empty()) return;
  auto shim = find_preload_library();
  if (!shim) {
    spdlog::info("TLS witness: no shim ({}); every process gets uprobes", shim.error().message);
    return;
  }
  std::string preload = *shim;
  if (const char* inherited = std::getenv("LD_PRELOAD"); inherited != nullptr && *inherited != '\0')
    preload += std::string(":") + inherited;
  env_opts_.plain.push_back({"LD_PRELOAD", preload, {}});
  env_opts_.plain.push_back({preload::witness::kEnvWitness, w, {}});
}

// The refresher for the secrets that say `refresh`: a new value is masked in the output
// from then on, and goes behind its token (blind) or into the next start of the command
// (--restart-on-change); SIGHUP to kz refreshes them all at once.
Step RunSession::start_rotation() {
  // Blind mode may take new values without `refresh` too (renewed access tokens, sealed
  // token answers: set_value_hook): the running output streams learn their masks through
  // the control, so a blind run always has one.
  if (rotating_.empty() && !blind_) return std::nullopt;
  auto control = SupervisorControl::create();
  if (!control) return fail(kExitInternal, control.error().message);
  {
    std::lock_guard lock(rotation_mu_);
    control_ = std::move(*control);
    if (masks_) control_->set_masks(masks_);   // values that came before the control did
  }
  sup_.control = control_;
  if (rotating_.empty()) return std::nullopt;
  if (!blind_)
    for (const auto& s : secrets_) current_.push_back({s.name, s.provider, SecretValue::from(s.value.view())});
  RefresherOptions ro;
  ro.cfg = &*cfg_;
  ro.secrets = leases_;
  ro.audit = trail_.get();
  ro.hooks.apply = [this](const std::string& name, SecretValue v) { return apply_rotation(name, std::move(v)); };
  if (blind_) {
    ro.hooks.expire = [b = blind_.get()](const std::string& name) { b->expire(name); };
    ro.hooks.token_id = [b = blind_.get()](const std::string& name) { return b->token_id_of(name); };
  } else {
    ro.hooks.changed = [this](const std::vector<std::string>& names) {
      {
        std::lock_guard lock(rotation_mu_);
        for (const auto& n : names)
          if (std::find(changed_.begin(), changed_.end(), n) == changed_.end()) changed_.push_back(n);
      }
      control_->restart();
    };
  }
  auto r = Refresher::start(std::move(ro));
  if (!r) {
    spdlog::error("{}", r.error().message);
    return fail(kExitConfig, "the refresh of rotating secrets could not start");
  }
  refresher_ = std::move(*r);
  sup_.take_signal = [this](int sig) {
    if (sig != SIGHUP) return false;
    spdlog::info("SIGHUP: refreshing {} secret(s) now", rotating_.size());
    refresher_->trigger();
    return true;
  };
  spdlog::info("{} secret(s) refresh in the background ({}); SIGHUP to kz refreshes them now", rotating_.size(),
               blind_ ? "new values behind the same tokens" : "the command restarts when one changes");
  return std::nullopt;
}

void RunSession::add_mask(std::string_view value) {
  if (!masks_) return;   // no masking in this run
  masks_ = masks_->adding({value});
  // The running streams learn new masks through the control (start_rotation: a blind run,
  // or any secret with `refresh`); before it exists, it takes them when it is made.
  if (control_) control_->set_masks(masks_);
}

Result<bool> RunSession::apply_rotation(const std::string& name, SecretValue value) {
  // Masked first: once in use, it may be printed.
  {
    std::lock_guard lock(rotation_mu_);
    add_mask(value.view());
  }
  if (blind_) return blind_->rotate(name, std::move(value));
  if (value.view().find('\0') != std::string_view::npos)
    return make_error(ErrorKind::Protocol, "the new value contains a NUL byte and cannot be passed in the environment");
  std::lock_guard lock(rotation_mu_);
  for (auto& s : current_) {
    if (s.name != name) continue;
    if (s.value.view() == value.view()) return false;
    s.value = std::move(value);   // the old copy is wiped
    return true;
  }
  return make_error(ErrorKind::Internal, "secret " + name + " is not one of the run's");
}

int RunSession::supervise() {
  // The values now live in the environment block and (derived) in the mask patterns;
  // the parent drops both copies it no longer needs as soon as the child exists.
  Status redirect_status = ok_status();
  EnvBlock* env = nullptr;
  // A restart's record, written once the new command has its pid.
  std::optional<RunRestarted> restarted;
  sup_.after_fork = [&](pid_t child) {
    // First: the sensors see the child's whole tree from its first instruction on.
    if (auto st = sensors_->add_root(child); !st && blind_) blind_->use_sensor(nullptr);
    if (blind_) {
      redirect_status = blind_->set_root(child);
      // A child that cannot be redirected must not run as if it were.
      if (!redirect_status) kill(child, SIGKILL);
    }
    env->wipe();
    secrets_.clear();
    if (restarted) {
      restarted->new_pid = child;
      trail_->record(std::move(*restarted));
      restarted.reset();
    }
    if (alarm_->kills()) alarm_->set_killer([this, child] { kill_run(child); });
  };
  if (blind_) sup_.child_prepare = [b = blind_.get()]() noexcept { return b->child_prepare(); };
  // Between two starts of the command, the signals it is forwarded wait for the next one.
  sigset_t held, old_mask;
  sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD}) sigaddset(&held, sig);
  if (o_.restart_on_change) sigprocmask(SIG_BLOCK, &held, &old_mask);
  Result<int> rc = 0;
  while (true) {
    EnvBlock block = build_child_env(environ, env_opts_, secrets_);
    env = &block;
    sup_.envp = block.envp();
    auto out = supervise_once(sup_);
    if (!out) { rc = out.take_error(); break; }
    if (!out->restart) { rc = out->status; break; }
    RunRestarted r;
    r.signal = std::string("SIG") + sigabbrev_np(sup_.restart_signal);
    r.grace_ms = sup_.restart_grace.count();
    r.old_pid = static_cast<long>(out->pid);
    r.outcome = out->killed ? "killed" : "exited";
    r.status = out->status;
    {
      std::lock_guard lock(rotation_mu_);
      r.secrets = std::move(changed_);
      changed_.clear();
      for (const auto& s : current_) secrets_.push_back({s.name, s.provider, SecretValue::from(s.value.view())});
      if (masks_) sup_.masks = masks_;
    }
    std::string names;
    for (const auto& n : r.secrets) names += (names.empty() ? "" : ", ") + n;
    spdlog::info("restarting {} (pid {} {}) with the new value(s) of {}", exe(), out->pid,
                 out->killed ? "was killed after the grace" : "ended", names);
    restarted = std::move(r);
  }
  if (o_.restart_on_change) sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (refresher_) refresher_->stop();
  // The command has ended: so has the run. As subreaper, kz is the ancestor of every
  // process of the run still alive (a daemon the agent started); they are ended, or
  // with --keep-survivors named, before the broker stops (which ends their grants).
  std::vector<std::string> survivors;
  if (sup_.subreaper) {
    EndOptions eo;
    eo.keep = o_.keep_survivors;
    if (blind_) eo.cgroup = blind_->run_cgroup();
    for (const Survivor& s : end_survivors(getpid(), eo)) survivors.push_back(describe(s));
    std::string list;
    for (const auto& s : survivors) list += (list.empty() ? "" : ", ") + s;
    if (!survivors.empty())
      spdlog::warn("{} process(es) of the run outlived the command{}: {}", survivors.size(),
                   o_.keep_survivors ? " and are left running (they can swap nothing more)" : "", list);
  }
  if (blind_) blind_->stop();
  sensors_->stop();
  if (!redirect_status) {
    spdlog::error("blind mode: the redirect could not be set up: {}", redirect_status.error().message);
    return fail(kExitInternal, redirect_status.error().message);
  }
  if (!rc) {
    spdlog::error("{}", rc.error().message);
    int code = kExitInternal;
    if (rc.error().kind == ErrorKind::NotFound) code = kExitNotFound;
    if (rc.error().kind == ErrorKind::Denied) code = kExitCannotExec;
    return fail(code, rc.error().message);
  }
  if (const std::string seen = alarm_->tripped(); !seen.empty()) {
    if (alarm_->kills()) {
      spdlog::error("canary {} was seen: the run was ended (on_canary = \"kill\"); see the audit log", seen);
      trail_->end(RunStop{"canary", "canary " + seen + " was seen; the run was ended (on_canary = kill)",
                          kExitCanary, std::move(survivors)});
      return kExitCanary;
    }
    spdlog::warn("canary {} was seen (a decoy: whoever sent it read it from the environment); see the audit log", seen);
  }
  trail_->end(RunStop{std::nullopt, std::nullopt, *rc, std::move(survivors)});
  return *rc;
}

}  // namespace

int cmd_run(const GlobalOptions& g, const RunOptions& o) {
  RunSession run(g, o);
  if (Step s = run.open_audit()) return *s;
  if (Step s = run.plan_environment()) return *s;
  if (Step s = run.check_trust()) return *s;
  if (Step s = run.prepare_blind()) return *s;
  if (Step s = run.resolve()) return *s;
  if (Step s = run.check_values()) return *s;
  if (Step s = run.plant_canaries()) return *s;
  run.plan_output();
  if (Step s = run.start_watchers()) return *s;
  if (Step s = run.start_rotation()) return *s;
  return run.supervise();
}

}  // namespace kz
