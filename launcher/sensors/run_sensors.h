// The sensors of one `kz run` (standard or blind): the process tree (eBPF), and the
// witnesses of what the run's processes hand their TLS library. Each write is inspected
// once, by the cheapest witness that can see it:
//   - the shim's witness (preload/witness.h), in process, for every process the shim is
//     loaded into and says hello from (standard mode too: kz preloads it);
//   - the TLS tap's uprobes (tls_tap.h), installed into the other processes of the run
//     only: a child started without the shim, a program with its own TLS library;
//   - with --sensors=full, the uprobes for every write of the run, as an independent
//     kernel witness (and no shim witness).
//
// Audit records written here (besides what the broker and the proxy write):
//   "leak"            a secret's value went to a host not bound to it (standard mode,
//                     where the agent holds values); decision "audit" or "kill"
//   "exfil"           a token went to a host not bound to it (blind mode; the shim or
//                     the proxy refused the swap and records that too)
//   "canary"          a canary (bound nowhere) was written, through the run's CanaryAlarm:
//                     where "tap" (uprobes) or "witness" (the shim's witness)
//   "sensor.summary"  at the end: uses per secret and host, counts per witness, which
//                     witness covered which program, writes not inspected
// Each carries pid, exe, lineage, host, the TLS function and "via" ("shim" or "tls-tap").
//
// Without the capability, BTF or an eBPF build, the sensors are off: kz says so once
// (with -v; a warning when --on-leak=kill asked for them) and everything else works.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "audit/audit_recorder.h"
#include "kz/result.h"
#include "secrets/canary.h"
#include "sensors/h2_follower.h"
#include "sensors/leak_detector.h"
#include "sensors/process_sensor.h"
#include "sensors/tls_tap.h"
#include "sensors/witness_server.h"

namespace kz {

enum class OnLeak { Audit, Kill };

// "audit" | "kill"
Result<OnLeak> parse_on_leak(const std::string& s);

enum class SensorMode { Default, Full };

// "default" | "full"
Result<SensorMode> parse_sensor_mode(const std::string& s);

struct RunSensorOptions {
  bool enabled = true;   // false (--no-sensors): nothing is loaded
  SensorMode mode = SensorMode::Default;
  OnLeak on_leak = OnLeak::Audit;
  AuditRecorder* audit = nullptr;   // required, thread-safe; outlives the RunSensors
  // The run's canary alarm (secrets/canary.h): a canary the tap or the shim's witness
  // sees is raised there ("canary" record, where "tap" / "witness"; the run ends with
  // on_canary = "kill"). Null: no canaries. Thread-safe; outlives the RunSensors.
  CanaryAlarm* canary = nullptr;
};

class RunSensors {
 public:
  // Starts the process sensor when this host allows it, and loads the TLS tap's
  // programs (attached later by watch()). Never fails: a sensor that cannot run is
  // reported and left off.
  static std::unique_ptr<RunSensors> start(RunSensorOptions opts);
  ~RunSensors();

  // Null when the process sensor is off.
  ProcessSensor* process() const { return process_.get(); }
  bool tap_active() const { return tap_ != nullptr; }

  // Starts the witnesses, which recognise `secrets` (values: in standard mode, where the
  // agent holds them; blind mode watches tokens). Before the child forks.
  // `tokens`: the shim's witness looks for the tokens too (--blind=proxy: no broker sees
  // the agent's writes, and the witness stands in for the tap's uprobes).
  void watch(const std::vector<WatchedSecret>& secrets, bool values, bool tokens = false);
  // The shim witness's socket, for $KZ_WITNESS in the child's environment (with the
  // shim in LD_PRELOAD); "" when there is none (full mode, no sensors).
  std::string witness_path() const { return witness_ ? witness_->path() : ""; }
  // kz's own fallback proxy: where it listens (IP literal, port), and which processes
  // the run routes to it. A redirected program's socket peer is the proxy, not the host
  // it asked for, and a program with its own TLS library (node) writes through its own
  // transport, so the tap may see no peer at all. A write without a server name that
  // goes to the proxy's listener, or whose peer the tap cannot see from a process routed
  // to the proxy, says nothing about where the token goes: the proxy decides (with the
  // binding check) and audits its refusals. It is counted as a use through the proxy,
  // never as "exfil". Before the child forks; `routed` must stay callable until stop().
  void set_own_proxy(std::vector<std::pair<std::string, int>> endpoints, std::function<bool(pid_t)> routed) {
    own_ = std::move(endpoints);
    routed_to_proxy_ = std::move(routed);
  }
  // The run's first process, while it waits to exec: from here on its whole tree is seen.
  Status add_root(pid_t pid);
  // Detaches, and writes the "sensor.summary" record when the tap ran. Idempotent.
  void stop();

 private:
  explicit RunSensors(RunSensorOptions o) : opts_(std::move(o)) {}
  TapVerdict on_write(const TapWrite& w);
  // The record's common fields; `secret` indexes the detector's list (kNoSecret: none).
  static constexpr std::size_t kNoSecret = static_cast<std::size_t>(-1);
  TapFinding facts(const TapWrite& w, std::size_t secret) const;
  // A canary in a write: the alarm's record from the finding's facts. Whether the run
  // ends (on_canary = "kill").
  bool raise_canary(TapFinding facts, const char* where);
  bool canary_kills() const { return opts_.canary != nullptr && opts_.canary->kills(); }

  // Which witness covers each process (see the file comment).
  enum class Cover { None, Shim, Uprobe, Pending };
  struct Coverage {
    Cover cover = Cover::None;
    std::string exe;
    std::uint32_t execs = 0;        // the image this applies to
    std::uint32_t hello = 0;        // the image the shim said hello from (+1; 0: none)
  };
  void start_tap();
  void on_exec(pid_t pid, const std::string& exe, std::uint32_t execs);
  void on_fork(pid_t child, pid_t parent);
  void on_exit(pid_t pid);
  void on_hello(pid_t pid);
  std::pair<bool, bool> on_sighting(const WitnessSighting& s);
  void note_program(const std::string& exe, Cover c);
  bool shim_expected(pid_t pid) const;

  RunSensorOptions opts_;
  std::shared_ptr<SensorObject> obj_;
  std::unique_ptr<ProcessSensor> process_;
  std::unique_ptr<TlsTap> tap_;
  std::string tap_error_;   // why there is no tap_
  std::unique_ptr<WitnessServer> witness_;
  LeakDetector detector_;
  bool stopped_ = false;

  std::mutex cover_mu_;
  std::map<pid_t, Coverage> cover_;
  std::map<std::string, Cover> programs_;   // exe -> the witness that covered it last
  std::uint64_t shim_writes_ = 0;           // under counts_mu_

  std::mutex counts_mu_;
  // (secret, host, "value" | "token") -> writes
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> uses_;
  std::uint64_t leaks_ = 0, exfil_ = 0, writes_ = 0;
  H2Follower h2_;   // the tap's HTTP/2 connections (HPACK state), under counts_mu_
  std::vector<std::pair<std::string, int>> own_;   // kz's proxy listeners
  std::function<bool(pid_t)> routed_to_proxy_;
  bool via_own_proxy(const TapWrite& w) const;
};

}  // namespace kz
