// kz audit verify|summary|query [FILE], kz audit schema
#include <charconv>
#include <cstdio>

#include "audit/audit_log.h"
#include "audit/audit_query.h"
#include "audit/audit_schema.h"
#include "commands/commands.h"
#include "core/log.h"

namespace kz {

namespace {
void print_counts(const char* title, const std::map<std::string, std::size_t>& m) {
  if (m.empty()) return;
  std::printf("%s:\n", title);
  for (const auto& [k, n] : m) std::printf("  %-40s %zu\n", k.c_str(), n);
}

Result<AuditQuery> query_from(const AuditOptions& o) {
  AuditQuery q;
  auto opt = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional<std::string>(s); };
  q.secret = opt(o.secret);
  q.host = opt(o.host);
  q.event = opt(o.event);
  q.decision = opt(o.decision);
  q.run = opt(o.run);
  const auto now = std::chrono::system_clock::now();
  if (!o.since.empty()) {
    auto t = parse_audit_time(o.since, now);
    if (!t) return make_error(ErrorKind::Usage, "--since: " + t.error().message);
    q.since = *t;
  }
  if (!o.until.empty()) {
    auto t = parse_audit_time(o.until, now);
    if (!t) return make_error(ErrorKind::Usage, "--until: " + t.error().message);
    q.until = *t;
  }
  if (!o.pid.empty()) {
    long p = 0;
    auto [ptr, ec] = std::from_chars(o.pid.data(), o.pid.data() + o.pid.size(), p);
    if (ec != std::errc() || ptr != o.pid.data() + o.pid.size() || p <= 0)
      return make_error(ErrorKind::Usage, "--pid: \"" + o.pid + "\" is not a process id");
    q.pid = p;
  }
  return q;
}
}  // namespace

int cmd_audit(const GlobalOptions&, const AuditOptions& o) {
  if (o.action == "schema") {
    std::fputs(audit_schema_markdown().c_str(), stdout);
    return kExitOk;
  }
  const std::string file = o.file.empty() ? default_audit_path() : o.file;
  if (o.action == "verify") {
    const VerifyReport r = verify_audit_file(file);
    if (!r.ok) {
      if (r.bad_line > 0) std::fprintf(stderr, "%s:%zu: %s\n", file.c_str(), r.bad_line, r.problem.c_str());
      else std::fprintf(stderr, "%s: %s\n", file.c_str(), r.problem.c_str());
      std::printf("FAILED: the audit log does not verify\n");
      return 1;
    }
    std::printf("OK: %zu record(s), hash chain intact%s (%s)\n", r.records,
                r.head_checked ? ", matches its head" : "", file.c_str());
    if (!r.note.empty()) std::printf("note: %s\n", r.note.c_str());
    return kExitOk;
  }
  if (o.action == "query") {
    auto q = query_from(o);
    if (!q) { spdlog::error("{}", q.error().message); return kExitConfig; }
    auto n = query_audit_file(file, *q, [&](const std::string& line, const nlohmann::json& j) {
      if (o.json) std::printf("%s\n", line.c_str());
      else std::printf("%s\n", format_audit_record(j).c_str());
    });
    if (!n) { spdlog::error("{}", n.error().message); return kExitConfig; }
    if (!o.json) std::fprintf(stderr, "%zu record(s) matched\n", *n);
    return kExitOk;
  }
  auto s = summarize_audit_file(file);
  if (!s) { spdlog::error("{}", s.error().message); return kExitConfig; }
  std::printf("%s: %zu record(s), %zu run(s)\n", file.c_str(), s->records, s->runs);
  print_counts("events", s->by_event);
  print_counts("resolutions per secret", s->resolved);
  print_counts("uses per secret (tokens swapped, requests signed, MCP fetches)", s->by_secret);
  print_counts("requests signed per secret (AWS SigV4)", s->signed_by_secret);
  print_counts("uses per host", s->by_host);
  print_counts("uses per executable", s->by_exe);
  print_counts("rotations per secret (new values taken)", s->rotated);
  print_counts("failed or expired refreshes per secret", s->rotate_failed);
  if (s->restarts > 0) std::printf("restarts for changed values (--restart-on-change): %zu\n", s->restarts);
  std::printf("refusals, leaks and errors: %zu (leaks: %zu, exfiltration attempts seen by the TLS tap: %zu)\n",
              s->refusals.size(), s->leaks, s->exfil);
  for (const auto& r : s->refusals) std::printf("  %s\n", r.c_str());
  if (!s->config_changes.empty()) {
    std::printf("configs that changed between runs: %zu (check the bindings: an agent can edit its project's "
                "config; kz trust shows what changed since you trusted it)\n", s->config_changes.size());
    for (const auto& c : s->config_changes) std::printf("  %s\n", c.c_str());
  }
  return kExitOk;
}

}  // namespace kz
