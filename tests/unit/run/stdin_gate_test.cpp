// The prompt's gate over the terminal (run/stdin_gate.h): the supervisor's reads and
// writes of the terminal run only while no prompt holds it, and hold() does not return
// while one of them is under way (else an answer typed right after the prompt showed
// could be forwarded to the command, or the command's output written under the prompt).
#include "run/stdin_gate.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <thread>

namespace kz {
namespace {

TEST(StdinGate, BlocksRunOnlyWhileReleased) {
  StdinGate gate;
  int ran = 0;
  EXPECT_TRUE(gate.unless_held([&] { ++ran; }));
  gate.hold();
  EXPECT_TRUE(gate.held());
  EXPECT_FALSE(gate.unless_held([&] { ++ran; }));
  gate.release();
  EXPECT_TRUE(gate.unless_held([&] { ++ran; }));
  EXPECT_EQ(ran, 2);
}

TEST(StdinGate, EachChangeWakesThePoller) {
  StdinGate gate;
  pollfd p{gate.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  gate.hold();
  EXPECT_EQ(::poll(&p, 1, 0), 1);
  gate.drain();
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  gate.release();
  EXPECT_EQ(::poll(&p, 1, 0), 1);
}

TEST(StdinGate, HoldWaitsForTheBlockUnderWay) {
  StdinGate gate;
  std::atomic<bool> inside{false}, calling{false}, hold_returned{false};
  bool held_seen_inside = false, returned_seen_inside = false;
  std::thread supervisor([&] {
    gate.unless_held([&] {
      inside = true;
      while (!calling.load()) {}
      // The prompt thread is in hold() now: it must wait for this block to end.
      for (int i = 0; i < 200000; ++i) {
        held_seen_inside = held_seen_inside || gate.held();
        returned_seen_inside = returned_seen_inside || hold_returned.load();
      }
    });
  });
  while (!inside.load()) {}
  std::thread prompt([&] {
    calling = true;
    gate.hold();
    hold_returned = true;
  });
  supervisor.join();
  prompt.join();
  EXPECT_FALSE(held_seen_inside);
  EXPECT_FALSE(returned_seen_inside);
  EXPECT_TRUE(gate.held());
  EXPECT_FALSE(gate.unless_held([] {}));
}

}  // namespace
}  // namespace kz
