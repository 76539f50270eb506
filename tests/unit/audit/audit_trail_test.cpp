// The one audit writer: a run's records carry its id and the launcher's pid, a session
// ends in the log exactly once, concurrent writers keep one chain, the batched writer
// loses nothing, and a sink's shortfall is recorded in the file.
#include "audit/audit_trail.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "core/json_dump.h"
#include "test_support.h"

namespace kz {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::vector<json> lines_of(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string l;
  while (std::getline(f, l)) out.push_back(json::parse(l));
  return out;
}

AuditTrailOptions options(const std::string& path, bool per_run, bool batched) {
  AuditTrailOptions o;
  o.path = path;
  o.per_run = per_run;
  o.batched = batched;
  return o;
}

TEST(AuditTrail, ARunsRecordsCarryItsIdAndThePidOfWhoeverActed) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  auto t = AuditTrail::open(options(path, true, false));
  ASSERT_TRUE(t.ok()) << t.error().message;
  AuditTrail& trail = **t;
  EXPECT_EQ(trail.run_id().size(), 16u);
  trail.begin(RunStart{"standard", "curl", "/p/.keyzero.toml"}, RunStop{"error", "not started", std::nullopt});
  trail.record(BrokerRefusal{4242, "/bin/sh", "process is not part of this run"});
  trail.end(RunStop{std::nullopt, std::nullopt, 0});
  trail.end(RunStop{"error", "twice", 1});   // ignored: a run ends once
  trail.close();

  const auto r = lines_of(path);
  ASSERT_EQ(r.size(), 3u);
  for (const auto& j : r) {
    EXPECT_EQ(j["run"], trail.run_id());
    EXPECT_TRUE(j.contains("ts") && j.contains("prev"));
  }
  EXPECT_EQ(r[0]["event"], "run.start");
  EXPECT_EQ(r[0]["pid"], static_cast<long>(getpid()));
  EXPECT_EQ(r[1]["pid"], 4242);   // the event's own process, not the launcher
  EXPECT_EQ(r[2]["event"], "run.stop");
  EXPECT_EQ(r[2]["exit"], 0);
  EXPECT_FALSE(r[2].contains("decision"));
  EXPECT_TRUE(verify_audit_file(path).ok);
}

TEST(AuditTrail, ASessionThatNeverEndedIsClosedWithItsUnfinishedRecord) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  {
    auto t = AuditTrail::open(options(path, true, false));
    ASSERT_TRUE(t.ok());
    (*t)->begin(RunStart{"blind", "curl", "c"}, RunStop{"error", "not started", std::nullopt});
  }   // the destructor closes
  const auto r = lines_of(path);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1]["event"], "run.stop");
  EXPECT_EQ(r[1]["reason"], "not started");
  EXPECT_FALSE(r[1].contains("exit"));
}

TEST(AuditTrail, ConcurrentWritersKeepOneChain) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  for (bool batched : {false, true}) {
    auto t = AuditTrail::open(options(path, false, batched));
    ASSERT_TRUE(t.ok());
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k)
      threads.emplace_back([&, k] {
        for (int i = 0; i < 200; ++i) (*t)->record(ProgramRouted{k, "/bin/x", "proxy", std::to_string(i)});
      });
    for (auto& th : threads) th.join();
    (*t)->close();
  }
  const auto r = lines_of(path);
  EXPECT_EQ(r.size(), 1600u);
  // Not a run: no run id, and no pid the event did not give.
  for (const auto& j : r) EXPECT_FALSE(j.contains("run"));
  const VerifyReport v = verify_audit_file(path);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 1600u);
}

TEST(AuditTrail, BatchedWriterWaitsInsteadOfDropping) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  AuditTrailOptions o = options(path, false, true);
  o.max_queue = 2;   // record() must wait for the writer most of the time
  auto t = AuditTrail::open(std::move(o));
  ASSERT_TRUE(t.ok());
  (*t)->begin(PdpStart{"http://127.0.0.1:1", "/b.yaml", "rev"});
  for (int i = 0; i < 500; ++i) (*t)->record(PdpAuthRefusal{"decide", "127.0.0.1", "rev", std::to_string(i)});
  (*t)->end(PdpStop{});
  (*t)->close();
  (*t)->record(PdpStop{});   // after close: written at once, not lost
  const auto r = lines_of(path);
  ASSERT_EQ(r.size(), 503u);
  EXPECT_EQ(r.front()["event"], "pdp.start");
  for (int i = 0; i < 500; ++i) EXPECT_EQ(r[1 + i]["reason"], std::to_string(i));   // in order
  EXPECT_EQ(r[501]["event"], "pdp.stop");
  EXPECT_TRUE(verify_audit_file(path).ok);
}

// The PDP's decision records are written already serialised (no json tree): each line
// must be the bytes the tree form gives (keys in nlohmann's order, ts/prev spliced in
// their places, run/pid/replica stamped), and the chain must verify.
TEST(AuditTrail, SerialisedDecisionRecordsAreTheBytesOfTheTreeForm) {
  const json input = {{"identity", {{"sub", "alice"}, {"aud", "keyzero"}, {"exp", 1800000000.5}, {"name", "Zo\u00eb \"q\""}}},
                      {"secrets", json::array({{{"name", "DB"}, {"provider", "vault"}, {"ref", "secret/a#b"}}})},
                      {"request", {{"time", 1800000000}, {"source", "127.0.0.1"}, {"host", "h\n"}}}};
  const json result = json::array({{{"allow", false}, {"name", "DB"}, {"reason", "no rule \\ matched"}}});
  for (const bool per_run : {false, true}) {
    for (const std::string replica : {"", "replica-\u00e9"}) {
      test::TempDir d;
      std::vector<std::string> texts[2];
      for (const bool serialised : {false, true}) {
        const std::string path = d.file(serialised ? "s.jsonl" : "t.jsonl");
        auto o = options(path, per_run, true);
        o.replica = replica;
        auto t = AuditTrail::open(o);
        ASSERT_TRUE(t.ok()) << t.error().message;
        for (int i = 0; i < 3; ++i) {
          PdpDecision e{"deny", "id-" + std::to_string(i), "decide", "rev", "127.0.0.1", "al\"ice", {}, {}};
          if (serialised) {
            e.input_json = dump_json(input);
            e.result_json = dump_json(result);
          } else {
            e.input = input;
            e.result = result;
          }
          (*t)->record(std::move(e));
        }
        (*t)->close();
        EXPECT_TRUE(verify_audit_file(path).ok) << path;
        std::ifstream f(path);
        for (std::string l; std::getline(f, l);) texts[serialised].push_back(l);
      }
      ASSERT_EQ(texts[0].size(), 3u);
      ASSERT_EQ(texts[1].size(), 3u);
      for (std::size_t i = 0; i < 3; ++i) {
        const std::string& line = texts[1][i];
        // nlohmann's own form of the line is the line itself: key order and escapes agree.
        EXPECT_EQ(dump_json(json::parse(line)), line);
        // The same record as the tree form, apart from when and what it chains to (and
        // the per-run id, which differs per trail).
        json a = json::parse(texts[0][i]), b = json::parse(line);
        for (auto* j : {&a, &b}) {
          j->erase("ts");
          j->erase("prev");
          if (per_run) {
            EXPECT_TRUE(j->contains("run"));
            j->erase("run");
          }
        }
        EXPECT_EQ(a, b) << line;
        EXPECT_EQ(b.contains("pid"), per_run);
        EXPECT_EQ(b.contains("replica"), !replica.empty());
      }
    }
  }
}

TEST(AuditTrail, TheLogThatCannotBeOpenedSaysHowToChooseAnother) {
  test::TempDir d;
  const std::string file = d.file("f");
  { std::ofstream(file) << "x"; }
  AuditTrailOptions o = options(file + "/audit.jsonl", true, false);   // under a file: cannot be created
  o.open_hint = " (use --audit-log FILE)";
  auto t = AuditTrail::open(std::move(o));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("(use --audit-log FILE)"), std::string::npos) << t.error().message;
}

// A collector whose certificate is not trusted gets nothing: the file has every record,
// and the shortfall is recorded in it at the end (with the run id, without a pid).
TEST(AuditTrail, ASinksShortfallIsRecordedInTheFile) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  auto args = test::tls_args();
  args.push_back("--record");
  args.push_back(d.file("requests.jsonl"));
  test::ServerProcess srv("siem_server.py", args);
  AuditTrailOptions o = options(path, true, false);
  o.sinks.http_url = srv.url("https");
  o.sinks.http_flush = 10ms;
  o.sink_tuning.attempts = 1;
  o.sink_tuning.backoff = 1ms;
  auto t = AuditTrail::open(std::move(o));
  ASSERT_TRUE(t.ok()) << t.error().message;
  (*t)->begin(RunStart{"standard", "true", "c"});
  (*t)->end(RunStop{std::nullopt, std::nullopt, 0});
  (*t)->close();
  const auto r = lines_of(path);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[2]["event"], "audit.sink");
  EXPECT_EQ(r[2]["sink"], "http");
  EXPECT_EQ(r[2]["dropped"], 2);
  EXPECT_EQ(r[2]["run"], (*t)->run_id());
  EXPECT_FALSE(r[2].contains("pid"));
  EXPECT_TRUE(verify_audit_file(path).ok);
}

}  // namespace
}  // namespace kz
