// A proxy connection whose request waits for a person's approval (approve = ...) waits
// on its own I/O thread, inside a handler: the request, the HTTP/2 engine and the swap
// client's state stay exactly where the write left them, and the answer continues the
// same call. The other connections of that thread must not wait with it: while the
// handler is held, a stand-in thread runs the same io_context (every connection is on
// its own strand, so a second thread never runs two handlers of one connection at once).
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>

namespace kz {

class HeldIo {
 public:
  HeldIo() = default;
  ~HeldIo() { join_all(); }
  HeldIo(const HeldIo&) = delete;
  HeldIo& operator=(const HeldIo&) = delete;

  // Runs `wait` on this thread while a stand-in serves `io`; the stand-in stops after
  // its current handler once `wait` returns.
  void serve_while(boost::asio::io_context& io, const std::function<void()>& wait);
  // Joins every stand-in (each ends once its own wait is over). After the io threads.
  void join_all();

 private:
  struct StandIn {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<std::atomic<bool>> ended = std::make_shared<std::atomic<bool>>(false);
  };
  std::mutex mu_;
  std::list<StandIn> stand_ins_;
};

}  // namespace kz
