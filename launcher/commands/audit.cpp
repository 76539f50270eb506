// kz audit verify|summary [FILE]
#include <cstdio>

#include "audit/audit_log.h"
#include "commands/commands.h"
#include "core/log.h"

namespace kz {

namespace {
void print_counts(const char* title, const std::map<std::string, std::size_t>& m) {
  if (m.empty()) return;
  std::printf("%s:\n", title);
  for (const auto& [k, n] : m) std::printf("  %-40s %zu\n", k.c_str(), n);
}
}  // namespace

int cmd_audit(const GlobalOptions&, const AuditOptions& o) {
  const std::string file = o.file.empty() ? default_audit_path() : o.file;
  if (o.action == "verify") {
    const VerifyReport r = verify_audit_file(file);
    if (!r.ok) {
      std::fprintf(stderr, "%s:%zu: %s\n", file.c_str(), r.bad_line, r.problem.c_str());
      std::printf("FAILED: the audit log does not verify\n");
      return 1;
    }
    std::printf("OK: %zu record(s), hash chain intact (%s)\n", r.records, file.c_str());
    return kExitOk;
  }
  auto s = summarize_audit_file(file);
  if (!s) { spdlog::error("{}", s.error().message); return kExitConfig; }
  std::printf("%s: %zu record(s), %zu run(s)\n", file.c_str(), s->records, s->runs);
  print_counts("events", s->by_event);
  print_counts("resolutions per secret", s->resolved);
  print_counts("uses per secret (tokens swapped)", s->by_secret);
  print_counts("uses per host", s->by_host);
  print_counts("uses per executable", s->by_exe);
  std::printf("refusals and errors: %zu\n", s->refusals.size());
  for (const auto& r : s->refusals) std::printf("  %s\n", r.c_str());
  return kExitOk;
}

}  // namespace kz
