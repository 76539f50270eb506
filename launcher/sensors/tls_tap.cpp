// The TLS tap's attachments and event thread (see tls_tap.h).
//
// Each probed file is one uprobe_multi link (BPF_LINK_CREATE, made here: libbpf 1.1
// predates it). Per process (the default) the link carries that process's pid: the
// kernel's consumer filter then installs the breakpoints into that process's memory
// only (and into nothing it forks: a fork child gets its own link when the caller asks).
// With --sensors=full the links have no pid: every process on the host that maps the
// library traps on each write, and the program filters by the run's members map.
//
// Removing a link waits for an RCU grace period (13-30 ms here). Links of processes
// that are gone are closed on a thread of their own; those left at the end are handed
// to a detached process (close_detached), so neither a write nor the run's exit waits.
#include "sensors/tls_tap.h"

#include <arpa/inet.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <optional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>
#include <utility>

#include "core/bpf_support.h"
#include "core/log.h"
#include "core/unique_fd.h"
#include "core/host_facts.h"
#include "redirect/program_route.h"
#include "core/signal_free_thread.h"
#include "sensors/elf_symbols.h"
#include "sensors/process_sensor.h"
#include "sensors/program_tls_cache.h"

#if KZ_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sensors/sensors_skel.h"
#endif
#include "sensors/link_closer.h"
#include "sensors/sensor_object.h"

namespace kz {

std::string tls_tap_unavailable_reason() {
  if (auto why = process_sensor_unavailable_reason(); !why.empty()) return why;
  if (loader_path("libssl.so.3").empty() && loader_path("libgnutls.so.30").empty())
    return "neither libssl.so.3 nor libgnutls.so.30 is installed";
  return "";
}

#if !KZ_HAVE_BPF

Result<std::unique_ptr<TlsTap>> TlsTap::start(std::shared_ptr<SensorObject>, TlsTapOptions) {
  return make_error(ErrorKind::Denied, tls_tap_unavailable_reason());
}

#else

namespace {

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

constexpr int kDrainTickMs = 10;
// A process held at exec whose cover() never came (its exec event was handled before the
// tap listened, say) is continued after this long, probes or not.
constexpr std::uint64_t kMaxHoldNs = 250ull * 1000 * 1000;
constexpr int kHoldSweepMs = 50;
// Programs with their own TLS library that agents run: their verdicts are known before
// the run starts, so their first exec is held too.
constexpr const char* kOwnTlsPrograms[] = {"node", "nodejs"};

std::uint64_t boot_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The file as the kernel numbers it in the hold_images map (s_dev is MAJOR << 20 | MINOR).
kz_pt_image kernel_image(const ProgramFile& f) {
  kz_pt_image k{};
  k.dev = (static_cast<std::uint64_t>(major(f.dev)) << 20) | minor(f.dev);
  k.ino = f.ino;
  return k;
}

const char* function_name(std::uint32_t fn) {
  switch (fn) {
    case KZ_TAP_FN_SSL_WRITE: return "SSL_write";
    case KZ_TAP_FN_SSL_WRITE_EX: return "SSL_write_ex";
    case KZ_TAP_FN_GNUTLS_RECORD_SEND: return "gnutls_record_send";
    default: return "?";
  }
}

// BPF_LINK_CREATE for BPF_TRACE_UPROBE_MULTI (Linux 6.6), which libbpf 1.1 (Debian 12)
// predates: the link_create member of union bpf_attr as the kernel lays it out.
struct UprobeMultiAttr {
  std::uint32_t prog_fd, target_fd, attach_type, flags;
  std::uint64_t path, offsets, ref_ctr_offsets, cookies;
  std::uint32_t cnt, um_flags, pid;
  std::uint32_t pad[17];   // the rest of union bpf_attr: the kernel wants it zero
};

int uprobe_multi_link(int prog_fd, const std::string& path, const std::vector<std::uint64_t>& offsets,
                      const std::vector<std::uint64_t>& cookies, pid_t pid) {
  UprobeMultiAttr a{};
  a.prog_fd = static_cast<std::uint32_t>(prog_fd);
  a.attach_type = kBpfTraceUprobeMulti;
  a.path = reinterpret_cast<std::uintptr_t>(path.c_str());
  a.offsets = reinterpret_cast<std::uintptr_t>(offsets.data());
  a.cookies = reinterpret_cast<std::uintptr_t>(cookies.data());
  a.cnt = static_cast<std::uint32_t>(offsets.size());
  a.pid = static_cast<std::uint32_t>(pid);   // 0: every process
  const long fd = ::syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof a);
  return fd < 0 ? -1 : static_cast<int>(fd);
}

// The probes of one file: offsets and cookies of the functions it defines.
struct FileProbes {
  std::string path;
  std::vector<std::uint64_t> offsets, cookies;
  int writes = 0;   // how many of them are write functions (0: nothing to probe)
};

FileProbes probes_of(const std::string& path) {
  static const std::pair<const char*, std::uint64_t> kProbes[] = {
      {"SSL_write", KZ_TAP_FN_SSL_WRITE},
      {"SSL_write_ex", KZ_TAP_FN_SSL_WRITE_EX},
      {"gnutls_record_send", KZ_TAP_FN_GNUTLS_RECORD_SEND},
      {"SSL_ctrl", KZ_TAP_FN_SSL_CTRL},
      {"SSL_set_fd", KZ_TAP_FN_SSL_SET_FD},
      {"SSL_free", KZ_TAP_FN_SSL_FREE},
      {"gnutls_server_name_set", KZ_TAP_FN_GNUTLS_SERVER_NAME_SET},
      {"gnutls_transport_set_int2", KZ_TAP_FN_GNUTLS_SET_INT2},
      {"gnutls_deinit", KZ_TAP_FN_GNUTLS_DEINIT},
      {"SSL_connect", KZ_TAP_FN_HANDSHAKE},
      {"SSL_do_handshake", KZ_TAP_FN_HANDSHAKE},
      {"gnutls_handshake", KZ_TAP_FN_HANDSHAKE},
  };
  FileProbes f;
  f.path = path;
  std::vector<std::string> names;
  for (const auto& p : kProbes) names.emplace_back(p.first);
  const auto found = elf_function_offsets(path, names);
  for (const auto& [name, fn] : kProbes) {
    auto it = found.find(name);
    if (it == found.end()) continue;
    f.offsets.push_back(it->second);
    f.cookies.push_back(fn);
    if (fn <= KZ_TAP_FN_GNUTLS_RECORD_SEND) ++f.writes;
  }
  return f;
}

// One process's probes: in the system libraries, and in its program when that carries
// its own TLS library.
struct ProcessLinks {
  std::vector<UniqueFd> libraries;
  UniqueFd program;
  std::optional<ProgramFile> program_file;
};

// A cover() not yet carried out, or carried out but for its libraries' delay.
struct CoverRequest {
  std::string exe;
  bool libraries = false;
  bool program_done = false;
  std::chrono::steady_clock::time_point due;
};

class BpfTlsTap final : public TlsTap {
 public:
  BpfTlsTap(TlsTapOptions o, std::shared_ptr<SensorObject> obj, UniqueFd wake)
      : opts_(std::move(o)), obj_(std::move(obj)), cache_(ProgramTlsCache::open_default()), wake_(std::move(wake)) {}

  // Before the run: the programs known (from the cache, or found now on $PATH) to carry
  // their own TLS library are held at exec until their probes are in.
  void prepare_holds() {
    for (const ProgramFile& f : cache_.own_tls()) set_hold(f, true);
    const char* path_env = std::getenv("PATH");
    const std::string dirs = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
    for (const char* name : kOwnTlsPrograms) {
      for (std::size_t i = 0; i <= dirs.size();) {
        const std::size_t end = std::min(dirs.find(':', i), dirs.size());
        const std::string cand = dirs.substr(i, end - i) + "/" + name;
        i = end + 1;
        if (cand[0] != '/' || ::access(cand.c_str(), X_OK) != 0) continue;
        char real[PATH_MAX];
        if (::realpath(cand.c_str(), real) == nullptr) continue;
        if (auto f = program_file(real)) (void)own_tls(real, *f);
        break;
      }
    }
  }
  ~BpfTlsTap() override { stop(); }

  Status prepare_system_libraries() {
    for (const char* soname : {"libssl.so.3", "libgnutls.so.30"}) {
      const std::string path = loader_path(soname);
      if (path.empty()) continue;
      FileProbes f = probes_of(path);
      if (f.writes == 0) continue;
      std::lock_guard lock(mu_);
      libraries_.push_back(std::move(f));
      attached_.push_back(std::string(soname) + " (" + path + ")");
    }
    if (libraries_.empty())
      return make_error(ErrorKind::Denied, "no TLS library to tap: libssl.so.3 and libgnutls.so.30 define no write function");
    return ok_status();
  }

  // --sensors=full: the libraries' probes for every process, now.
  Status attach_everyone() {
    for (const FileProbes& f : libraries_) {
      UniqueFd l = link_file(f, 0);
      if (!l) return make_error(ErrorKind::Denied, "cannot probe " + f.path + ": " + last_attach_error_);
      everyone_links_.push_back(std::move(l));
    }
    // Without the send hook (a kernel without the tracepoint) connections behind a
    // program's own BIO have no peer; the rest works.
    if (auto st = attach_send_hook(); !st) spdlog::info("TLS tap: {}", st.error().message);
    return ok_status();
  }

  Status attach_send_hook() {
    if (send_link_ || !obj_->send_hook()) return ok_status();
    LibbpfLogCapture log;
    bpf_link* l = bpf_program__attach(obj_->skel()->progs.kz_tcp_sendmsg);
    if (l == nullptr) return bpf_load_error("cannot attach the TLS tap's tcp_sendmsg hook", errno, &log);
    send_link_.reset(l);
    return ok_status();
  }

  Status start_consumer() {
    rb_.reset(ring_buffer__new(bpf_map__fd(obj_->skel()->maps.taps), &BpfTlsTap::on_event, this, nullptr));
    if (!rb_) return bpf_load_error("cannot open the TLS tap's ring buffer", errno, nullptr);
    thread_ = signal_free_thread([this] { run(); });
    return ok_status();
  }

  void cover(pid_t pid, const std::string& exe, bool libraries, std::chrono::milliseconds delay) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      CoverRequest& r = requests_[pid];
      r = CoverRequest{exe, libraries && !opts_.everyone, false, std::chrono::steady_clock::now() + delay};
      dropping_.erase(pid);
    }
    wake();
  }

  void uncover(pid_t pid) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      requests_.erase(pid);
      dropping_.insert(pid);
    }
    wake();
  }

  void exited(pid_t pid) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      exited_.push_back(pid);
    }
    wake();
  }

  std::vector<std::string> attached() const override {
    std::lock_guard lock(mu_);
    return attached_;
  }

  std::uint64_t lost() const override {
    if (!obj_) return lost_at_stop_;
    return read_lost();
  }

  ExecHolds holds() const override {
    std::lock_guard lock(mu_);
    return holds_;
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    if (thread_.joinable()) {
      wake();
      thread_.join();
    }
    // Nobody stays stopped at exec by a tap that is going away.
    release_held(0);
    // Detach first, then read what was reported up to then: in kill mode each of those
    // writers is stopped and waits for this answer.
    detach_all();
    if (rb_) ring_buffer__consume(rb_.get());
    lost_at_stop_ = obj_ ? read_lost() : 0;
    rb_.reset();
    obj_.reset();
  }

 private:
  void wake() {
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) != sizeof one) {
      // Only fails on counter overflow; the thread sees it readable either way.
    }
  }

  UniqueFd link_file(const FileProbes& f, pid_t pid) {
    UniqueFd link(uprobe_multi_link(bpf_program__fd(obj_->skel()->progs.kz_tap), f.path, f.offsets, f.cookies, pid));
    if (!link) last_attach_error_ = f.path + ": " + std::strerror(errno);
    return link;
  }

  void retire(UniqueFd fd) {
    if (fd) closer_.add(std::move(fd));
  }

  void detach_all() {
    send_link_.reset();
    std::vector<UniqueFd> all;
    for (auto& l : everyone_links_) all.push_back(std::move(l));
    everyone_links_.clear();
    for (auto& [pid, pl] : links_) {
      for (auto& l : pl.libraries) all.push_back(std::move(l));
      if (pl.program) all.push_back(std::move(pl.program));
    }
    links_.clear();
    for (auto& l : program_links_) all.push_back(std::move(l));
    program_links_.clear();
    closer_.finish(std::move(all));
  }

  std::uint64_t read_lost() const {
    const std::uint32_t zero = 0;
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return 0;
    std::vector<std::uint64_t> per(static_cast<std::size_t>(ncpu));
    if (bpf_map__lookup_elem(obj_->skel()->maps.lost, &zero, sizeof zero, per.data(),
                             per.size() * sizeof(std::uint64_t), 0) != 0)
      return 0;
    std::uint64_t sum = 0;
    for (auto v : per) sum += v;
    return sum;
  }

  // The file process `pid` runs (whatever name it was started by), and its identity;
  // nullopt when it cannot be read (the process is gone).
  static std::optional<std::pair<std::string, ProgramFile>> running_file(pid_t pid, const std::string& exe) {
    char buf[4096];
    const std::string proc = "/proc/" + std::to_string(pid) + "/exe";
    const ssize_t n = ::readlink(proc.c_str(), buf, sizeof buf - 1);
    const std::string path = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : exe;
    if (path.empty() || path[0] != '/') return std::nullopt;
    auto f = program_file(path);
    if (!f) return std::nullopt;
    return std::make_pair(path, *f);
  }

  // The probes of a program with its own TLS library (nullptr: none), from the cache kept
  // between runs or read from the file now (and cached). Such a program is held at its
  // next exec until its probes are in; another is not.
  const FileProbes* own_tls(const std::string& path, const ProgramFile& id) {
    auto it = own_tls_.find(id);
    if (it == own_tls_.end()) {
      FileProbes f;
      f.path = path;
      if (auto known = cache_.find(id)) {
        f.offsets = std::move(known->offsets);
        f.cookies = std::move(known->cookies);
        f.writes = known->writes;
      } else {
        if (executable_defines_tls_write(path)) f = probes_of(path);
        cache_.put(id, ProgramProbes{f.offsets, f.cookies, f.writes});
      }
      set_hold(id, f.writes > 0 && !(opts_.everyone && everyone_files_.count(id) != 0));
      it = own_tls_.emplace(id, std::move(f)).first;
    }
    return it->second.writes > 0 ? &it->second : nullptr;
  }

  void set_hold(const ProgramFile& f, bool on) {
    const kz_pt_image k = kernel_image(f);
    const std::uint32_t one = 1;
    const bpf_map* m = obj_->skel()->maps.hold_images;
    if (on)
      bpf_map__update_elem(m, &k, sizeof k, &one, sizeof one, BPF_ANY);
    else
      bpf_map__delete_elem(m, &k, sizeof k, 0);
  }

  // Continues `pid` if the kernel holds it at exec (0: every held process), and counts the
  // wait. Only a process in the held map is continued: one stopped by anyone else (its
  // shell's job control, a debugger) is left alone.
  void release_held(pid_t pid) {
    const bpf_map* m = obj_->skel()->maps.held;
    std::vector<std::uint32_t> who;
    if (pid != 0) {
      who.push_back(static_cast<std::uint32_t>(pid));
    } else {
      std::uint32_t key = 0, next = 0;
      for (const void* prev = nullptr; bpf_map__get_next_key(m, prev, &next, sizeof next) == 0; prev = &key) {
        who.push_back(next);
        key = next;
      }
    }
    const std::uint64_t now = boot_ns();
    for (std::uint32_t tgid : who) {
      std::uint64_t since = 0;
      if (bpf_map__lookup_elem(m, &tgid, sizeof tgid, &since, sizeof since, 0) != 0) continue;
      if (bpf_map__delete_elem(m, &tgid, sizeof tgid, 0) != 0) continue;   // exited meanwhile
      ::kill(static_cast<pid_t>(tgid), SIGCONT);
      const std::uint64_t us = now > since ? (now - since) / 1000 : 0;
      std::lock_guard lock(mu_);
      ++holds_.processes;
      holds_.total_us += us;
      holds_.max_us = std::max(holds_.max_us, us);
    }
  }

  // Held processes nobody asked to cover within kMaxHoldNs are continued.
  void sweep_held() {
    const bpf_map* m = obj_->skel()->maps.held;
    std::uint32_t key = 0, next = 0;
    std::vector<pid_t> late;
    const std::uint64_t now = boot_ns();
    for (const void* prev = nullptr; bpf_map__get_next_key(m, prev, &next, sizeof next) == 0; prev = &key) {
      std::uint64_t since = 0;
      if (bpf_map__lookup_elem(m, &next, sizeof next, &since, sizeof since, 0) == 0 && now > since + kMaxHoldNs)
        late.push_back(static_cast<pid_t>(next));
      key = next;
    }
    for (pid_t p : late) release_held(p);
  }

  void note_attached(const std::string& what) {
    std::lock_guard lock(mu_);
    if (std::find(attached_.begin(), attached_.end(), what) == attached_.end()) attached_.push_back(what);
  }

  // The program's own TLS library: for this process alone, or (full) for every process
  // that runs the file, once.
  void cover_program(pid_t pid, const std::string& exe) {
    auto file = running_file(pid, exe);
    if (!file) return;
    const auto& [path, id] = *file;
    const FileProbes* f = own_tls(path, id);
    if (opts_.everyone) {
      if (f == nullptr || !everyone_files_.insert(id).second) return;
      if (UniqueFd l = link_file(*f, 0)) {
        program_links_.push_back(std::move(l));
        note_attached(path + " (its own TLS library)");
        set_hold(id, false);   // one link for every process that runs the file: no more holds
      }
      return;
    }
    ProcessLinks& pl = links_[pid];
    if (pl.program_file && !(*pl.program_file < id) && !(id < *pl.program_file) && pl.program) return;
    retire(std::move(pl.program));   // the program it ran before this exec
    pl.program_file.reset();
    if (f == nullptr) return;
    // The peer of a connection behind the program's own BIO (node) comes from this hook.
    if (auto st = attach_send_hook(); !st) spdlog::info("TLS tap: {}", st.error().message);
    if (UniqueFd l = link_file(*f, pid)) {
      pl.program = std::move(l);
      pl.program_file = id;
      note_attached(path + " (its own TLS library)");
    }
  }

  void cover_libraries(pid_t pid, bool on) {
    ProcessLinks& pl = links_[pid];
    if (!on) {
      for (auto& l : pl.libraries) retire(std::move(l));
      pl.libraries.clear();
      return;
    }
    if (!pl.libraries.empty()) return;
    if (auto st = attach_send_hook(); !st) spdlog::info("TLS tap: {}", st.error().message);
    for (const FileProbes& f : libraries_)
      if (UniqueFd l = link_file(f, pid)) pl.libraries.push_back(std::move(l));
  }

  void drop(pid_t pid) {
    auto it = links_.find(pid);
    if (it == links_.end()) return;
    for (auto& l : it->second.libraries) retire(std::move(l));
    retire(std::move(it->second.program));
    links_.erase(it);
  }

  static int on_event(void* ctx, void* data, std::size_t size) {
    if (size < KZ_TAP_EVENT_HEADER) return 0;
    static_cast<BpfTlsTap*>(ctx)->handle(*static_cast<const kz_tap_event*>(data), size - KZ_TAP_EVENT_HEADER);
    return 0;
  }

  // `e` is a record of the ring: its header and `data_size` bytes of data (the type's
  // full size is not there).
  void handle(const kz_tap_event& e, std::size_t data_size) {
    TapWrite w;
    w.pid = static_cast<pid_t>(e.tgid);
    w.tid = static_cast<pid_t>(e.tid);
    w.function = function_name(e.fn);
    w.conn = e.conn;
    w.len = e.len;
    w.data = std::string_view(e.data, std::min<std::size_t>(e.captured, data_size));
    w.sni.assign(e.sni, strnlen(e.sni, sizeof e.sni));
    char ip[INET6_ADDRSTRLEN] = "";
    if (e.peer_family == AF_INET || e.peer_family == AF_INET6) {
      if (inet_ntop(e.peer_family, e.peer_addr, ip, sizeof ip) != nullptr) {
        w.peer_ip = ip;
        w.peer_port = e.peer_port;
      }
    }
    const TapVerdict v = opts_.on_write ? opts_.on_write(w) : TapVerdict::Continue;
    if (v == TapVerdict::Kill) {
      const int err = ::kill(w.pid, SIGKILL) == 0 ? 0 : errno;
      if (opts_.on_killed) opts_.on_killed(w, err);
    } else if (obj_->stop_on_write()) {
      ::kill(w.pid, SIGCONT);
    }
  }

  // Carries out what is due; returns the time until the next request is (or -1).
  int apply_requests() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<pid_t, CoverRequest>> todo;
    std::set<pid_t> gone;
    int next_ms = -1;
    {
      std::lock_guard lock(mu_);
      gone.swap(dropping_);
      for (auto it = requests_.begin(); it != requests_.end();) {
        CoverRequest& r = it->second;
        const bool due = r.due <= now;
        if (!r.program_done || due) todo.emplace_back(it->first, r);
        r.program_done = true;
        if (due || !r.libraries) {
          it = requests_.erase(it);
          continue;
        }
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(r.due - now).count() + 1;
        next_ms = next_ms < 0 ? static_cast<int>(wait) : std::min(next_ms, static_cast<int>(wait));
        ++it;
      }
    }
    for (pid_t pid : gone) drop(pid);
    for (const auto& [pid, r] : todo) {
      if (!r.program_done) {
        cover_program(pid, r.exe);
        release_held(pid);   // its own probes are in (or it has none): it may run
      }
      if (opts_.everyone) continue;
      // Libraries: on when due; off at once when not asked for.
      if (!r.libraries) cover_libraries(pid, false);
      else if (r.due <= now) cover_libraries(pid, true);
    }
    if (now >= next_sweep_) {
      sweep_held();
      next_sweep_ = now + std::chrono::milliseconds(kHoldSweepMs);
    }
    return next_ms < 0 ? kHoldSweepMs : std::min(next_ms, kHoldSweepMs);
  }

  void run() {
    pollfd fds[2] = {{ring_buffer__epoll_fd(rb_.get()), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    // In audit mode the kernel does not wake this thread per record (only when the ring
    // is a quarter full): it drains on this tick instead, which keeps a wake-up and two
    // context switches off every TLS write of the agent.
    const int tick_ms = obj_->stop_on_write() ? -1 : kDrainTickMs;
    int next_ms = -1;
    for (;;) {
      int timeout = tick_ms;
      if (next_ms >= 0) timeout = timeout < 0 ? next_ms : std::min(timeout, next_ms);
      if (::poll(fds, 2, timeout) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      // The wake-up is read before the exits are taken: an exit noted after this read
      // wakes the next poll at once.
      if (fds[1].revents != 0) {
        std::uint64_t v;
        if (::read(wake_.get(), &v, sizeof v) < 0 && errno != EAGAIN) return;
      }
      std::vector<pid_t> exited;
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        exited.swap(exited_);
      }
      // Every write of an exited process went into the ring before its exit: this drain
      // reads them, then the process may be forgotten.
      if (ring_buffer__consume(rb_.get()) < 0) return;
      if (opts_.on_exited)
        for (pid_t pid : exited) opts_.on_exited(pid);
      next_ms = apply_requests();
    }
  }

  TlsTapOptions opts_;
  std::shared_ptr<SensorObject> obj_;
  LinkPtr send_link_;
  std::vector<FileProbes> libraries_;        // the system's libssl / libgnutls
  std::vector<UniqueFd> everyone_links_;     // full: the libraries' links
  std::vector<UniqueFd> program_links_;      // full: programs with their own TLS
  std::set<ProgramFile> everyone_files_;
  std::map<pid_t, ProcessLinks> links_;      // per process (tap thread only)
  std::map<ProgramFile, FileProbes> own_tls_;   // tap thread only
  ProgramTlsCache cache_;                        // kept between runs
  std::chrono::steady_clock::time_point next_sweep_{};
  LinkCloser closer_;
  std::string last_attach_error_;
  RingBufferPtr rb_;
  UniqueFd wake_;   // eventfd: requests, or the end
  std::thread thread_;
  std::uint64_t lost_at_stop_ = 0;

  mutable std::mutex mu_;
  std::map<pid_t, CoverRequest> requests_;
  std::set<pid_t> dropping_;
  std::vector<pid_t> exited_;                // exits whose writes are still to drain
  std::vector<std::string> attached_;
  ExecHolds holds_;
  bool stopping_ = false;
};

}  // namespace

Result<std::unique_ptr<TlsTap>> TlsTap::start(std::shared_ptr<SensorObject> obj, TlsTapOptions opts) {
  if (auto why = tls_tap_unavailable_reason(); !why.empty()) return make_error(ErrorKind::Denied, why);
  if (!obj) return make_error(ErrorKind::Internal, "the TLS tap needs the sensors' BPF object");
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return make_error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));
  const bool everyone = opts.everyone;
  auto tap = std::make_unique<BpfTlsTap>(std::move(opts), std::move(obj), std::move(wake));
  if (auto st = tap->prepare_system_libraries(); !st) return st.take_error();
  tap->prepare_holds();
  if (everyone)
    if (auto st = tap->attach_everyone(); !st) return st.take_error();
  if (auto st = tap->start_consumer(); !st) return st.take_error();
  return std::unique_ptr<TlsTap>(std::move(tap));
}

#endif  // KZ_HAVE_BPF

}  // namespace kz
