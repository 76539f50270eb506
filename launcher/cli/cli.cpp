#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>
#include <algorithm>
#include <cstdio>
#include <string_view>

#include "commands/commands.h"
#include "core/log.h"

namespace kz {

namespace {

constexpr const char* kDescription =
    "kz (KeyZero) keeps credentials away from AI agents.\n"
    "It resolves the secrets named in .keyzero.toml from their providers (1Password, Vault,\n"
    "AWS Secrets Manager, env, file, exec) and runs a command with them, masking their values\n"
    "in the command's output; with --blind the command gets tokens instead of values. As a\n"
    "server (kz server start) it is a policy decision point that gives each agent identity\n"
    "(a JWT) exactly the secrets its policies allow; with --mcp (or as kz mcp on stdio) it is an\n"
    "MCP server whose fetch tool makes authenticated requests for agents that never see the key.";

constexpr const char* kFooter =
    "\nExamples:\n"
    "  kz check --resolve                     validate .keyzero.toml and resolve every secret\n"
    "  kz run -- python agent.py              run with secrets in the environment, output masked\n"
    "  kz run --only OPENAI_API_KEY -- curl … resolve just one secret\n"
    "  kz run --blind -- python agent.py      the agent gets tokens; values only inside TLS to bound hosts\n"
    "  kz trust                               review and record where the project's secrets may go\n"
    "  kz doctor                              what this host supports\n"
    "  kz audit verify                        check the audit log's hash chain and head\n"
    "  kz audit query --secret GH --since 2h  records of one secret in the last two hours\n"
    "  kz policy test bundle.yaml --claims c.json --ref secret/data/prod/db   decide offline\n"
    "  kz server start --bundle bundle.yaml   the policy decision point (PDP) for a fleet\n"
    "  kz server start --bundle b.yaml --mcp  ... and an MCP server at /mcp (Streamable HTTP)\n"
    "  kz mcp --bundle bundle.yaml            an MCP server on stdio, for clients that spawn it\n"
    "\nExit codes: 0 ok; 2 configuration, usage or resolution error; 126 command not executable;\n"
    "127 command not found; otherwise the command's own status (128+N when killed by signal N).";

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    std::size_t b = 0;
    while (b <= s.size()) {
      auto e = s.find(',', b);
      if (e == std::string::npos) e = s.size();
      if (e > b) out.push_back(s.substr(b, e - b));
      b = e + 1;
    }
  }
  return out;
}

}  // namespace

int cli_main(int argc, char** argv) {
  // No OPENSSL_cleanup at exit: freeing every table OpenSSL built is a few percent of a
  // short-lived kz's CPU (kz run -- true), for memory the exit returns anyway. Only this
  // flag, before anything else touches OpenSSL: its configuration still loads as usual.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  CLI::App app{kDescription, "kz"};
  app.footer(kFooter);
  app.require_subcommand(1);
  // Global options may follow the subcommand too: `kz run --blind -v -- cmd`.
  app.fallthrough();
  app.set_version_flag("--version", "kz 0.1.0");
  GlobalOptions g;
  app.add_option("-c,--config", g.config, "Configuration file (default: .keyzero.toml in this directory or a parent)")
      ->check(CLI::ExistingFile);
  app.add_flag("-v,--verbose", g.verbosity, "More diagnostics on stderr (-vv for debug); never prints values");
  app.add_flag("-q,--quiet", g.quiet, "Only errors on stderr");

  RunOptions run;
  std::string blind_mode;   // --blind[=shim|proxy]
  std::vector<std::string> only, keep;
  auto* run_cmd = app.add_subcommand("run", "Resolve secrets and run COMMAND with them in its environment");
  run_cmd->footer(
      "\nThe command follows `--`. Every resolved value (and its base64, percent, JSON and hex\n"
      "encodings) is replaced in the command's stdout/stderr by `<concealed by kz>`. When stdout is\n"
      "a terminal the command runs on a pseudo-terminal so colours and interactive programs work.\n"
      "Signals are forwarded; kz exits with the command's status.\n"
      "\nWith --blind the command never sees the values: its environment holds tokens, and the\n"
      "shim (LD_PRELOAD) swaps a token for its value inside outbound TLS only when the peer's\n"
      "certificate verifies for a host the secret is bound to (hosts = [...]). Every swap and\n"
      "refusal is an audit record (kz audit summary).\n"
      "The first blind run of a project records its bindings outside the workspace (kz trust); a\n"
      "later run whose config lets a value go somewhere new stops with status 2 and shows the\n"
      "changes, until you review them with `kz trust`.\n"
      "Programs the shim cannot serve (static, Go, Java, node with its own OpenSSL) have their\n"
      "connections to port 443 (and [blind] proxy_ports) redirected to kz's TLS proxy, which swaps\n"
      "under the same rules; --blind=proxy sends every program there, so no value ever enters the\n"
      "agent's address space. The redirect is eBPF (root/CAP_BPF) or seccomp (any user); `kz doctor`\n"
      "says which one this machine uses.\n"
      "\nAs root, eBPF sensors watch the command's whole process tree: every audit record carries\n"
      "the process lineage (bash → python3 → curl), and a tap on the TLS libraries sees what each\n"
      "process writes: a secret's value sent to a host not bound to it is a \"leak\" record\n"
      "(--on-leak=kill fails that write); a token sent to such a host is \"exfil\". The shim inspects\n"
      "the writes of the processes it is loaded into; kernel uprobes those of the others\n"
      "(--sensors=full: every write, in the kernel).\n"
      "  kz run -- ./agent.sh\n"
      "  kz run --blind -- python agent.py\n"
      "  kz run --blind=proxy -- node agent.mjs\n"
      "  kz run --clean-env --keep-env PYTHONPATH -- python agent.py\n"
      "  kz run --env-file .env --only GITHUB_TOKEN -- gh repo list");
  run_cmd->add_option("--only", only, "Resolve only these secrets (NAME,NAME...)")->allow_extra_args(false);
  run_cmd->add_flag("--no-masking", run.no_masking, "Do not mask secret values in the command's output");
  run_cmd->add_flag("--no-pty", run.no_pty, "Use pipes even when stdout is a terminal");
  run_cmd->add_option("--mask-replacement", run.mask_replacement, "Text that replaces a masked value");
  run_cmd->add_option("--env-file", run.env_files, "Add plain NAME=VALUE variables from FILE (repeatable)")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  run_cmd->add_option("--audit-log", run.audit_log,
                      "Append audit records here (default: [audit] path, else $XDG_STATE_HOME/keyzero/audit.jsonl)");
  run_cmd->add_flag("--override", run.override_env, "Let --env-file variables replace secrets of the same name");
  run_cmd->add_flag("--clean-env", run.clean_env,
                    "Start from PATH, HOME, USER, LOGNAME, LANG, TERM and the secrets only");
  run_cmd->add_option("--keep-env", keep, "Keep these inherited variables: with --clean-env, or provider credentials kz removes (NAME,NAME...)")
      ->allow_extra_args(false);
  // A bare --blind reads "default": the form is then [blind] mode (else the shim).
  run_cmd->add_flag("--blind{default}", blind_mode,
                    "Give the command tokens (KZ_TOK_...) instead of values; they are swapped for the real values "
                    "only on the way out to each secret's hosts. --blind=proxy: all TLS through kz's proxy "
                    "(--blind alone: [blind] mode, default shim)")
      ->check(CLI::IsMember({"default", "shim", "proxy"}));
  run_cmd->add_flag("--keep-survivors", run.keep_survivors,
                    "With --blind: leave the run's processes that outlive the command running (they are named in "
                    "run.stop, and can swap nothing more: the broker ends with the run). Default: SIGTERM, "
                    "then SIGKILL after 1 s");
  run_cmd->add_option("--redirector", run.redirector,
                      "With --blind: how connections reach the proxy: auto (eBPF when privileged, else seccomp), "
                      "ebpf, seccomp, off (default: [blind] redirector, else auto)")
      ->check(CLI::IsMember({"auto", "ebpf", "seccomp", "off"}));
  run_cmd->add_flag("--allow-any-host", run.allow_any_host,
                    "With --blind: secrets without hosts = [...] may go to any host whose certificate verifies "
                    "(warns)");
  run_cmd->add_option("--identity-token-file", run.identity_token_file,
                      "With [server] url: the identity token (JWT) to show the PDP (default: $KZ_IDENTITY_TOKEN, "
                      "else [server] identity_token_file)");
  run_cmd->add_flag("--no-sensors", run.no_sensors,
                    "Do not start the eBPF sensors (process tree, TLS tap) for this run; lineage then comes "
                    "from /proc in blind mode and leaks are not watched");
  run_cmd->add_option("--on-leak", run.on_leak,
                      "When the eBPF TLS tap (root) sees a secret's value written to a host it is not bound to: "
                      "audit (record a \"leak\"), or kill (stop the process before the write is encrypted, "
                      "then kill it)")
      ->check(CLI::IsMember({"audit", "kill"}))
      ->default_str("audit");
  run_cmd->add_flag("--restart-on-change", run.restart_on_change,
                    "Standard mode: when a secret with refresh = \"...\" gets a new value, end the command "
                    "(--restart-signal, then SIGKILL after --restart-grace) and start it again with the new values");
  run_cmd->add_option("--restart-signal", run.restart_signal,
                      "With --restart-on-change: the signal that asks the command to end (default SIGTERM)")
      ->check(CLI::IsMember({"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "TERM", "INT", "HUP",
                             "QUIT", "USR1", "USR2"}));
  run_cmd->add_option("--restart-grace", run.restart_grace,
                      "With --restart-on-change: how long the command has to end before SIGKILL (default 10s)");
  run_cmd->add_option("--on-canary", run.on_canary,
                      "When a canary (a decoy secret, canary = true) is seen anywhere: audit (a \"canary\" "
                      "record), or kill (also end the run; kz exits 3) (default: [canary] on_canary, else audit)")
      ->check(CLI::IsMember({"audit", "kill"}));
  run_cmd->add_option("--sensors", run.sensors,
                      "Which witness inspects each TLS write: default (the shim in process where it is loaded, "
                      "kernel uprobes for the run's other processes only) or full (kernel uprobes on every "
                      "write of the run, as an independent witness; costs a trap per write, see docs/sensors.md)")
      ->check(CLI::IsMember({"default", "full"}))
      ->default_str("default");
  run_cmd->add_option("--approve-via", run.approve_via,
                      "With --blind and a secret with approve = ...: POST each approval request to this URL and "
                      "take the answer from its response (CI, headless); default: ask on the terminal");
  run_cmd->add_option("--approve-timeout", run.approve_timeout,
                      "How long a held request waits for its approval before it is refused (default 120s)");
  run_cmd->add_option("command", run.command, "Command and its arguments (after --)");

  ApproveOptions approve;
  auto* approve_cmd = app.add_subcommand(
      "approve", "Approve (or --deny) a blind run's request that waits for a person, by the code its prompt shows");
  approve_cmd->add_option("code", approve.code, "The code the prompt on the run's terminal shows (none: list)");
  approve_cmd->add_flag("--deny", approve.deny, "Deny the request instead");
  approve_cmd->add_option("--run", approve.run, "The run whose prompt shows the code (the prompt names it: KZPID-HEX)");

  TrustOptions trust;
  auto* trust_cmd = app.add_subcommand(
      "trust", "Review and record where this project's secrets may go (kz run --blind refuses changes until then)");
  trust_cmd->add_flag("-y,--yes", trust.yes, "Record without asking (after you have read the changes)");
  trust_cmd->footer(
      "\nBlind mode sends a value only to the hosts, methods and paths its secret is bound to in\n"
      ".keyzero.toml, verified with [blind] ca_file. An agent can edit files in its workspace, that\n"
      "config included, so kz keeps the bindings you trusted outside it, in\n"
      "$XDG_CONFIG_HOME/keyzero/trust (default ~/.config/keyzero/trust), one record per config path.\n"
      "The first `kz run --blind` of a project trusts what it finds (and says so). After that, a\n"
      "run whose config lets a value go somewhere new (a host, a method or path rule loosened, a\n"
      "new secret, a secret read from another source, another CA file or new contents in it)\n"
      "stops with exit status 2 before anything starts, and prints the changes. Narrowing is\n"
      "accepted without asking.\n"
      "kz trust prints the changes (+ widens, - narrows) and records them when you say yes. It\n"
      "refuses to run under kz run: the agent must not approve its own bindings.\n"
      "  kz trust                  review and confirm at the terminal\n"
      "  kz trust --yes            record without the question (scripts, after review)\n"
      "  kz trust -c ./other/.keyzero.toml");

  CheckOptions check;
  auto* check_cmd = app.add_subcommand("check", "Validate .keyzero.toml (and with --resolve, resolve every secret)");
  check_cmd->add_flag("--resolve", check.resolve, "Resolve each secret; prints name, provider and length only");

  AuditOptions audit;
  auto* audit_cmd = app.add_subcommand("audit", "Check, summarise or search an audit log (JSON Lines, hash-chained)");
  audit_cmd->add_option("action", audit.action,
                        "verify: check the hash chain and that nothing was cut off the end; summary: uses per secret, "
                        "host, executable, and refusals/leaks; query: the records matching every filter given; "
                        "schema: every kind of record and its fields")
      ->required()
      ->check(CLI::IsMember({"verify", "summary", "query", "schema"}));
  audit_cmd->add_option("file", audit.file, "Audit log (default: $XDG_STATE_HOME/keyzero/audit.jsonl)");
  audit_cmd->add_option("--secret", audit.secret, "query: records of this secret");
  audit_cmd->add_option("--host", audit.host, "query: records for this host");
  audit_cmd->add_option("--since", audit.since, "query: at or after T (RFC 3339, or 30s, 15m, 2h, 1d, 1w ago)");
  audit_cmd->add_option("--until", audit.until, "query: at or before T (same forms as --since)");
  audit_cmd->add_option("--pid", audit.pid, "query: records of this process id");
  audit_cmd->add_option("--event", audit.event, "query: records of this event (resolve, swap, leak, run.start, ...)");
  audit_cmd->add_option("--decision", audit.decision, "query: records with this decision (ok, allow, refuse, deny, error)");
  audit_cmd->add_option("--run", audit.run, "query: records of this run id");
  audit_cmd->add_flag("--json", audit.json, "query: print the matching records as the log's JSON lines");
  audit_cmd->footer(
      "\nExamples:\n"
      "  kz audit query --secret GITHUB_TOKEN --since 1d\n"
      "  kz audit query --event swap --decision refuse --json | jq .\n"
      "  kz audit verify /var/log/kz/audit.jsonl\n"
      "  kz audit schema\n");

  PolicyOptions policy;
  auto* policy_cmd = app.add_subcommand("policy", "Check a PDP bundle, or decide one request offline (like opa eval)");
  policy_cmd->add_option("action", policy.action,
                         "check: load and check bundle.yaml (YAML, providers, every rule's CEL); test: decide one "
                         "request for the claims given and explain which rules decided")
      ->required()
      ->check(CLI::IsMember({"check", "test"}));
  policy_cmd->add_option("bundle", policy.bundle, "The bundle file (bundle.yaml)")->required();
  policy_cmd->add_option("--claims", policy.claims_file, "test: a JSON file with the identity's claims (a JWT's payload)");
  policy_cmd->add_option("--ref", policy.ref, "test: the secret's ref, e.g. secret/data/prod/db#password");
  policy_cmd->add_option("--provider", policy.provider, "test: the secret's provider (CEL secret.provider)");
  policy_cmd->add_option("--name", policy.name, "test: the secret's variable name (CEL secret.name)");
  policy_cmd->add_option("--host", policy.host, "test: a use of the secret toward this host (CEL request.host)");
  policy_cmd->add_option("--method", policy.method, "test: ... with this HTTP method (request.method)");
  policy_cmd->add_option("--path", policy.path, "test: ... and this path (request.path)");
  policy_cmd->add_option("--source", policy.source, "test: the client's address (request.source)");
  policy_cmd->add_flag("--json", policy.json, "test: print the decision as JSON");
  policy_cmd->footer(
      "\nExit status of test: 0 allowed, 1 denied, 2 the bundle or the input is wrong.\n"
      "  kz policy check bundle.yaml\n"
      "  kz policy test bundle.yaml --claims claims.json --ref secret/data/prod/db#password --provider vault");
  ServerOptions server;
  auto* server_cmd = app.add_subcommand("server", "Run kz as a service: the policy decision point (PDP)");
  auto* server_start = server_cmd->add_subcommand("start", "Serve the PDP's HTTP API for a bundle");
  server_cmd->require_subcommand(1);
  server_start->add_option("--bundle", server.bundle, "bundle.yaml: identities, providers, policies (and secrets for --mcp)")
      ->required()
      ->check(CLI::ExistingFile);
  server_start->add_option("--listen", server.listen, "HOST:PORT to listen on (default 127.0.0.1:8787; port 0: any)");
  server_start->add_option("--tls-cert", server.tls_cert, "Serve HTTPS with this certificate chain (PEM)");
  server_start->add_option("--tls-key", server.tls_key, "... and this private key (PEM)");
  server_start->add_option("--audit-log", server.audit_log,
                           "Decision log (default: $XDG_STATE_HOME/keyzero/audit.jsonl), hash-chained like kz run's");
  server_start->add_option("--threads", server.threads, "I/O threads (default: one per core)");
  server_start->add_option("--replica-id", server.replica_id,
                           "Name this replica in every audit record (\"replica\"); default with mcp.replicas "
                           "in the bundle: HOSTNAME-PID");
  server_start->add_option("--on-canary", server.on_canary,
                           "With --mcp, when a canary (a decoy secret, canary: true) is used: audit (a \"canary\" "
                           "record), or kill (also revoke the identity that used it: its every later call and token "
                           "is refused) (default audit)")
      ->check(CLI::IsMember({"audit", "kill"}));
  server_start->add_flag("--mcp", server.mcp,
                         "Also serve MCP (Streamable HTTP) at /mcp: the resolve and fetch tools, for agents "
                         "with a Bearer JWT");
  server_start->footer(
      "\nAPI: POST /v1/decide and POST /v1/resolve (Authorization: Bearer <JWT>; body\n"
      "{\"secrets\": [{\"name\", \"provider\", \"ref\"}]}), GET /healthz, GET /metrics.\n"
      "The bundle is reloaded on SIGHUP and when the file changes; a bundle that does not load is\n"
      "rejected with the error logged and the old one kept. SIGTERM/SIGINT stop gracefully.\n"
      "  kz server start --bundle ./bundle.yaml\n"
      "  kz server start --bundle ./bundle.yaml --listen 0.0.0.0:8443 --tls-cert pdp.pem --tls-key pdp.key\n"
      "  kz server start --bundle ./bundle.yaml --mcp        (MCP clients: url http://127.0.0.1:8787/mcp)");
  McpOptions mcp;
  auto* mcp_cmd = app.add_subcommand("mcp", "Serve MCP on stdin/stdout: resolve and fetch tools for an agent");
  mcp_cmd->add_option("--bundle", mcp.bundle, "bundle.yaml: secrets, identities, policies (else .keyzero.toml's [secrets])")
      ->check(CLI::ExistingFile);
  mcp_cmd->add_option("--identity-token-file", mcp.identity_token_file,
                      "With --bundle: the agent's identity token (JWT) (default: $KZ_IDENTITY_TOKEN)");
  mcp_cmd->add_option("--on-canary", mcp.on_canary,
                      "When a canary is used: audit (a \"canary\" record), or kill (also revoke this identity: every "
                      "later call is refused) (default: [canary] on_canary with .keyzero.toml, else audit)")
      ->check(CLI::IsMember({"audit", "kill"}));
  mcp_cmd->add_option("--audit-log", mcp.audit_log, "Audit log (default: [audit] path, else $XDG_STATE_HOME/keyzero/audit.jsonl)");
  mcp_cmd->footer(
      "\nAn MCP client starts `kz mcp` and talks JSON-RPC on its stdin/stdout. Tools:\n"
      "  resolve {name | ref}   a token (KZ_TOK_...) for a secret, its hosts and expiry; never the value\n"
      "                         unless the deciding rule says reveal: true\n"
      "  fetch {url, method, headers, body, timeout_ms}\n"
      "                         kz makes the HTTPS request, swapping tokens for values only for the hosts\n"
      "                         their secrets are bound to; values echoed back are replaced by tokens\n"
      "Every call is an audit record. Client configuration (e.g. Claude Desktop):\n"
      "  {\"mcpServers\": {\"kz\": {\"command\": \"kz\", \"args\": [\"mcp\", \"--bundle\", \"/etc/kz/bundle.yaml\"],\n"
      "                        \"env\": {\"KZ_IDENTITY_TOKEN\": \"<the agent's JWT>\"}}}}\n"
      "  kz mcp --bundle ./bundle.yaml --identity-token-file /var/run/secrets/tokens/agent\n"
      "  kz mcp --config ./.keyzero.toml");
  app.add_subcommand("doctor", "Show what this host supports: kernel, BTF, cgroup v2, lockdown, capabilities, TLS libraries");

  // Everything after the first `--` is the command, untouched by kz's option parser
  // (so `kz run -- sh -c 'x' --help` passes --help to sh).
  std::vector<std::string> args, after_dashes;
  bool dashes = false;
  for (int i = 1; i < argc; ++i) {
    if (!dashes && std::string_view(argv[i]) == "--") { dashes = true; continue; }
    (dashes ? after_dashes : args).emplace_back(argv[i]);
  }
  std::reverse(args.begin(), args.end());   // CLI11 takes the vector in reverse order
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    app.exit(e);
    std::fprintf(stderr, "Put the command after --, e.g.: kz run -- sh -c 'echo $VAR'\n");
    return kExitConfig;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitConfig;
  }
  init_logging(g.verbosity, g.quiet);
  if (run_cmd->parsed()) {
    run.only = split_commas(only);
    run.keep_env = split_commas(keep);
    run.blind = !blind_mode.empty();
    run.blind_proxy = blind_mode == "proxy";
    run.blind_mode_given = blind_mode == "shim" || blind_mode == "proxy";
    if (!run.redirector.empty() && !run.blind) {
      std::fprintf(stderr, "--redirector is for blind mode: add --blind\n");
      return kExitConfig;
    }
    if (run.no_sensors && run.on_leak == "kill") {
      std::fprintf(stderr, "--on-leak=kill needs the sensors: drop --no-sensors\n");
      return kExitConfig;
    }
    run.command.insert(run.command.end(), after_dashes.begin(), after_dashes.end());
    return cmd_run(g, run);
  }
  if (check_cmd->parsed()) return cmd_check(g, check);
  if (trust_cmd->parsed()) return cmd_trust(g, trust);
  if (approve_cmd->parsed()) return cmd_approve(g, approve);
  if (audit_cmd->parsed()) return cmd_audit(g, audit);
  if (policy_cmd->parsed()) return cmd_policy(g, policy);
  if (server_start->parsed()) return cmd_server(g, server);
  if (mcp_cmd->parsed()) return cmd_mcp(g, mcp);
  return cmd_doctor(g);
}

}  // namespace kz
