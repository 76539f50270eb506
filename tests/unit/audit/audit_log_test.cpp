#include "audit/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <chrono>
#include <cstdio>
#include <thread>

#include "test_support.h"

namespace kz {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l)) out.push_back(l);
  return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream f(path, std::ios::trunc);
  for (const auto& l : lines) f << l << "\n";
}

TEST(AuditLog, ChainVerifiesAndCreatesPrivateFile) {
  test::TempDir d;
  const std::string path = d.file("state/keyzero/audit.jsonl");
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log.ok()) << log.error().message;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->append({{"event", "resolve"}, {"secret", "S" + std::to_string(i)}}).ok());
  }
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(d.file("state/keyzero").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 5u);
  auto lines = lines_of(path);
  EXPECT_NE(lines[0].find(kGenesisHash), std::string::npos);
  // Appending again (a second run) continues the same chain.
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log->append({{"event", "run.stop"}}).ok());
  EXPECT_TRUE(verify_audit_file(path).ok);
}

TEST(AuditLog, BatchesChainLikeSingleAppendsAndKeepTheHead) {
  test::TempDir d;
  const std::string path = d.file("audit.jsonl");
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log.ok()) << log.error().message;
  ASSERT_TRUE(log->append({{"event", "pdp.start"}}).ok());
  std::vector<nlohmann::json> batch;
  for (int i = 0; i < 50; ++i) batch.push_back({{"event", "decision"}, {"n", i}});
  std::vector<std::string> written;
  ASSERT_TRUE(log->append_batch(std::move(batch), &written).ok());
  ASSERT_EQ(written.size(), 50u);
  ASSERT_TRUE(log->append({{"event", "pdp.stop"}}).ok());
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_TRUE(r.head_checked);
  EXPECT_EQ(r.records, 52u);
  auto lines = lines_of(path);
  EXPECT_EQ(lines[1], written[0]);
  EXPECT_EQ(lines[50], written[49]);
  // Cutting the batch's last line off is seen through the head.
  lines.pop_back();
  lines.pop_back();
  write_lines(path, lines);
  EXPECT_FALSE(verify_audit_file(path).ok);
}

TEST(AuditLog, EditDeleteReorderAreDetected) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  {
    auto log = AuditLog::open(path);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(log->append({{"event", "e"}, {"n", i}}).ok());
  }
  const auto orig = lines_of(path);
  auto edited = orig;
  edited[1].replace(edited[1].find("\"n\":1"), 5, "\"n\":7");
  write_lines(path, edited);
  auto r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_line, 3u);

  auto removed = orig;
  removed.erase(removed.begin() + 1);
  write_lines(path, removed);
  EXPECT_FALSE(verify_audit_file(path).ok);

  auto swapped = orig;
  std::swap(swapped[1], swapped[2]);
  write_lines(path, swapped);
  EXPECT_FALSE(verify_audit_file(path).ok);

  auto first_gone = orig;
  first_gone.erase(first_gone.begin());
  write_lines(path, first_gone);
  r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_line, 1u);
}

TEST(AuditLog, ConcurrentProcessesKeepOneChain) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  std::vector<pid_t> kids;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      auto log = AuditLog::open(path);
      for (int i = 0; i < 50; ++i)
        if (!log->append({{"event", "e"}, {"proc", p}, {"i", i}}).ok()) _exit(1);
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = 0;
    waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 200u);
}

TEST(AuditLog, SummaryCountsAndRefusals) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log->append({{"event", "run.start"}, {"exe", "python3"}}).ok());
  ASSERT_TRUE(log->append({{"event", "resolve"}, {"secret", "A"}, {"decision", "ok"}, {"exe", "python3"}}).ok());
  ASSERT_TRUE(log->append({{"event", "resolve"}, {"secret", "B"}, {"decision", "error"}, {"reason", "404"}}).ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(log->append({{"event", "swap"}, {"secret", "A"}, {"decision", "allow"}, {"host", "api.x"},
                             {"exe", "/usr/bin/curl"}}).ok());
  ASSERT_TRUE(log->append({{"event", "swap"}, {"secret", "A"}, {"decision", "refuse"}, {"host", "evil.x"},
                           {"exe", "/usr/bin/curl"}, {"pid", 42}, {"reason", "host evil.x is not bound to A"}}).ok());
  auto s = summarize_audit_file(path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->runs, 1u);
  EXPECT_EQ(s->resolved.at("A"), 1u);
  EXPECT_EQ(s->by_secret.at("A"), 2u);          // uses: allowed swaps only
  EXPECT_EQ(s->by_host.at("api.x"), 2u);
  EXPECT_EQ(s->by_host.count("evil.x"), 0u);
  EXPECT_EQ(s->by_exe.at("/usr/bin/curl"), 2u);
  ASSERT_EQ(s->refusals.size(), 2u);
  EXPECT_NE(s->refusals[0].find("404"), std::string::npos);
  EXPECT_NE(s->refusals[1].find("host=evil.x"), std::string::npos);
  EXPECT_NE(s->refusals[1].find("pid=42"), std::string::npos);
}

TEST(AuditLog, LeaksAreCountedWithRefusals) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log->append({{"event", "leak"}, {"secret", "A"}, {"host", "evil.x"}, {"pid", 9},
                           {"reason", "value sent to an unbound host"}}).ok());
  auto s = summarize_audit_file(path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->leaks, 1u);
  ASSERT_EQ(s->refusals.size(), 1u);
  EXPECT_NE(s->refusals[0].find("leak secret=A host=evil.x"), std::string::npos);
}

TEST(AuditHead, PrivateAndMatchingTheLog) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  auto log = AuditLog::open(path);
  std::string written;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(log->append({{"event", "e"}, {"n", i}}, &written).ok());
  const auto lines = lines_of(path);
  EXPECT_EQ(written, lines.back());
  struct stat st {};
  ASSERT_EQ(stat(audit_head_path(path).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto head = nlohmann::json::parse(test::read_file(audit_head_path(path)));
  EXPECT_EQ(head["records"], 6);
  EXPECT_EQ(head["last"], sha256_hex(lines.back()));
  EXPECT_EQ(head["path"], path);
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_TRUE(r.head_checked);
  EXPECT_TRUE(r.note.empty()) << r.note;
}

TEST(AuditHead, TruncationAtTheEndIsDetected) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  {
    auto log = AuditLog::open(path);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->append({{"event", "e"}, {"n", i}}).ok());
  }
  const auto orig = lines_of(path);
  // The last two records cut off: the chain of the rest is intact, the head is not.
  write_lines(path, {orig.begin(), orig.end() - 2});
  auto r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.truncated);
  EXPECT_NE(r.problem.find("truncated: the head records 10 records ending in " + sha256_hex(orig.back()) +
                           ", the log has 8"),
            std::string::npos)
      << r.problem;
  // Everything cut off.
  write_lines(path, {});
  r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.truncated);
  // The same count with a different last line (cut off, then one new record appended
  // by something that did not update the head).
  auto replaced = orig;
  replaced.pop_back();
  nlohmann::json forged = {{"ts", "x"}, {"event", "e"}, {"prev", sha256_hex(replaced.back())}};
  replaced.push_back(forged.dump());
  write_lines(path, replaced);
  r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.truncated) << r.problem;
  // Intact again: OK.
  write_lines(path, orig);
  r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_TRUE(r.head_checked);
}

TEST(AuditHead, OlderLogsWithoutHeadVerifyWithANoteAndGetOne) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  {
    auto log = AuditLog::open(path);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(log->append({{"event", "e"}, {"n", i}}).ok());
  }
  ASSERT_EQ(unlink(audit_head_path(path).c_str()), 0);   // as written by a kz from before heads
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_FALSE(r.head_checked);
  EXPECT_NE(r.note.find("no head file"), std::string::npos) << r.note;
  // The next append counts the existing records once and writes the head.
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log->append({{"event", "e"}, {"n", 4}}).ok());
  }
  auto head = nlohmann::json::parse(test::read_file(audit_head_path(path)));
  EXPECT_EQ(head["records"], 5);
  r = verify_audit_file(path);
  EXPECT_TRUE(r.ok && r.head_checked) << r.problem;
}

TEST(AuditHead, RecordsAfterTheHeadVerifyWithANote) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  auto log = AuditLog::open(path);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append({{"event", "e"}, {"n", i}}).ok());
  const std::string head3 = test::read_file(audit_head_path(path));
  ASSERT_TRUE(log->append({{"event", "e"}, {"n", 3}}).ok());
  // A crash between the record and the head leaves the head one record behind.
  { std::ofstream(audit_head_path(path), std::ios::trunc) << head3; }
  auto r = verify_audit_file(path);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_NE(r.note.find("1 record(s) after"), std::string::npos) << r.note;
  // ...and the next append repairs the head by counting.
  ASSERT_TRUE(log->append({{"event", "e"}, {"n", 4}}).ok());
  EXPECT_EQ(nlohmann::json::parse(test::read_file(audit_head_path(path)))["records"], 5);
  // A garbled head is an error, not silently ignored.
  { std::ofstream(audit_head_path(path), std::ios::trunc) << "nonsense"; }
  r = verify_audit_file(path);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("not a head file"), std::string::npos);
}

// Appends per second with the head (the number in the README); a regression guard
// that is loose enough for a loaded CI machine.
TEST(AuditHead, AppendCost) {
  test::TempDir d;
  const std::string path = d.file("a.jsonl");
  auto log = AuditLog::open(path);
  const int n = 2000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    ASSERT_TRUE(log->append({{"event", "swap"}, {"secret", "GITHUB_TOKEN"}, {"host", "api.github.com"},
                             {"decision", "allow"}, {"pid", 1234}, {"exe", "/usr/bin/curl"}}).ok());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("appends/s with head: %.0f\n", n / s);
  EXPECT_TRUE(verify_audit_file(path).ok);
}

}  // namespace
}  // namespace kz
