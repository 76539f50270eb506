#include "audit/audit_sinks.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "audit/audit_log.h"
#include "test_support.h"

namespace kz {
namespace {

using namespace std::chrono_literals;

std::vector<nlohmann::json> requests(const std::string& record_file) {
  std::vector<nlohmann::json> out;
  std::ifstream f(record_file);
  std::string l;
  while (std::getline(f, l)) out.push_back(nlohmann::json::parse(l));
  return out;
}

std::size_t count_lines(const std::string& path) {
  std::ifstream f(path);
  std::size_t n = 0;
  std::string l;
  while (std::getline(f, l)) ++n;
  return n;
}

AuditSinkTuning fast() {
  AuditSinkTuning t;
  t.request_timeout = 2000ms;
  t.attempts = 2;
  t.backoff = 10ms;
  return t;
}

TEST(AuditSinks, NoneConfiguredIsANoOp) {
  auto s = AuditSinks::start(AuditConfig{});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->empty());
  (*s)->submit("{}");
  EXPECT_TRUE((*s)->finish().empty());
}

TEST(AuditSinks, HttpBatchesArriveWithTheTokenFromTheEnvironment) {
  test::TempDir d;
  const std::string rec = d.file("requests.jsonl");
  test::ServerProcess srv("siem_server.py", {"--record", rec});
  ASSERT_EQ(setenv("KZ_TEST_SIEM_TOKEN", "siem-token-4711", 1), 0);
  AuditConfig cfg;
  cfg.http_url = srv.url("http") + "/ingest";
  cfg.http_token_env = "KZ_TEST_SIEM_TOKEN";
  cfg.http_batch = 10;
  cfg.http_flush = 20ms;
  auto s = AuditSinks::start(cfg, fast());
  unsetenv("KZ_TEST_SIEM_TOKEN");
  ASSERT_TRUE(s.ok()) << s.error().message;
  // Through a real log, as run.cpp does: the sink gets the exact lines of the file.
  const std::string path = d.file("audit.jsonl");
  auto log = AuditLog::open(path);
  for (int i = 0; i < 25; ++i) {
    std::string line;
    ASSERT_TRUE(log->append({{"event", "swap"}, {"n", i}}, &line).ok());
    (*s)->submit(line);
  }
  auto stats = (*s)->finish(5000ms);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].sink, "http");
  EXPECT_EQ(stats[0].delivered, 25u);
  EXPECT_EQ(stats[0].lost(), 0u);
  std::vector<std::string> got;
  for (const auto& r : requests(rec)) {
    EXPECT_EQ(r["path"], "/ingest");
    EXPECT_EQ(r["authorization"], "Bearer siem-token-4711");
    EXPECT_EQ(r["content_type"], "application/json");
    ASSERT_TRUE(r["records"].is_array());
    EXPECT_LE(r["records"].size(), 10u);
    for (const auto& x : r["records"]) got.push_back(x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  std::ifstream f(path);
  std::vector<std::string> file_lines;
  for (std::string l; std::getline(f, l);) file_lines.push_back(nlohmann::json::parse(l).dump());
  std::vector<std::string> got_norm;
  for (const auto& g : got) got_norm.push_back(nlohmann::json::parse(g).dump());
  EXPECT_EQ(got_norm, file_lines);   // same records, same order
}

TEST(AuditSinks, HttpsWithTheConfiguredCa) {
  test::TempDir d;
  const std::string rec = d.file("requests.jsonl");
  auto args = test::tls_args();
  args.push_back("--record");
  args.push_back(rec);
  test::ServerProcess srv("siem_server.py", args);
  AuditConfig cfg;
  cfg.http_url = srv.url("https");
  cfg.http_ca_file = test::test_ca().ca;
  cfg.http_flush = 10ms;
  auto s = AuditSinks::start(cfg, fast());
  ASSERT_TRUE(s.ok());
  (*s)->submit(R"({"event":"run.start"})");
  auto stats = (*s)->finish(5000ms);
  EXPECT_EQ(stats[0].delivered, 1u);
  auto r = requests(rec);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["records"][0]["event"], "run.start");
  EXPECT_TRUE(r[0]["authorization"].is_null());
}

TEST(AuditSinks, UntrustedCollectorGetsNothingAndTheLossIsCounted) {
  test::TempDir d;
  const std::string rec = d.file("requests.jsonl");
  auto args = test::tls_args();
  args.push_back("--record");
  args.push_back(rec);
  test::ServerProcess srv("siem_server.py", args);
  AuditConfig cfg;
  cfg.http_url = srv.url("https");   // no http_ca_file: the test CA is not trusted
  cfg.http_flush = 10ms;
  auto s = AuditSinks::start(cfg, fast());
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 3; ++i) (*s)->submit(R"({"event":"e"})");
  auto stats = (*s)->finish(3000ms);
  EXPECT_EQ(stats[0].delivered, 0u);
  EXPECT_EQ(stats[0].lost(), 3u);
  EXPECT_TRUE(requests(rec).empty());
}

// A collector that stops answering: the file still gets every record, the writer never
// waits for the sink (it finishes all appends while the sink is stuck on its first
// request), and the records the sink lost are counted.
TEST(AuditSinks, StalledCollectorNeverHoldsUpTheFile) {
  test::TempDir d;
  const std::string rec = d.file("requests.jsonl");
  test::ServerProcess srv("siem_server.py", {"--record", rec, "--stall"});
  AuditConfig cfg;
  cfg.http_url = srv.url("http");
  cfg.http_batch = 10;
  cfg.http_flush = 1ms;
  cfg.queue_max = 50;
  AuditSinkTuning t;
  t.request_timeout = 60000ms;   // the request hangs for the whole test
  t.attempts = 1;
  auto s = AuditSinks::start(cfg, t);
  ASSERT_TRUE(s.ok());
  const std::string path = d.file("audit.jsonl");
  auto log = AuditLog::open(path);
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    std::string line;
    ASSERT_TRUE(log->append({{"event", "swap"}, {"n", i}}, &line).ok());
    (*s)->submit(line);
  }
  // All appends done while the collector has seen at most its first (unanswered) request.
  EXPECT_EQ(count_lines(path), static_cast<std::size_t>(n));
  EXPECT_LE(requests(rec).size(), 1u);
  EXPECT_TRUE(verify_audit_file(path).ok);
  auto stats = (*s)->finish(200ms);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].delivered, 0u);
  EXPECT_EQ(stats[0].lost(), static_cast<std::size_t>(n));
  // The queue holds at most 50, a batch of at most 10 is in flight: the rest was dropped.
  EXPECT_GE(stats[0].dropped_full, static_cast<std::size_t>(n - 50 - 10));
}

TEST(AuditSinks, DropsAreReportedToTheSinkOnceItRecovers) {
  test::TempDir d;
  const std::string rec = d.file("requests.jsonl");
  test::ServerProcess srv("siem_server.py", {"--record", rec});
  AuditConfig cfg;
  cfg.http_url = srv.url("http");
  cfg.http_batch = 5;
  cfg.http_flush = 10000ms;   // nothing is sent before the queue holds a batch
  cfg.queue_max = 5;
  auto s = AuditSinks::start(cfg, fast());
  ASSERT_TRUE(s.ok());
  // Submitted faster than one request takes: the queue (5) fills and the rest is
  // dropped from the sink. Exactly how many depends on timing; the counts must agree.
  for (int i = 0; i < 200; ++i) (*s)->submit(nlohmann::json{{"event", "e"}, {"n", i}}.dump());
  auto stats = (*s)->finish(5000ms);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].delivered + stats[0].lost(), 200u);
  ASSERT_GT(stats[0].dropped_full, 0u);
  std::size_t noted = 0, records = 0;
  for (const auto& r : requests(rec))
    for (const auto& x : r["records"]) {
      if (x["event"] == "audit.sink.dropped") noted += x["dropped"].get<std::size_t>();
      else ++records;
    }
  EXPECT_EQ(records, stats[0].delivered);
  // Every drop before the last delivered batch was announced to the collector.
  EXPECT_GT(noted, 0u);
  EXPECT_LE(noted, stats[0].dropped_full);
}

TEST(AuditSinks, MissingTokenVariableIsAConfigErrorWithoutValues) {
  AuditConfig cfg;
  cfg.http_url = "https://siem.example/ingest";
  cfg.http_token_env = "KZ_TEST_UNSET_TOKEN_VAR";
  unsetenv("KZ_TEST_UNSET_TOKEN_VAR");
  auto s = AuditSinks::start(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("KZ_TEST_UNSET_TOKEN_VAR is not set"), std::string::npos) << s.error().message;
}

TEST(AuditSinks, SyslogCanBeEnabled) {
  AuditConfig cfg;
  cfg.syslog = true;
  auto s = AuditSinks::start(cfg);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 3; ++i) (*s)->submit(R"({"event":"kz.audit_sinks_test"})");
  auto stats = (*s)->finish(2000ms);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].sink, "syslog");
  EXPECT_EQ(stats[0].delivered, 3u);   // handed to syslog(3); reading it back is not reliable here
}

}  // namespace
}  // namespace kz
