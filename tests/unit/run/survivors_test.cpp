// The end of a run: descendants of kz still alive are found, sent SIGTERM, and those
// that ignore it SIGKILLed after the grace period; with keep, only listed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "run/survivors.h"

namespace kz {
namespace {

// Starts a daemon-like grandchild (its parent exits, so it is re-parented to us as
// subreaper); it ignores SIGTERM when `stubborn`. Returns its pid once it is running.
pid_t start_orphan(bool stubborn) {
  int p[2];
  if (pipe(p) != 0) return -1;
  const pid_t child = fork();
  if (child == 0) {
    if (fork() == 0) {
      if (stubborn) signal(SIGTERM, SIG_IGN);
      const pid_t me = getpid();
      if (write(p[1], &me, sizeof me) != sizeof me) _exit(1);
      for (;;) pause();
    }
    _exit(0);
  }
  close(p[1]);
  pid_t orphan = -1;
  if (read(p[0], &orphan, sizeof orphan) != sizeof orphan) orphan = -1;
  close(p[0]);
  waitpid(child, nullptr, 0);
  return orphan;
}

bool alive(pid_t pid) { return kill(pid, 0) == 0 && waitpid(pid, nullptr, WNOHANG) == 0; }

struct Survivors : ::testing::Test {
  void SetUp() override { ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  void TearDown() override { prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

TEST_F(Survivors, TermThenKillAfterTheGracePeriod) {
  const pid_t polite = start_orphan(false), stubborn = start_orphan(true);
  ASSERT_GT(polite, 0);
  ASSERT_GT(stubborn, 0);
  EndOptions o;
  o.grace = std::chrono::milliseconds(300);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Survivor> s = end_survivors(getpid(), o);
  const auto took = std::chrono::steady_clock::now() - t0;
  std::string fate_polite, fate_stubborn;
  for (const auto& x : s) {
    if (x.pid == polite) fate_polite = x.fate;
    if (x.pid == stubborn) fate_stubborn = x.fate;
  }
  EXPECT_EQ(fate_polite, "terminated");
  EXPECT_EQ(fate_stubborn, "killed");
  EXPECT_GE(took, std::chrono::milliseconds(300)) << "SIGKILL before the grace period ended";
  EXPECT_FALSE(alive(polite));
  EXPECT_FALSE(alive(stubborn));
  EXPECT_TRUE(find_descendants(getpid()).empty());
}

TEST_F(Survivors, KeepOnlyLists) {
  const pid_t orphan = start_orphan(false);
  ASSERT_GT(orphan, 0);
  EndOptions o;
  o.keep = true;
  const std::vector<Survivor> s = end_survivors(getpid(), o);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].pid, orphan);
  EXPECT_EQ(s[0].fate, "kept");
  EXPECT_NE(describe(s[0]).find("(kept)"), std::string::npos);
  EXPECT_TRUE(alive(orphan));
  kill(orphan, SIGKILL);
  waitpid(orphan, nullptr, 0);
}

}  // namespace
}  // namespace kz
