// kz's end of the shim's TLS witness (preload/witness.h): a SOCK_SEQPACKET socket in a
// private directory, $KZ_WITNESS in the child's environment. Each process the shim
// loads into says hello (and gets the run's fingerprint table); it reports the values
// it sees in its TLS writes (and waits for a verdict with --on-leak=kill), and its
// count of writes inspected.
//
// Messages are taken only from processes of the run (SCM_CREDENTIALS on each message,
// as the broker does: broker_message.h); a process outside gets no table.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "kz/preload/witness_wire.h"
#include "kz/result.h"

namespace kz {

struct WitnessSighting {
  pid_t pid = 0;
  std::size_t secret = 0;    // index into the table's secrets
  std::string function;      // "SSL_write", "SSL_write_ex", "gnutls_record_send"
  std::string host;          // the server name, else the peer's IP, or ""
  std::string peer;          // "ip:port" or ""
};

struct WitnessHandlers {
  std::function<bool(pid_t)> member;                    // a process of the run?
  std::function<void(pid_t)> hello;                     // the shim serves this process now
  // The verdict on one sighting: the host may have it (a use); refuse the write.
  std::function<std::pair<bool, bool>(const WitnessSighting&)> sighting;
  // More uses of (secret, host) the shim counted itself after a bound verdict.
  std::function<void(pid_t, std::size_t secret, const std::string& host, std::uint64_t writes)> uses;
  std::function<void(pid_t, std::uint64_t)> writes;     // writes it inspected
};

class WitnessServer {
 public:
  // `table` is copied (its keys are the run's); accepted is set per process.
  static Result<std::unique_ptr<WitnessServer>> start(const preload::witness::Table& table, WitnessHandlers h);
  virtual ~WitnessServer() = default;
  virtual const std::string& path() const = 0;
  // Answers what is queued, then closes every connection. Idempotent.
  virtual void stop() = 0;
};

}  // namespace kz
