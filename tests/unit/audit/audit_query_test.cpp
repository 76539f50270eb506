#include "audit/audit_query.h"

#include <gtest/gtest.h>

#include "audit/audit_log.h"
#include "test_support.h"

namespace kz {
namespace {

using namespace std::chrono_literals;

AuditTime at(const char* s) { return *parse_rfc3339(s); }

TEST(AuditTime, Rfc3339Forms) {
  const auto base = at("2026-11-26T03:00:00Z");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(base), 1795662000);
  EXPECT_EQ(at("2026-11-26T03:00:00.250Z") - base, 250ms);
  EXPECT_EQ(at("2026-11-26T04:30:00+01:30"), base);
  EXPECT_EQ(at("2026-11-26T01:00:00-02:00"), base);
  EXPECT_EQ(at("2026-11-26t03:00:00z"), base);
  // Beyond what system_clock holds (2262): clamped, not wrapped into the past.
  EXPECT_EQ(at("2999-01-01T00:00:00Z"), AuditTime::max());
  EXPECT_GT(at("2999-01-01T00:00:00Z"), base);
  for (const char* bad : {"2026-11-26T03:00:00", "2026-11-26", "2026-13-01T00:00:00Z", "2026-02-31T00:00:00Z",
                          "2026-11-26T03:00:00.Z", "2026-11-26T03:00:00Zx", "yesterday", ""})
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

TEST(AuditTime, RelativeAndErrors) {
  const auto now = at("2026-11-26T03:00:00Z");
  EXPECT_EQ(*parse_audit_time("15m", now), now - 15min);
  EXPECT_EQ(*parse_audit_time("2h", now), now - 2h);
  EXPECT_EQ(*parse_audit_time("1d", now), now - 24h);
  EXPECT_EQ(*parse_audit_time("30s", now), now - 30s);
  EXPECT_EQ(*parse_audit_time("1w", now), now - 168h);
  EXPECT_EQ(*parse_audit_time("2026-11-25T03:00:00Z", now), now - 24h);
  for (const char* bad : {"m", "15", "-5m", "15x", "1.5h", "h2", "15 m"}) {
    auto r = parse_audit_time(bad, now);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("RFC 3339"), std::string::npos);
  }
}

nlohmann::json rec(const char* ts, const char* event, const char* secret, const char* host, long pid) {
  return {{"ts", ts}, {"event", event}, {"decision", "allow"}, {"secret", secret},
          {"host", host}, {"pid", pid}, {"run", "r1"}, {"exe", "/usr/bin/curl"}};
}

TEST(AuditQueryFilter, EveryGivenFilterMustMatch) {
  const auto r = rec("2026-11-26T03:00:00.000Z", "swap", "GH", "api.github.com", 42);
  EXPECT_TRUE(audit_record_matches(r, {}));
  AuditQuery q;
  q.secret = "GH";
  EXPECT_TRUE(audit_record_matches(r, q));
  q.host = "API.GitHub.com";   // host names compare case-insensitively
  EXPECT_TRUE(audit_record_matches(r, q));
  q.pid = 42;
  q.event = "swap";
  q.decision = "allow";
  q.run = "r1";
  EXPECT_TRUE(audit_record_matches(r, q));
  for (int i = 0; i < 6; ++i) {
    AuditQuery w = q;
    switch (i) {
      case 0: w.secret = "gh"; break;   // secret names are exact
      case 1: w.host = "github.com"; break;
      case 2: w.pid = 43; break;
      case 3: w.event = "resolve"; break;
      case 4: w.decision = "refuse"; break;
      case 5: w.run = "r2"; break;
    }
    EXPECT_FALSE(audit_record_matches(r, w)) << i;
  }
  // A filter on a field the record lacks does not match.
  AuditQuery h;
  h.host = "x";
  EXPECT_FALSE(audit_record_matches(nlohmann::json{{"event", "run.start"}}, h));
  EXPECT_FALSE(audit_record_matches(nlohmann::json::array(), {}));
}

TEST(AuditQueryFilter, TimeWindowIsInclusive) {
  const auto r = rec("2026-11-26T03:00:00.000Z", "swap", "GH", "h", 1);
  AuditQuery q;
  q.since = at("2026-11-26T03:00:00Z");
  q.until = at("2026-11-26T03:00:00Z");
  EXPECT_TRUE(audit_record_matches(r, q));
  q.since = at("2026-11-26T03:00:00.001Z");
  EXPECT_FALSE(audit_record_matches(r, q));
  q.since.reset();
  q.until = at("2026-11-26T02:59:59Z");
  EXPECT_FALSE(audit_record_matches(r, q));
  // No readable ts: outside every window, but matched when no window is asked for.
  auto bad = r;
  bad["ts"] = "soon";
  EXPECT_FALSE(audit_record_matches(bad, q));
  EXPECT_TRUE(audit_record_matches(bad, {}));
}

TEST(AuditQueryFormat, OneReadableLine) {
  auto r = rec("2026-11-26T03:00:00.000Z", "leak", "GH", "evil.example", 7);
  r["decision"] = "refuse";
  r["reason"] = "host not bound";
  r["lineage"] = {"bash", "python3", "curl"};
  EXPECT_EQ(format_audit_record(r),
            "2026-11-26T03:00:00.000Z leak refuse secret=GH host=evil.example exe=/usr/bin/curl pid=7 "
            "lineage=bash \xE2\x86\x92 python3 \xE2\x86\x92 curl: host not bound");
  nlohmann::json minimal = {{"ts", "t"}, {"event", "run.start"}};
  EXPECT_EQ(format_audit_record(minimal), "t run.start");
}

TEST(AuditQueryFile, MatchesLinesOfARealLog) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log->append({{"event", "resolve"}, {"secret", "A"}, {"decision", "ok"}}).ok());
    ASSERT_TRUE(log->append({{"event", "swap"}, {"secret", "A"}, {"host", "h1"}, {"decision", "allow"}}).ok());
    ASSERT_TRUE(log->append({{"event", "swap"}, {"secret", "B"}, {"host", "h2"}, {"decision", "refuse"}}).ok());
  }
  AuditQuery q;
  q.event = "swap";
  std::vector<std::string> lines;
  auto n = query_audit_file(path, q, [&](const std::string& l, const nlohmann::json&) { lines.push_back(l); });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("\"h1\""), std::string::npos);
  q.since = std::chrono::system_clock::now() - 1h;
  q.secret = "B";
  EXPECT_EQ(*query_audit_file(path, q, [](const std::string&, const nlohmann::json&) {}), 1u);
  EXPECT_FALSE(query_audit_file(d.file("missing"), q, [](const std::string&, const nlohmann::json&) {}).ok());
}

}  // namespace
}  // namespace kz
