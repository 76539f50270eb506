// The processes of a blind run that outlive its command. A daemon the agent started
// would otherwise go on using what the run gave it (a connection grant swaps without
// asking the broker) after kz and its audit log are gone. kz is the run's child
// subreaper, so every such process is a descendant of kz once the command has exited;
// at the end of the run each gets SIGTERM, one grace period (waited on pidfds, no
// polling loop), then SIGKILL. With --keep-survivors they are left running, and only
// named: kz's broker stops with the run, so their shims find it gone and swap nothing
// more (preload/broker_socket.h, SwapTransport::broker_alive).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace kz {

struct Survivor {
  pid_t pid = 0;
  std::string exe{};   // /proc/PID/exe, else /proc/PID/comm
  std::string fate{};  // "terminated" (SIGTERM) | "killed" (SIGKILL) | "kept" | "gone"
};

// Live descendants of `ancestor` (from /proc parent links), children first.
std::vector<Survivor> find_descendants(pid_t ancestor);

struct EndOptions {
  bool keep = false;                                  // --keep-survivors: name them only
  std::chrono::milliseconds grace{1000};              // between SIGTERM and SIGKILL
  // The run's cgroup v2 directory, when kz made one: after the grace period,
  // "1" > cgroup.kill ends every member at once (also one forked a moment ago).
  std::string cgroup{};
};

// Ends (or, with keep, lists) the live descendants of `self`, reaping those that become
// its children. Repeats while new ones appear (a process that forks as it dies), a few
// rounds at most. Returns every process it found, with what happened to it.
std::vector<Survivor> end_survivors(pid_t self, const EndOptions& opts);

// "PID EXE (fate)" for the audit record and the message.
std::string describe(const Survivor& s);

}  // namespace kz
