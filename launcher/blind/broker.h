// The broker: a unix SOCK_SEQPACKET socket in a private 0700 directory, served by one
// thread. Only processes of this run (SO_PEERCRED pid in the ProcessTree, same uid)
// get answers; every message is exactly one fixed-size wire::Request, checked strictly;
// every decision is an audit record.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "audit/audit_recorder.h"
#include "secrets/decide.h"
#include "secrets/process_tree.h"
#include "kz/result.h"

namespace kz {

struct BrokerOptions {
  DecideContext decide;
  ProcessTree* tree = nullptr;
  AuditRecorder* audit = nullptr;   // required; called from the broker thread
  std::string runtime_dir;          // parent of the private dir; default $XDG_RUNTIME_DIR or /tmp
  // approve = ... (secrets/approval.h): decide.approvals, and the channels it is
  // answered on, for the "approve" records ("tty+socket", "webhook").
  std::string approval_channels;
};

class Broker {
 public:
  // Creates the directory and socket and starts serving.
  static Result<std::unique_ptr<Broker>> start(BrokerOptions opts);
  ~Broker();   // stop()
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  // Stops the thread, closes every connection, removes the socket and its directory.
  void stop();

 private:
  explicit Broker(BrokerOptions opts) : opts_(std::move(opts)) {}
  void serve();

  BrokerOptions opts_;
  std::string dir_, socket_path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;   // eventfd: stop() wakes the poll loop
  std::thread thread_;
};

}  // namespace kz
