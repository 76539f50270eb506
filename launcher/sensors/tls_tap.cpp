// The TLS tap's loader, attachments and event thread (see tls_tap.h).
//
// Uprobes are attached for every process on the host (pid -1) and filtered in the
// kernel by the run's members map: attaching per process would race its first write.
// The cost for other processes is the uprobe trap itself (about a microsecond per write)
// while the run lasts.
#include "sensors/tls_tap.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "core/bpf_support.h"
#include "core/unique_fd.h"
#include "core/host_facts.h"
#include "redirect/program_route.h"
#include "core/signal_free_thread.h"
#include "sensors/elf_symbols.h"
#include "sensors/process_sensor.h"

#if KZ_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tlstap_shared.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "tlstap.skel.h"
#pragma GCC diagnostic pop
#endif

namespace kz {

std::string tls_tap_unavailable_reason() {
  if (auto why = process_sensor_unavailable_reason(); !why.empty()) return why;
  if (loader_path("libssl.so.3").empty() && loader_path("libgnutls.so.30").empty())
    return "neither libssl.so.3 nor libgnutls.so.30 is installed";
  return "";
}

Result<std::unique_ptr<TlsTap>> TlsTap::start(TlsTapOptions opts) {
  auto loaded = load(opts.members_fd, opts.stop_on_write);
  if (!loaded) return loaded.take_error();
  return start(std::move(*loaded), std::move(opts));
}

#if !KZ_HAVE_BPF

class LoadedTlsTap {};
void LoadedTlsTapDeleter::operator()(LoadedTlsTap* p) const { delete p; }

Result<LoadedTlsTapPtr> TlsTap::load(int, bool) {
  return make_error(ErrorKind::Denied, tls_tap_unavailable_reason());
}

Result<std::unique_ptr<TlsTap>> TlsTap::start(LoadedTlsTapPtr, TlsTapOptions) {
  return make_error(ErrorKind::Denied, tls_tap_unavailable_reason());
}

#else

namespace {

using SkelPtr = std::unique_ptr<kz_tlstap, BpfDestroy<kz_tlstap, kz_tlstap__destroy>>;
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

constexpr int kDrainTickMs = 10;

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
constexpr int kBpfTraceUprobeMulti = 48;
struct UprobeMultiAttr {
  std::uint32_t prog_fd, target_fd, attach_type, flags;
  std::uint64_t path, offsets, ref_ctr_offsets, cookies;
  std::uint32_t cnt, um_flags, pid;
  std::uint32_t pad[17];   // the rest of union bpf_attr: the kernel wants it zero
};

int uprobe_multi_link(int prog_fd, const std::string& path, const std::vector<std::uint64_t>& offsets,
                      const std::vector<std::uint64_t>& cookies) {
  UprobeMultiAttr a{};
  a.prog_fd = static_cast<std::uint32_t>(prog_fd);
  a.attach_type = kBpfTraceUprobeMulti;
  a.path = reinterpret_cast<std::uintptr_t>(path.c_str());
  a.offsets = reinterpret_cast<std::uintptr_t>(offsets.data());
  a.cookies = reinterpret_cast<std::uintptr_t>(cookies.data());
  a.cnt = static_cast<std::uint32_t>(offsets.size());
  const long fd = ::syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof a);
  return fd < 0 ? -1 : static_cast<int>(fd);
}

class BpfTlsTap final : public TlsTap {
 public:
  BpfTlsTap(TlsTapOptions o, SkelPtr skel, UniqueFd wake)
      : opts_(std::move(o)), skel_(std::move(skel)), wake_(std::move(wake)) {}
  ~BpfTlsTap() override { stop(); }

  // The probes for one file, OpenSSL's and GnuTLS's functions, whichever it defines, as
  // one uprobe_multi link. Returns how many of the write functions it defines (0: no
  // link was made).
  int attach_file(const std::string& path) {
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
    std::vector<std::string> names;
    for (const auto& p : kProbes) names.emplace_back(p.first);
    const auto found = elf_function_offsets(path, names);
    std::vector<std::uint64_t> offsets, cookies;
    int writes = 0;
    for (const auto& [name, fn] : kProbes) {
      auto it = found.find(name);
      if (it == found.end()) continue;
      offsets.push_back(it->second);
      cookies.push_back(fn);
      if (fn <= KZ_TAP_FN_GNUTLS_RECORD_SEND) ++writes;
    }
    if (writes == 0) return 0;
    UniqueFd link(uprobe_multi_link(bpf_program__fd(skel_->progs.kz_tap), path, offsets, cookies));
    if (!link) {
      last_attach_error_ = path + ": " + std::strerror(errno);
      return 0;
    }
    links_.push_back(std::move(link));
    return writes;
  }

  Status attach_system_libraries() {
    for (const char* soname : {"libssl.so.3", "libgnutls.so.30"}) {
      const std::string path = loader_path(soname);
      if (path.empty()) continue;
      if (attach_file(path) > 0) {
        remember_file(path);
        std::lock_guard lock(mu_);
        attached_.push_back(std::string(soname) + " (" + path + ")");
      }
    }
    if (attached_.empty())
      return make_error(ErrorKind::Denied, "no TLS library to tap: libssl.so.3 and libgnutls.so.30 could not be probed" +
                                               (last_attach_error_.empty() ? "" : " (" + last_attach_error_ + ")"));
    return ok_status();
  }

  Status attach_send_hook() {
    LibbpfLogCapture log;
    bpf_link* l = bpf_program__attach(skel_->progs.kz_tcp_sendmsg);
    if (l == nullptr) return bpf_load_error("cannot attach the TLS tap's tcp_sendmsg hook", errno, &log);
    send_link_.reset(l);
    return ok_status();
  }

  Status start_consumer() {
    rb_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.taps), &BpfTlsTap::on_event, this, nullptr));
    if (!rb_) return bpf_load_error("cannot open the TLS tap's ring buffer", errno, nullptr);
    thread_ = signal_free_thread([this] { run(); });
    return ok_status();
  }

  void watch_program(pid_t pid, const std::string& exe) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      pending_.emplace_back(pid, exe);
    }
    wake();
  }

  std::vector<std::string> attached() const override {
    std::lock_guard lock(mu_);
    return attached_;
  }

  std::uint64_t lost() const override {
    if (!skel_) return lost_at_stop_;
    return read_lost();
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
    // Detach first, then read what was reported up to then: in kill mode each of those
    // writers is stopped and waits for this answer.
    detach_all();
    if (rb_) ring_buffer__consume(rb_.get());
    lost_at_stop_ = skel_ ? read_lost() : 0;
    rb_.reset();
    skel_.reset();
  }

 private:
  void wake() {
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) != sizeof one) {
      // Only fails on counter overflow; the thread sees it readable either way.
    }
  }

  // Removing a uprobe link waits for an RCU grace period (0.1 to 0.2 s here): one link per
  // file (not one per probe, which made 15 waits) and the files' links closed in
  // parallel keep the end of a run short.
  void detach_all() {
    send_link_.reset();
    std::vector<std::thread> closers;
    closers.reserve(links_.size());
    for (auto& l : links_) closers.push_back(signal_free_thread([link = std::move(l)]() mutable { link.reset(); }));
    for (auto& t : closers) t.join();
    links_.clear();
  }

  std::uint64_t read_lost() const {
    const std::uint32_t zero = 0;
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return 0;
    std::vector<std::uint64_t> per(static_cast<std::size_t>(ncpu));
    if (bpf_map__lookup_elem(skel_->maps.lost, &zero, sizeof zero, per.data(), per.size() * sizeof(std::uint64_t), 0) != 0)
      return 0;
    std::uint64_t sum = 0;
    for (auto v : per) sum += v;
    return sum;
  }

  // Remembers a file by device and inode; false when it was probed already.
  bool remember_file(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return false;
    return files_.insert({st.st_dev, st.st_ino}).second;
  }

  void attach_program(pid_t pid, const std::string& exe) {
    // The file the process runs, whatever name it was started by.
    char buf[4096];
    const std::string proc = "/proc/" + std::to_string(pid) + "/exe";
    const ssize_t n = ::readlink(proc.c_str(), buf, sizeof buf - 1);
    const std::string path = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : exe;
    if (path.empty() || path[0] != '/') return;
    if (!remember_file(path)) return;
    if (!executable_defines_tls_write(path)) return;
    if (attach_file(path) > 0) {
      std::lock_guard lock(mu_);
      attached_.push_back(path + " (its own TLS library)");
    }
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
    } else if (opts_.stop_on_write) {
      ::kill(w.pid, SIGCONT);
    }
  }

  void run() {
    pollfd fds[2] = {{ring_buffer__epoll_fd(rb_.get()), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    // In audit mode the kernel does not wake this thread per record (only when the ring
    // is a quarter full): it drains on this tick instead, which keeps a wake-up and two
    // context switches off every TLS write of the agent.
    const int tick_ms = opts_.stop_on_write ? -1 : kDrainTickMs;
    for (;;) {
      if (::poll(fds, 2, tick_ms) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (ring_buffer__consume(rb_.get()) < 0) return;
      if (fds[1].revents == 0) continue;
      std::uint64_t v;
      if (::read(wake_.get(), &v, sizeof v) < 0 && errno != EAGAIN) return;
      std::deque<std::pair<pid_t, std::string>> todo;
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        todo.swap(pending_);
      }
      for (const auto& [pid, exe] : todo) attach_program(pid, exe);
    }
  }

  TlsTapOptions opts_;
  SkelPtr skel_;
  LinkPtr send_link_;
  std::vector<UniqueFd> links_;   // uprobe_multi links, one per probed file
  std::string last_attach_error_;
  RingBufferPtr rb_;
  UniqueFd wake_;   // eventfd: programs to probe, or the end
  std::thread thread_;
  std::set<std::pair<dev_t, ino_t>> files_;   // probed already (tap thread only, after start)
  std::uint64_t lost_at_stop_ = 0;

  mutable std::mutex mu_;
  std::deque<std::pair<pid_t, std::string>> pending_;
  std::vector<std::string> attached_;
  bool stopping_ = false;
};

}  // namespace

class LoadedTlsTap {
 public:
  SkelPtr skel;
  bool send_hook = true;
  bool stop_on_write = false;
};
void LoadedTlsTapDeleter::operator()(LoadedTlsTap* p) const { delete p; }

Result<LoadedTlsTapPtr> TlsTap::load(int members_fd, bool stop_on_write) {
  if (auto why = tls_tap_unavailable_reason(); !why.empty()) return make_error(ErrorKind::Denied, why);
  if (members_fd < 0) return make_error(ErrorKind::Internal, "the TLS tap needs the process sensor's members map");
  // The send hook (the peer of connections whose program feeds TLS through its own BIO)
  // needs a tracepoint some kernels lack: without it the rest still loads.
  LoadedTlsTapPtr loaded(new LoadedTlsTap);
  loaded->stop_on_write = stop_on_write;
  for (;;) {
    LibbpfLogCapture log;   // one capture at a time: attach_file() takes its own later
    loaded->skel.reset(kz_tlstap__open());
    SkelPtr& skel = loaded->skel;
    if (!skel) return bpf_load_error("cannot open the TLS tap", errno, &log);
    skel->rodata->kz_stop_on_write = stop_on_write ? 1 : 0;
    if (!loaded->send_hook) bpf_program__set_autoload(skel->progs.kz_tcp_sendmsg, false);
    bpf_program__set_expected_attach_type(skel->progs.kz_tap, static_cast<bpf_attach_type>(kBpfTraceUprobeMulti));
    if (int err = bpf_map__reuse_fd(skel->maps.members, members_fd); err != 0)
      return bpf_load_error("cannot share the process tree with the TLS tap", err, &log);
    const int err = kz_tlstap__load(skel.get());
    if (err == 0) break;
    if (!loaded->send_hook) return bpf_load_error("cannot load the TLS tap", err, &log);
    loaded->send_hook = false;
  }
  return loaded;
}

Result<std::unique_ptr<TlsTap>> TlsTap::start(LoadedTlsTapPtr loaded, TlsTapOptions opts) {
  if (!loaded || !loaded->skel) return make_error(ErrorKind::Internal, "the TLS tap was not loaded");
  if (loaded->stop_on_write != opts.stop_on_write)
    return make_error(ErrorKind::Internal, "the TLS tap was loaded for another --on-leak mode");
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return make_error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));
  const bool send_hook = loaded->send_hook;
  auto tap = std::make_unique<BpfTlsTap>(std::move(opts), std::move(loaded->skel), std::move(wake));
  if (send_hook)
    if (auto st = tap->attach_send_hook(); !st) return st.take_error();
  if (auto st = tap->attach_system_libraries(); !st) return st.take_error();
  if (auto st = tap->start_consumer(); !st) return st.take_error();
  return std::unique_ptr<TlsTap>(std::move(tap));
}

#endif  // KZ_HAVE_BPF

}  // namespace kz
