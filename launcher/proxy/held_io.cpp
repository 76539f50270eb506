#include "proxy/held_io.h"

#include <chrono>
#include <exception>
#include <system_error>

#include <spdlog/spdlog.h>

#include "core/signal_free_thread.h"

namespace kz {

namespace {

// How often a stand-in looks whether its wait is over, when it has nothing to run.
constexpr auto kStandInCheck = std::chrono::milliseconds(20);

}  // namespace

void HeldIo::serve_while(boost::asio::io_context& io, const std::function<void()>& wait) {
  // Stopping (no work left, the final drain of TlsProxy::stop()): nothing to serve; the
  // gate has stopped, so the wait ends at once.
  if (io.stopped()) return wait();
  std::shared_ptr<std::atomic<bool>> done;
  bool started = false;
  {
    std::lock_guard lock(mu_);
    // Stand-ins whose loop has ended are joined here, off any hot path.
    for (auto it = stand_ins_.begin(); it != stand_ins_.end();) {
      if (it->ended->load()) {
        it->thread.join();
        it = stand_ins_.erase(it);
      } else {
        ++it;
      }
    }
    StandIn me;
    done = me.done;
    try {
      me.thread = signal_free_thread([&io, done, ended = me.ended] {
        while (!done->load()) {
          try {
            // An io_context with no work left (the proxy is stopping) returns at once:
            // then only the end of the wait is waited for.
            if (io.run_one_for(kStandInCheck) == 0 && io.stopped()) done->wait(false);
          } catch (const std::exception& e) {
            spdlog::debug("proxy: handler failed: {}", e.what());
          }
        }
        ended->store(true);
      });
      stand_ins_.push_back(std::move(me));
      started = true;
    } catch (const std::system_error& e) {
      // No thread (the user's limit, which the agent shares): this connection's thread
      // waits alone, and its other connections wait with it.
      spdlog::warn("proxy: no stand-in thread while a request waits for an approval ({}): the connections of that "
                   "I/O thread wait too", e.what());
    }
  }
  if (!started) return wait();
  struct End {
    std::shared_ptr<std::atomic<bool>> done;
    ~End() {
      done->store(true);
      done->notify_all();
    }
  } end{done};
  wait();
}

void HeldIo::join_all() {
  std::list<StandIn> all;
  {
    std::lock_guard lock(mu_);
    all.swap(stand_ins_);
  }
  for (StandIn& s : all)
    if (s.thread.joinable()) s.thread.join();
}

}  // namespace kz
