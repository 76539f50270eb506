#include "sensors/run_sensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/log.h"

namespace kz {

Result<OnLeak> parse_on_leak(const std::string& s) {
  if (s.empty() || s == "audit") return OnLeak::Audit;
  if (s == "kill") return OnLeak::Kill;
  return make_error(ErrorKind::Usage, "--on-leak: expected audit or kill, got '" + s + "'");
}

std::unique_ptr<RunSensors> RunSensors::start(RunSensorOptions opts) {
  std::unique_ptr<RunSensors> r(new RunSensors(std::move(opts)));
  // --on-leak=kill asked for something this host may not give: say so loudly.
  auto say_off = [&](const std::string& why) {
    if (r->opts_.on_leak == OnLeak::Kill)
      spdlog::warn("sensors: off ({}); --on-leak=kill cannot act without them", why);
    else
      spdlog::info("sensors: off ({})", why);
  };
  if (!r->opts_.enabled) {
    spdlog::info("sensors: off (--no-sensors)");
  } else if (auto why = process_sensor_unavailable_reason(); !why.empty()) {
    say_off(why);
  } else if (auto s = ProcessSensor::start(getpid()); !s) {
    say_off(s.error().message);
  } else {
    r->process_ = std::move(*s);
    spdlog::info("process sensor: on (eBPF; exact process tree and lineage in the audit log)");
    if (auto t = TlsTap::load(r->process_->members_map_fd(), r->opts_.on_leak == OnLeak::Kill))
      r->tap_loaded_ = std::move(*t);
    else
      r->tap_load_error_ = t.error().message;
  }
  return r;
}

RunSensors::~RunSensors() { stop(); }

void RunSensors::watch(LeakDetector detector) {
  if (!process_) return;
  detector_ = std::move(detector);
  for (const auto& n : detector_.unwatched())
    spdlog::info("TLS tap: {} is shorter than {} bytes; its value is not watched (its token is)", n,
                 LeakDetector::kMinValueLen);
  TlsTapOptions to;
  to.members_fd = process_->members_map_fd();
  to.stop_on_write = opts_.on_leak == OnLeak::Kill;
  to.on_write = [this](const TapWrite& w) { return on_write(w); };
  to.on_killed = [this](const TapWrite& w, int err) {
    if (err == 0) return;
    TapFinding j = facts(w, kNoSecret);
    j.kind = TapKind::SensorError;
    j.decision = "error";
    j.reason = std::string("could not kill the leaking process: ") + std::strerror(err);
    opts_.audit->record(std::move(j));
  };
  auto tap = tap_loaded_ ? TlsTap::start(std::move(tap_loaded_), std::move(to))
                        : Result<std::unique_ptr<TlsTap>>(make_error(ErrorKind::Denied, tap_load_error_));
  if (!tap) {
    if (opts_.on_leak == OnLeak::Kill)
      spdlog::warn("TLS tap: off ({}); --on-leak=kill cannot act without it", tap.error().message);
    else
      spdlog::info("TLS tap: off ({})", tap.error().message);
    return;
  }
  tap_ = std::move(*tap);
  process_->set_exec_listener([t = tap_.get()](pid_t pid, const std::string& exe) { t->watch_program(pid, exe); });
  std::string on;
  for (const auto& a : tap_->attached()) on += (on.empty() ? "" : ", ") + a;
  spdlog::info("TLS tap: on ({}; leaks {})", on, opts_.on_leak == OnLeak::Kill ? "kill the process" : "are audited");
}

Status RunSensors::add_root(pid_t pid) {
  if (!process_) return ok_status();
  if (auto st = process_->add_root(pid); !st) {
    spdlog::warn("sensors: off ({})", st.error().message);
    stop();
    process_.reset();
    return st;
  }
  return ok_status();
}

TapFinding RunSensors::facts(const TapWrite& w, std::size_t secret) const {
  TapFinding j;
  j.pid = static_cast<long>(w.pid);
  j.host = w.host();
  j.function = std::string(w.function);
  if (secret < detector_.size()) j.secret = detector_.name(secret);
  if (!w.peer_ip.empty()) j.peer = w.peer_ip + ":" + std::to_string(w.peer_port);
  if (process_) {
    if (auto p = process_->info(w.pid)) j.exe = p->exe;
    j.lineage = process_->lineage(w.pid);
  }
  return j;
}

// With a server name the write is judged by that name, proxy or not. Without one, the
// tap's view of the destination is the socket peer: kz's proxy listener, or nothing at
// all from a process whose connections go to the proxy (see set_own_proxy).
bool RunSensors::via_own_proxy(const TapWrite& w) const {
  if (!w.sni.empty()) return false;
  if (w.peer_ip.empty()) return routed_to_proxy_ && routed_to_proxy_(w.pid);
  return std::any_of(own_.begin(), own_.end(),
                     [&](const auto& e) { return e.first == w.peer_ip && e.second == w.peer_port; });
}

TapVerdict RunSensors::on_write(const TapWrite& w) {
  const auto seen = detector_.scan(w.data, w.host());
  TapVerdict verdict = TapVerdict::Continue;
  const bool to_proxy = via_own_proxy(w);
  std::lock_guard lock(counts_mu_);
  ++writes_;
  for (const Sighting& s : seen) {
    const char* kind = s.kind == SightingKind::Token ? "token" : "value";
    if (to_proxy) {
      ++uses_[{detector_.name(s.secret), "kz proxy (the proxy decides where it goes)", kind}];
      continue;
    }
    if (s.bound) {
      ++uses_[{detector_.name(s.secret), w.host(), kind}];
      continue;
    }
    TapFinding j = facts(w, s.secret);
    if (s.kind == SightingKind::Token) {
      // Blind mode: the agent tried to send a token where it may not go. The shim or
      // the proxy refused to swap it (and records that); this is the sensor's own view.
      ++exfil_;
      j.kind = TapKind::Exfil;
      j.decision = "observed";
      j.reason = "the token was sent to a host it is not bound to (seen in the TLS plaintext)";
    } else {
      ++leaks_;
      j.kind = TapKind::Leak;
      const bool kill = opts_.on_leak == OnLeak::Kill;
      j.decision = kill ? "kill" : "audit";
      j.reason = std::string("the secret's value was written to a host it is not bound to") +
                    (kill ? "; the process is killed (--on-leak=kill)" : "");
      if (kill) verdict = TapVerdict::Kill;
    }
    opts_.audit->record(std::move(j));
  }
  return verdict;
}

void RunSensors::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (tap_) {
    tap_->stop();
    {
      std::lock_guard lock(counts_mu_);
      SensorSummary j;
      for (const auto& [k, n] : uses_) j.uses.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), n});
      j.writes = writes_;
      j.leaks = leaks_;
      j.exfil = exfil_;
      j.not_inspected = tap_->lost();
      j.taps = tap_->attached();
      if (tap_->lost() > 0) {
        j.decision = "error";
        j.reason = "writes the kernel could not report (ring buffer full) were not inspected";
      }
      opts_.audit->record(std::move(j));
    }
  }
  if (process_) process_->stop();
}

}  // namespace kz
