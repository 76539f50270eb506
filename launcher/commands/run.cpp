// kz run: resolve, build the child's environment, start the command under supervision.
#include <unistd.h>

#include <algorithm>
#include <set>

#include "commands/commands.h"
#include "commands/load.h"
#include "core/hardening.h"
#include "core/log.h"
#include "masking/masker.h"
#include "run/child_env.h"
#include "run/resolver.h"
#include "run/supervisor.h"

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
  auto cfg = load_config_for(g);
  if (!cfg) { spdlog::error("{}", cfg.error().message); return kExitConfig; }

  // Plain variables from --env-file; a clash with a secret is an error unless --override
  // (then the file's value is used and that secret is not resolved).
  ChildEnvOptions env_opts;
  env_opts.clean = o.clean_env;
  env_opts.keep = o.keep_env;
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
  for (const auto& s : cfg->secrets) {
    const bool selected = o.only.empty() || std::find(o.only.begin(), o.only.end(), s.name) != o.only.end();
    if (selected && overridden.count(s.name) == 0) ropts.only.push_back(s.name);
  }
  std::vector<ResolvedSecret> secrets;
  if (!ropts.only.empty()) {
    const auto t0 = Clock::now();
    auto r = resolve_secrets(*cfg, ropts);
    if (!r) { spdlog::error("{}", r.error().message); return exit_code_for(r.error()); }
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

  EnvBlock env = build_child_env(environ, env_opts, secrets);
  sup.envp = env.envp();
  // The values now live in the environment block and (derived) in the mask patterns;
  // the parent drops both copies it no longer needs as soon as the child exists.
  sup.after_fork = [&] {
    env.wipe();
    secrets.clear();
  };
  auto rc = run_supervised(sup);
  if (!rc) {
    spdlog::error("{}", rc.error().message);
    if (rc.error().kind == ErrorKind::NotFound) return kExitNotFound;
    if (rc.error().kind == ErrorKind::Denied) return kExitCannotExec;
    return kExitInternal;
  }
  return *rc;
}

}  // namespace kz
