// The process-tree sensor against real processes: children are forked held on a pipe
// (as the supervisor holds the command), registered, then released; the assertions use
// the sensor's events, waited for with generous timeouts, and nothing sleeps.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "secrets/process_tree.h"
#include "core/unique_fd.h"
#include "sensors/process_sensor.h"

namespace kz {
namespace {

constexpr std::chrono::milliseconds kWait{20000};

// A forked child that waits for release() before it execs argv; reaped by wait().
class HeldChild {
 public:
  explicit HeldChild(std::vector<std::string> argv) {
    int g[2];
    if (pipe2(g, O_CLOEXEC) != 0) return;
    UniqueFd r(g[0]), w(g[1]);
    pid_ = fork();
    if (pid_ == 0) {
      w.reset();
      char go = 0;
      if (::read(r.get(), &go, 1) != 1) _exit(126);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    gate_ = std::move(w);
  }
  ~HeldChild() {
    gate_.reset();   // a child never released ends (it reads end-of-file)
    if (pid_ > 0 && !reaped_) wait();
  }
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  pid_t pid() const { return pid_; }
  void release() {
    const char go = 1;
    ASSERT_EQ(::write(gate_.get(), &go, 1), 1);
    gate_.reset();
  }
  int wait() {
    int st = -1;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
    reaped_ = true;
    return st;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd gate_;
  bool reaped_ = false;
};

class ProcessSensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = process_sensor_unavailable_reason();
    if (why.empty()) {
      auto s = ProcessSensor::start(getpid());
      if (s) sensor_ = std::move(*s);
      else why = s.error().message;
    }
    if (!why.empty()) {
      std::cout << "SKIP: " << why << std::endl;
      GTEST_SKIP() << why;
    }
    for (const char* p : {"/bin/bash", "/usr/bin/python3", "/bin/true"})
      if (::access(p, X_OK) != 0) GTEST_SKIP() << "no " << p;
  }
  void TearDown() override {
    if (sensor_) sensor_->stop();
  }

  std::unique_ptr<ProcessSensor> sensor_;
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " > ") + x;
  return s;
}

TEST_F(ProcessSensorTest, LineageOfEveryProcessIncludingShortLivedOnes) {
  HeldChild root({"/bin/bash", "-c", "/usr/bin/python3 -c \"import os\" & /bin/true; wait"});
  ASSERT_GT(root.pid(), 0);
  ASSERT_TRUE(sensor_->add_root(root.pid()));
  EXPECT_TRUE(sensor_->contains(root.pid()));
  root.release();
  ASSERT_EQ(root.wait(), 0);
  // bash waits for both children, so their exits were sent before its own.
  ASSERT_TRUE(sensor_->wait_exited(root.pid(), kWait));
  EXPECT_FALSE(sensor_->contains(root.pid()));   // gone: its pid may be reused by anyone

  std::map<std::string, int> lineages;   // "bash > python3" -> how many processes
  std::map<std::string, SensedProcess> by_exe;
  for (const auto& p : sensor_->snapshot()) {
    EXPECT_TRUE(p.exited) << p.pid << " " << p.exe;
    lineages[joined(sensor_->lineage(p.pid))]++;
    by_exe[p.exe] = p;
  }
  const std::map<std::string, int> want{{"bash", 1}, {"bash > python3", 1}, {"bash > true", 1}};
  EXPECT_EQ(lineages, want);

  ASSERT_EQ(by_exe.count("/usr/bin/python3"), 1u);
  const SensedProcess& py = by_exe["/usr/bin/python3"];
  EXPECT_EQ(py.ppid, root.pid());
  EXPECT_EQ(py.argv, (std::vector<std::string>{"/usr/bin/python3", "-c", "import os"}));
  ASSERT_EQ(by_exe.count("/bin/true"), 1u);
  EXPECT_EQ(by_exe["/bin/true"].ppid, root.pid());
  ASSERT_EQ(by_exe.count("/bin/bash"), 1u);
  EXPECT_EQ(by_exe["/bin/bash"].ppid, getpid());
  EXPECT_EQ(by_exe["/bin/bash"].exit_status, 0);
}

TEST_F(ProcessSensorTest, ProcessesOutsideTheRunAreNotContained) {
  // Both children of this process: the /proc walk would count the sibling in (a child of
  // the launcher is, there, an adopted orphan); the sensor knows it was never forked by
  // a member.
  HeldChild root({"/bin/true"});
  HeldChild sibling({"/bin/true"});
  ASSERT_GT(root.pid(), 0);
  ASSERT_GT(sibling.pid(), 0);
  ASSERT_TRUE(sensor_->add_root(root.pid()));

  ProcessTree tree(getpid());
  tree.set_root(root.pid());
  EXPECT_TRUE(tree.contains(sibling.pid())) << "the /proc view (no sensor)";
  tree.set_sensor(sensor_.get());
  EXPECT_TRUE(tree.contains(root.pid()));
  EXPECT_FALSE(tree.contains(sibling.pid()));
  EXPECT_FALSE(tree.contains(getpid()));
  EXPECT_FALSE(sensor_->contains(getpid()));
  EXPECT_TRUE(sensor_->lineage(sibling.pid()).empty());
  EXPECT_TRUE(tree.lineage(getpid()).empty());

  root.release();
  sibling.release();
  EXPECT_EQ(root.wait(), 0);
  EXPECT_EQ(sibling.wait(), 0);
  ASSERT_TRUE(sensor_->wait_exited(root.pid(), kWait));
  EXPECT_EQ(tree.lineage(root.pid()), std::vector<std::string>{"true"});
  EXPECT_FALSE(sensor_->info(sibling.pid()).has_value());
}

}  // namespace
}  // namespace kz
