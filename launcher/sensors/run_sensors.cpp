#include "sensors/run_sensors.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/log.h"
#include "core/unique_fd.h"
#include "kz/wipe.h"
#include "sensors/sensor_object.h"
#include "sensors/witness_table.h"

namespace kz {

Result<OnLeak> parse_on_leak(const std::string& s) {
  if (s.empty() || s == "audit") return OnLeak::Audit;
  if (s == "kill") return OnLeak::Kill;
  return make_error(ErrorKind::Usage, "--on-leak: expected audit or kill, got '" + s + "'");
}

Result<SensorMode> parse_sensor_mode(const std::string& s) {
  if (s.empty() || s == "default") return SensorMode::Default;
  if (s == "full") return SensorMode::Full;
  return make_error(ErrorKind::Usage, "--sensors: expected default or full, got '" + s + "'");
}

namespace {

// How long a process whose environment names the shim has to say hello before its
// writes are left to uprobes (its dynamic loader runs the shim's constructor first
// thing; this only bounds a process that names the shim and never loads it).
constexpr std::chrono::milliseconds kHelloGrace{50};

const char* cover_name(int c) {
  switch (c) {
    case 1: return "shim";
    case 2: return "uprobe";
    case 3: return "uprobe";   // pending: uprobes unless the shim says hello
    default: return "none";
  }
}

}  // namespace

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
    return r;
  }
  if (auto why = process_sensor_unavailable_reason(); !why.empty()) {
    say_off(why);
    return r;
  }
  // One BPF object for every sensor: the kernel's BTF is read and parsed once.
  // A write that may have to be refused (a leak, a canary) stops until it is judged.
  auto obj = SensorObject::load(r->opts_.on_leak == OnLeak::Kill || r->canary_kills());
  if (!obj) {
    say_off(obj.error().message);
    return r;
  }
  auto s = ProcessSensor::start(getpid(), *obj);
  if (!s) {
    say_off(s.error().message);
    return r;
  }
  r->obj_ = std::move(*obj);
  r->process_ = std::move(*s);
  spdlog::info("process sensor: on (eBPF; exact process tree and lineage in the audit log)");
  r->start_tap();
  return r;
}

RunSensors::~RunSensors() { stop(); }

// On the loading thread, beside the providers: finding the TLS libraries' functions
// (their symbol tables) takes a while. No write reaches it before watch(): no process of
// the run exists yet.
void RunSensors::start_tap() {
  TlsTapOptions to;
  to.everyone = opts_.mode == SensorMode::Full;
  to.on_write = [this](const TapWrite& w) { return on_write(w); };
  to.on_exited = [this](pid_t pid) {
    std::lock_guard lock(counts_mu_);
    h2_.forget(pid);
  };
  to.on_killed = [this](const TapWrite& w, int err) {
    if (err == 0) return;
    TapFinding j = facts(w, kNoSecret);
    j.kind = TapKind::SensorError;
    j.decision = "error";
    j.reason = std::string("could not kill the leaking process: ") + std::strerror(err);
    opts_.audit->record(std::move(j));
  };
  if (auto tap = TlsTap::start(obj_, std::move(to)))
    tap_ = std::move(*tap);
  else
    tap_error_ = tap.error().message;
}

void RunSensors::watch(const std::vector<WatchedSecret>& secrets, bool values, bool tokens) {
  if (!process_) return;
  {
    std::lock_guard lock(counts_mu_);   // the tap's thread reads it (under the same lock)
    detector_ = LeakDetector::build(secrets);
  }
  for (const auto& n : detector_.unwatched())
    spdlog::info("TLS witness: {} is shorter than {} bytes; its value is not watched (its token is)", n,
                 LeakDetector::kMinValueLen);
  const bool full = opts_.mode == SensorMode::Full;
  const bool kill = opts_.on_leak == OnLeak::Kill || canary_kills();
  if (!tap_) {
    if (kill)
      spdlog::warn("TLS tap: off ({}); --on-leak=kill cannot act without it", tap_error_);
    else
      spdlog::info("TLS tap: off ({})", tap_error_);
    return;
  }
  if (!full) {
    WitnessHandlers h;
    h.member = [this](pid_t pid) { return process_->contains(pid); };
    h.hello = [this](pid_t pid) { on_hello(pid); };
    h.sighting = [this](const WitnessSighting& s) { return on_sighting(s); };
    h.uses = [this](pid_t, std::size_t secret, const std::string& host, std::uint64_t n) {
      // Only a pair kz judged bound is counted by the shim itself; judged again here.
      const bool token = (secret & preload::witness::kTokenSecret) != 0;
      secret &= ~std::size_t{preload::witness::kTokenSecret};
      if (secret >= detector_.size() || !detector_.bound(secret, host)) return;
      std::lock_guard lock(counts_mu_);
      uses_[{detector_.name(secret), host, token ? "token" : "value"}] += n;
    };
    h.writes = [this](pid_t, std::uint64_t n) {
      std::lock_guard lock(counts_mu_);
      shim_writes_ += n;
    };
    auto table = build_witness_table(secrets, values, kill, tokens);
    if (auto w = WitnessServer::start(*table, std::move(h)))
      witness_ = std::move(*w);
    else
      spdlog::warn("TLS witness: the shim's witness is off ({}); every process gets uprobes", w.error().message);
  }
  ProcessSensor::Listener l;
  l.exec = [this](pid_t pid, const std::string& exe, std::uint32_t execs) { on_exec(pid, exe, execs); };
  l.fork = [this](pid_t child, pid_t parent) { on_fork(child, parent); };
  l.exit = [this](pid_t pid) { on_exit(pid); };
  process_->set_listener(std::move(l));
  std::string on;
  for (const auto& a : tap_->attached()) on += (on.empty() ? "" : ", ") + a;
  spdlog::info("TLS witness: {} ({}; leaks {})",
               full ? "uprobes on every write of the run (--sensors=full)"
                    : "the shim in process; uprobes for processes it does not serve",
               on, kill ? (full ? "kill the process" : "fail the write in the shim, kill the process elsewhere")
                        : "are audited");
}

// A process whose environment names the shim (in LD_PRELOAD) and the witness socket:
// its loader will run the shim, which says hello. Read from /proc at its exec.
bool RunSensors::shim_expected(pid_t pid) const {
  if (!witness_) return false;
  const std::string path = "/proc/" + std::to_string(pid) + "/environ";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  std::string env(64 * 1024, '\0');
  std::size_t got = 0;
  for (ssize_t n; got < env.size() && (n = ::read(fd.get(), env.data() + got, env.size() - got)) > 0;)
    got += static_cast<std::size_t>(n);
  env.resize(got);
  const std::string want = std::string(preload::witness::kEnvWitness) + "=" + witness_->path();
  bool witness = false, preload = false;
  for (std::size_t i = 0; i < env.size();) {
    const std::size_t end = std::min(env.find('\0', i), env.size());
    std::string_view e(env.data() + i, end - i);
    if (e == want) witness = true;
    if (e.rfind("LD_PRELOAD=", 0) == 0 && e.find("libkz_preload") != std::string_view::npos) preload = true;
    i = end + 1;
  }
  wipe(env);   // the environment holds the values in standard mode
  return witness && preload;
}

void RunSensors::note_program(const std::string& exe, Cover c) {
  if (!exe.empty()) programs_[exe] = c;
}

// Each exec starts a new image: its witness is decided afresh.
void RunSensors::on_exec(pid_t pid, const std::string& exe, std::uint32_t execs) {
  if (!tap_) return;
  if (opts_.mode == SensorMode::Full) {
    tap_->cover(pid, exe, false);   // a program's own TLS library (the libraries are probed)
    std::lock_guard lock(cover_mu_);
    note_program(exe, Cover::Uprobe);
    return;
  }
  const bool expected = shim_expected(pid);
  std::lock_guard lock(cover_mu_);
  Coverage& c = cover_[pid];
  c.exe = exe;
  c.execs = execs;
  // A hello counts only from an image that was started with the shim: any process of the
  // run can connect and say hello, and must not switch its own probes off by it.
  if (expected && c.hello == execs + 1) {
    c.cover = Cover::Shim;
    tap_->cover(pid, exe, false);   // only a TLS library of the program's own
  } else if (expected) {
    c.cover = Cover::Pending;
    tap_->cover(pid, exe, true, kHelloGrace);
  } else {
    c.cover = Cover::Uprobe;
    tap_->cover(pid, exe, true);
  }
  note_program(exe, c.cover);
}

void RunSensors::on_hello(pid_t pid) {
  // The shim runs after the exec: wait (bounded) until its event is in the table, so the
  // hello is paired with this image, not the one before.
  (void)process_->lineage(pid);
  const auto info = process_->info(pid);
  const std::uint32_t execs = info ? info->execs : 0;
  std::lock_guard lock(cover_mu_);
  Coverage& c = cover_[pid];
  c.hello = execs + 1;
  if (c.execs == execs && c.cover == Cover::Pending && !c.exe.empty()) {
    c.cover = Cover::Shim;
    if (tap_) tap_->cover(pid, c.exe, false);
    note_program(c.exe, Cover::Shim);
  }
}

// A fork child runs its parent's image: the parent's witness, and its own uprobes.
void RunSensors::on_fork(pid_t child, pid_t parent) {
  if (!tap_ || opts_.mode == SensorMode::Full) return;
  std::lock_guard lock(cover_mu_);
  auto p = cover_.find(parent);
  if (p == cover_.end()) return;
  Coverage c = p->second;
  c.execs = 0;
  c.hello = c.cover == Cover::Shim ? 1 : 0;
  if (c.cover == Cover::Pending) c.cover = Cover::Uprobe;
  if (c.cover == Cover::Uprobe) tap_->cover(child, c.exe, true);
  cover_[child] = c;
}

void RunSensors::on_exit(pid_t pid) {
  if (!tap_) return;
  // The process's HTTP/2 state goes once the tap has read its last writes (on_exited).
  tap_->exited(pid);
  if (opts_.mode == SensorMode::Full) return;
  {
    std::lock_guard lock(cover_mu_);
    cover_.erase(pid);
  }
  tap_->uncover(pid);
}

// The shim saw a value in a write (standard mode), or a token (--blind=proxy). Its
// binding decides, as the tap's. Returns (bound, refuse).
std::pair<bool, bool> RunSensors::on_sighting(const WitnessSighting& s) {
  const bool token = (s.secret & preload::witness::kTokenSecret) != 0;
  const std::size_t secret = s.secret & ~std::size_t{preload::witness::kTokenSecret};
  if (secret >= detector_.size()) return {false, false};
  // The host is the server name the program set, else the socket's peer, which the
  // redirect shows as the destination the program asked for (not kz's proxy).
  const bool bound = detector_.bound(secret, s.host);
  std::lock_guard lock(counts_mu_);
  if (bound && !detector_.canary(secret)) {
    ++uses_[{detector_.name(secret), s.host, token ? "token" : "value"}];
    return {true, false};
  }
  TapFinding j;
  j.via = "shim";
  j.pid = static_cast<long>(s.pid);
  j.host = s.host;
  j.function = s.function;
  j.secret = detector_.name(secret);
  if (!s.peer.empty()) j.peer = s.peer;
  if (auto p = process_->info(s.pid)) j.exe = p->exe;
  j.lineage = process_->lineage(s.pid);
  if (detector_.canary(secret)) return {false, raise_canary(std::move(j), "witness")};
  if (token) {
    // The agent sent a token where it may not go; the proxy refuses to swap it (and
    // records that) if the connection reached it. This is the sensor's own view.
    ++exfil_;
    j.kind = TapKind::Exfil;
    j.decision = "observed";
    j.reason = "the token was sent to a host it is not bound to (seen in the TLS plaintext)";
    opts_.audit->record(std::move(j));
    return {false, false};
  }
  ++leaks_;
  j.kind = TapKind::Leak;
  const bool kill = opts_.on_leak == OnLeak::Kill;
  j.decision = kill ? "kill" : "audit";
  j.reason = std::string("the secret's value was written to a host it is not bound to") +
             (kill ? "; the write was refused in the process before encryption (--on-leak=kill)" : "");
  opts_.audit->record(std::move(j));
  return {false, kill};
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

// Nothing legitimate sends a canary, to any host (through kz's proxy too): the record
// is the alarm's, and with on_canary = "kill" the write is refused (the shim fails it,
// the tap kills the process) and the alarm ends the run.
bool RunSensors::raise_canary(TapFinding f, const char* where) {
  if (opts_.canary == nullptr) return false;
  CanarySeen seen;
  seen.secret = f.secret.value_or("");
  seen.where = where;
  seen.via = f.via;
  seen.pid = f.pid;
  if (!f.host.empty()) seen.host = std::move(f.host);
  seen.peer = std::move(f.peer);
  seen.exe = std::move(f.exe);
  seen.lineage = std::move(f.lineage);
  seen.reason = std::string("written in the TLS plaintext") + (f.function.empty() ? "" : " (" + f.function + ")") +
                (std::string_view(where) == "tap" ? ", seen by the eBPF TLS tap" : ", seen by the shim's witness");
  opts_.canary->raise(std::move(seen));
  return opts_.canary->kills();
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
  TapVerdict verdict = TapVerdict::Continue;
  const bool to_proxy = via_own_proxy(w);
  std::lock_guard lock(counts_mu_);
  auto seen = detector_.scan(w.data, w.host());
  // HTTP/2: header values are HPACK-coded (Huffman, dynamic-table references); the
  // connection's decoded fields are scanned too.
  std::string fields;
  if (h2_.feed(w.pid, w.conn, w.data, w.len, &fields) && !fields.empty()) {
    for (const Sighting& s : detector_.scan(fields, w.host()))
      if (std::none_of(seen.begin(), seen.end(),
                       [&](const Sighting& x) { return x.kind == s.kind && x.secret == s.secret; }))
        seen.push_back(s);
    wipe(fields.data(), fields.size());
  }
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
    if (detector_.canary(s.secret)) {
      if (raise_canary(std::move(j), "tap")) verdict = TapVerdict::Kill;
      continue;
    }
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
  // The shim's last counts (processes report at exit) come in before the summary.
  if (witness_) witness_->stop();
  if (tap_) {
    tap_->stop();
    {
      std::lock_guard lock(counts_mu_);
      if (h2_.lost() > 0)
        spdlog::warn("TLS tap: {} HTTP/2 connection(s) could not be followed to the end (a write longer than the "
                     "tap captures, or a header block it could not decode): their later header blocks were not "
                     "inspected", h2_.lost());
      SensorSummary j;
      for (const auto& [k, n] : uses_) j.uses.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), n});
      j.leaks = leaks_;
      j.exfil = exfil_;
      j.not_inspected = tap_->lost();
      j.taps = tap_->attached();
      j.writes = writes_ + shim_writes_;
      j.witnesses = {{"shim", shim_writes_}, {"uprobe", writes_}};
      j.mode = opts_.mode == SensorMode::Full ? "full" : "default";
      const ExecHolds h = tap_->holds();
      j.held = h.processes;
      j.held_max_us = h.max_us;
      j.held_total_us = h.total_us;
      {
        std::lock_guard cl(cover_mu_);
        // A program with its own TLS library is probed whoever else witnesses it: its
        // writes never reach the shim's hooks.
        for (const auto& [exe, c] : programs_) {
          char real[PATH_MAX];
          const std::string path = ::realpath(exe.c_str(), real) != nullptr ? real : exe;
          const bool own = std::find(j.taps.begin(), j.taps.end(), path + " (its own TLS library)") != j.taps.end();
          j.programs.emplace_back(exe, own ? "uprobe" : cover_name(static_cast<int>(c)));
        }
      }
      if (tap_->lost() > 0) {
        j.decision = "error";
        j.reason = "writes the kernel could not report (ring buffer full) were not inspected";
      }
      opts_.audit->record(std::move(j));
    }
  }
  if (process_) {
    process_->set_listener({});
    process_->stop();
  }
  obj_.reset();
}

}  // namespace kz
