// kz run: resolve, build the child's environment, start the command under supervision.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include <openssl/rand.h>

#include "audit/audit_log.h"
#include "audit/audit_sinks.h"
#include "blind/blind_run.h"
#include "config/secret_bindings.h"
#include "secrets/token_table.h"
#include "commands/commands.h"
#include "commands/load.h"
#include "core/hardening.h"
#include "core/log.h"
#include "kz/wipe.h"
#include "masking/masker.h"
#include "run/child_env.h"
#include "resolve/pdp_client.h"
#include "resolve/resolver.h"
#include "run/supervisor.h"
#include "sensors/run_sensors.h"

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

}  // namespace

int cmd_run(const GlobalOptions& g, const RunOptions& o) {
  harden_process();
  if (o.command.empty()) {
    spdlog::error("kz run needs a command: kz run [options] -- COMMAND [ARGS...]");
    return kExitConfig;
  }
  auto on_leak = parse_on_leak(o.on_leak);
  if (!on_leak) { spdlog::error("{}", on_leak.error().message); return kExitConfig; }
  auto cfg = load_config_for(g);
  if (!cfg) { spdlog::error("{}", cfg.error().message); return kExitConfig; }

  // Audit: opened before anything is resolved; a run that cannot be audited does not start.
  const std::string audit_path = !o.audit_log.empty() ? o.audit_log
                                 : !cfg->audit.path.empty() ? cfg->audit.path : default_audit_path();
  auto audit = AuditLog::open(audit_path);
  if (!audit) { spdlog::error("{} (set [audit] path or --audit-log)", audit.error().message); return kExitConfig; }
  unsigned char rid[8];
  RAND_bytes(rid, sizeof rid);
  const std::string run_id = hex_lower(std::string_view(reinterpret_cast<char*>(rid), sizeof rid));
  // The broker thread (blind mode) records too: appends are serialised here.
  std::mutex audit_mu;
  const long launcher_pid = static_cast<long>(getpid());
  // Sinks (syslog, HTTP) get a copy of each line after the file has it; they never block.
  auto sinks = AuditSinks::start(cfg->audit);
  if (!sinks) { spdlog::error("{}", sinks.error().message); return kExitConfig; }
  std::function<void(nlohmann::json)> record = [&](nlohmann::json j) {
    j["run"] = run_id;
    if (!j.contains("pid")) j["pid"] = launcher_pid;
    std::lock_guard lock(audit_mu);
    std::string line;
    if (auto st = audit->append(std::move(j), &line); !st) spdlog::warn("{}", st.error().message);
    if (!line.empty()) (*sinks)->submit(line);
  };
  // Declared before stop_record, so it runs after run.stop is written: the sinks drain
  // (2 s at most), and records a sink lost are counted on stderr and in the file.
  struct SinkFinish {
    AuditSinks& sinks;
    AuditLog& log;
    const std::string& run;
    ~SinkFinish() {
      for (const auto& st : sinks.finish()) {
        if (st.lost() == 0) continue;
        spdlog::warn("audit sink {}: {} record(s) not delivered ({} dropped: queue full, {} failed, {} still queued at "
                     "the end); the audit file has them all",
                     st.sink, st.lost(), st.dropped_full, st.failed, st.undelivered);
        (void)log.append({{"event", "audit.sink"}, {"decision", "error"}, {"sink", st.sink}, {"run", run},
                          {"delivered", st.delivered}, {"dropped", st.lost()},
                          {"reason", "records not delivered to the sink"}});
      }
    }
  } sink_finish{**sinks, *audit, run_id};
  record({{"event", "run.start"}, {"mode", o.blind_proxy ? "blind-proxy" : o.blind ? "blind" : "standard"},
          {"exe", o.command.empty() ? "" : o.command[0]}, {"config", cfg->path}});
  // Every return path below ends the run in the log exactly once.
  struct StopRecord {
    std::function<void(nlohmann::json)> write;
    bool done = false;
    ~StopRecord() { if (!done) write({{"event", "run.stop"}, {"decision", "error"}, {"reason", "not started"}}); }
    void stop(nlohmann::json j) { done = true; j["event"] = "run.stop"; write(std::move(j)); }
  } stop_record{record};

  // Plain variables from --env-file; a clash with a secret is an error unless --override
  // (then the file's value is used and that secret is not resolved).
  ChildEnvOptions env_opts;
  env_opts.clean = o.clean_env;
  env_opts.keep = o.keep_env;
  // The collector's token is kz's, not the command's; so is the PDP identity token.
  if (!cfg->audit.http_token_env.empty()) env_opts.drop.push_back(cfg->audit.http_token_env);
  env_opts.drop.push_back(kEnvIdentityToken);
  for (const auto& f : o.env_files) {
    auto vars = parse_env_file(f);
    if (!vars) { spdlog::error("{}", vars.error().message); return kExitConfig; }
    for (auto& v : *vars) env_opts.plain.push_back(std::move(v));
  }
  if (auto st = check_selection(*cfg, o.only); !st) { spdlog::error("{}", st.error().message); return kExitConfig; }
  std::set<std::string> overridden;
  for (const auto& v : env_opts.plain) {
    if (cfg->find_secret(v.name) == nullptr) continue;
    if (!o.override_env) {
      spdlog::error("{}: {} is also a secret in {} (use --override to let the env file win)",
                    format_pos(v.pos), v.name, cfg->path);
      return kExitConfig;
    }
    overridden.insert(v.name);
  }
  ResolveOptions ropts;
  ropts.on_result = [&](const SecretSpec& s, const Error* e) {
    nlohmann::json j = {{"event", "resolve"}, {"secret", s.name}, {"provider", s.provider},
                        {"exe", o.command[0]}, {"decision", e == nullptr ? "ok" : "error"}};
    // An exec ref is a command line, which may carry anything: it is not recorded.
    if (s.provider != "exec") j["ref"] = s.ref;
    if (e != nullptr) j["reason"] = e->message;
    record(std::move(j));
  };
  for (const auto& s : cfg->secrets) {
    const bool selected = o.only.empty() || std::find(o.only.begin(), o.only.end(), s.name) != o.only.end();
    if (selected && overridden.count(s.name) == 0) ropts.only.push_back(s.name);
  }
  // The agent gets the values, not the keys to the vault: provider credentials and the
  // source variables of env secrets are removed from what it inherits.
  {
    std::vector<std::string> used;
    for (const auto& name : ropts.only) {
      const SecretSpec* s = cfg->find_secret(name);
      used.push_back(s->provider);
      if (s->provider == "env" && s->ref != s->name) env_opts.drop.push_back(s->ref);
    }
    for (auto& v : provider_credential_vars(used)) env_opts.drop.push_back(std::move(v));
    for (const auto& d : env_opts.drop) spdlog::debug("not passed to the command: {}", d);
  }
  // Blind mode is checked before anything is resolved: every secret needs somewhere it
  // may go, and the shim and the trust store must be there.
  // Declared before `blind`, whose broker asks the process sensor until blind->stop().
  std::unique_ptr<RunSensors> sensors;
  std::unique_ptr<BlindRun> blind;
  if (o.blind) {
    BlindModeOptions bm;
    bm.allow_any_host = o.allow_any_host;
    bm.proxy_all = o.blind_proxy;
    bm.redirector = o.redirector;
    auto b = BlindRun::prepare(*cfg, ropts.only, bm);
    if (!b) {
      spdlog::error("{}", b.error().message);
      stop_record.stop({{"decision", "error"}, {"reason", "blind mode could not be set up"}, {"exit", kExitConfig}});
      return kExitConfig;
    }
    blind = std::move(*b);
  }
  std::vector<ResolvedSecret> secrets;
  if (!ropts.only.empty()) {
    const auto t0 = Clock::now();
    Result<std::vector<ResolvedSecret>> r = std::vector<ResolvedSecret>{};
    if (!cfg->server.url.empty()) {
      // Through the PDP: it decides per secret for this identity, and resolves.
      auto token = identity_token(*cfg, o.identity_token_file);
      if (!token) {
        spdlog::error("{}", token.error().message);
        stop_record.stop({{"decision", "error"}, {"reason", "no identity token for the PDP"}, {"exit", kExitConfig}});
        return kExitConfig;
      }
      PdpResolveOptions po;
      po.only = ropts.only;
      po.token = std::move(*token);
      po.on_result = [&](const SecretSpec& s, const Error* e, const std::string& decision_id) {
        nlohmann::json j = {{"event", "resolve"}, {"secret", s.name}, {"provider", s.provider}, {"ref", s.ref},
                            {"exe", o.command[0]}, {"via", cfg->server.url}, {"decision_id", decision_id},
                            {"decision", e == nullptr ? "ok" : e->kind == ErrorKind::Denied ? "deny" : "error"}};
        if (e != nullptr) j["reason"] = e->message;
        record(std::move(j));
      };
      r = resolve_via_pdp(*cfg, po);
      wipe(po.token);
    } else {
      r = resolve_secrets(*cfg, ropts);
    }
    if (!r) {
      spdlog::error("{}", r.error().message);
      stop_record.stop({{"decision", "error"}, {"reason", "resolution failed"}, {"exit", kExitConfig}});
      return exit_code_for(r.error());
    }
    secrets = std::move(*r);
    spdlog::info("resolved {} secret(s) in {} ms", secrets.size(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  }
  for (const auto& s : secrets) {
    if (s.value.view().find('\0') != std::string_view::npos) {
      spdlog::error("secret {} (provider {}) contains a NUL byte and cannot be passed in the environment",
                    s.name, s.provider);
      return kExitConfig;
    }
    if (!s.value.locked())
      spdlog::debug("secret {}: memory could not be locked (RLIMIT_MEMLOCK); it is still excluded from core dumps", s.name);
  }

  SuperviseOptions sup;
  sup.argv = o.command;
  const bool masking = !o.no_masking && cfg->masking.enabled;
  if (masking) {
    MaskerOptions mo;
    mo.replacement = o.mask_replacement.value_or(cfg->masking.replacement);
    std::vector<std::string_view> values;
    for (const auto& s : secrets) {
      values.push_back(s.value.view());
      if (s.value.size() < mo.min_secret_len)
        spdlog::warn("secret {} is shorter than {} bytes and is not masked in output", s.name, mo.min_secret_len);
    }
    sup.masks = MaskPatterns::build(values, mo);
    sup.mode = (!o.no_pty && isatty(1) == 1) ? OutputMode::Pty : OutputMode::Pipes;
  } else {
    sup.mode = OutputMode::Inherit;
    spdlog::info("output masking is off");
  }

  // The sensors watch every run (standard or blind) when the host allows eBPF; they are
  // in place before the broker or the proxy can be asked anything.
  {
    RunSensorOptions so;
    so.enabled = !o.no_sensors;
    so.on_leak = *on_leak;
    so.audit = record;
    sensors = RunSensors::start(std::move(so));
  }
  if (blind) {
    blind->use_sensor(sensors->process());
    // The values move into the broker's table; the child gets tokens in their place.
    auto st = blind->start(std::move(secrets), record);
    if (!st) {
      spdlog::error("{}", st.error().message);
      stop_record.stop({{"decision", "error"}, {"reason", st.error().message}, {"exit", kExitInternal}});
      return kExitInternal;
    }
    sensors->watch(LeakDetector::build(blind->watch_list()));
    secrets = blind->child_secrets();
    for (auto& v : blind->child_vars(environ)) env_opts.plain.push_back(std::move(v));
    sup.subreaper = true;
  }
  if (!blind) {
    // A value may go to the hosts its secret is bound to (hosts, else the catalogue's);
    // a secret bound nowhere may go anywhere, and no leak of it can be told.
    std::vector<std::string> names;
    for (const auto& s : secrets) names.push_back(s.name);
    auto bindings = blind_bindings(*cfg, names, true);
    std::vector<WatchedSecret> watch;
    if (bindings)
      for (const auto& [name, b] : *bindings)
        for (const auto& s : secrets)
          if (s.name == name) watch.push_back({s.name, s.value.view(), "", b});
    sensors->watch(LeakDetector::build(watch));
  }
  EnvBlock env = build_child_env(environ, env_opts, secrets);
  sup.envp = env.envp();
  // The values now live in the environment block and (derived) in the mask patterns;
  // the parent drops both copies it no longer needs as soon as the child exists.
  Status redirect_status = ok_status();
  sup.after_fork = [&](pid_t child) {
    // First: the sensors see the child's whole tree from its first instruction on.
    if (auto st = sensors->add_root(child); !st && blind) blind->use_sensor(nullptr);
    if (blind) {
      redirect_status = blind->set_root(child);
      // A child that cannot be redirected must not run as if it were.
      if (!redirect_status) kill(child, SIGKILL);
    }
    env.wipe();
    secrets.clear();
  };
  if (blind) sup.child_prepare = [b = blind.get()]() noexcept { return b->child_prepare(); };
  auto rc = run_supervised(sup);
  if (blind) blind->stop();
  sensors->stop();
  if (!redirect_status) {
    spdlog::error("blind mode: the redirect could not be set up: {}", redirect_status.error().message);
    stop_record.stop({{"decision", "error"}, {"reason", redirect_status.error().message}, {"exit", kExitInternal}});
    return kExitInternal;
  }
  int code = kExitInternal;
  if (!rc) {
    spdlog::error("{}", rc.error().message);
    if (rc.error().kind == ErrorKind::NotFound) code = kExitNotFound;
    if (rc.error().kind == ErrorKind::Denied) code = kExitCannotExec;
    stop_record.stop({{"decision", "error"}, {"reason", rc.error().message}, {"exit", code}});
    return code;
  }
  stop_record.stop({{"exit", *rc}});
  return *rc;
}

}  // namespace kz
