// Threads that never take a signal. kz's supervisor reads SIGCHLD and the signals it
// forwards from a signalfd, which only sees signals blocked in every thread: a thread
// with them unblocked (a provider's resolver thread still exiting, the broker) would
// take SIGCHLD itself (default action: ignore) and the run would never see its command
// exit. A new thread inherits the creating thread's mask, so the mask is set around the
// creation.
#pragma once

#include <signal.h>

#include <thread>
#include <utility>

namespace kz {

template <class F>
std::thread signal_free_thread(F&& f) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread t(std::forward<F>(f));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

}  // namespace kz
