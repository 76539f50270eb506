#include "audit/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
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

}  // namespace
}  // namespace kz
