// kz's supervisor learns that its command exited from SIGCHLD on a signalfd; a helper
// thread with SIGCHLD unblocked would take the signal instead and the run would hang.
#include "core/signal_free_thread.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace kz {
namespace {

TEST(SignalFreeThread, BlocksEverySignalInTheThreadOnly) {
  sigset_t before;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  bool chld_blocked = false, term_blocked = false;
  signal_free_thread([&] {
    sigset_t m;
    pthread_sigmask(SIG_SETMASK, nullptr, &m);
    chld_blocked = sigismember(&m, SIGCHLD) == 1;
    term_blocked = sigismember(&m, SIGTERM) == 1;
  }).join();
  EXPECT_TRUE(chld_blocked);
  EXPECT_TRUE(term_blocked);
  sigset_t after;
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1})
    EXPECT_EQ(sigismember(&after, s), sigismember(&before, s)) << "the caller's mask changed for " << s;
}

}  // namespace
}  // namespace kz
