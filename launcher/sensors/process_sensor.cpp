// The process-tree sensor's loader and event table (see process_sensor.h).
//
// Membership lives in the kernel (the members map), so contains() is one map lookup and
// is exact at the moment it is asked. The lineage lives here, built from the events ring
// buffer; lineage() compares the per-process exec count in the map with the events read
// so far, so that an answer given right after an exec names the new program, not the old.
#include "sensors/process_sensor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/bpf_support.h"
#include "core/unique_fd.h"
#include "core/signal_free_thread.h"

#include "sensors/sensor_object.h"

#if KZ_HAVE_BPF
#include <bpf/bpf.h>

#include "sensors/sensors_skel.h"
#endif

namespace kz {
namespace {

std::string cheap_checks() {
#if !KZ_HAVE_BPF
  return "kz was built without eBPF support: clang, bpftool or kernel BTF were missing at build time";
#else
  // Loading needs CAP_BPF, attaching tracing programs CAP_PERFMON (kernel/bpf/syscall.c);
  // CAP_SYS_ADMIN stands in for both.
  const std::uint64_t caps = effective_caps();
  auto has = [caps](int bit) { return ((caps >> bit) & 1u) != 0; };
  if (!has(kCapSysAdmin) && !(has(kCapBpf) && has(kCapPerfmon)))
    return "missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run kz as root";
  // The tracepoints report pids as the initial PID namespace numbers them; SO_PEERCRED
  // and the proxy report them as kz's namespace does.
  if (!in_initial_pid_namespace())
    return "kz runs in a PID namespace other than the initial one, where the sensor's process ids would not match";
  if (::access(kKernelBtfPath, R_OK) != 0)
    return std::string("the kernel has no BTF (") + kKernelBtfPath + "), which the CO-RE programs need";
  return "";
#endif
}

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string process_sensor_unavailable_reason() { return cheap_checks(); }

#if !KZ_HAVE_BPF

Result<std::unique_ptr<ProcessSensor>> ProcessSensor::start(pid_t) {
  return make_error(ErrorKind::Denied, cheap_checks());
}

Result<std::unique_ptr<ProcessSensor>> ProcessSensor::start(pid_t, std::shared_ptr<SensorObject>) {
  return make_error(ErrorKind::Denied, cheap_checks());
}

#else

namespace {

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

std::uint64_t boottime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// How long lineage() waits for events the kernel has sent and the event thread has not
// applied yet. They normally arrive within microseconds; the bound only matters when an
// event was lost (ring buffer full), and then the answer is given with what is known.
constexpr std::chrono::milliseconds kCatchUp{500};
// A lineage longer than this is cut at the top (a fork bomb, not a real agent).
constexpr int kMaxDepth = 1024;

class BpfProcessSensor final : public ProcessSensor {
 public:
  BpfProcessSensor(pid_t launcher, std::shared_ptr<SensorObject> obj, std::vector<LinkPtr> links, UniqueFd stop_fd)
      : launcher_(launcher), obj_(std::move(obj)), links_(std::move(links)), stop_fd_(std::move(stop_fd)) {}
  ~BpfProcessSensor() override { stop(); }

  // The ring buffer calls back into this object, so it is opened once the object is in
  // place.
  Status start_consumer() {
    rb_.reset(ring_buffer__new(bpf_map__fd(obj_->skel()->maps.events), &BpfProcessSensor::on_event, this, nullptr));
    if (!rb_) return bpf_load_error("cannot open the process-event ring buffer", errno, nullptr);
    consumer_ = signal_free_thread([this] { consume(); });
    return ok_status();
  }

  Status add_root(pid_t root) override {
    if (root <= 0 || root == launcher_) return make_error(ErrorKind::Internal, "not a valid run root");
    {
      std::lock_guard lock(table_mu_);
      Entry& e = table_[root];
      e.p.pid = root;
      e.p.ppid = launcher_;
      e.p.start_ns = boottime_ns();
      roots_.insert(root);
    }
    std::lock_guard lock(skel_mu_);
    if (!obj_) return make_error(ErrorKind::Internal, "the process sensor is stopped");
    const std::uint32_t key = static_cast<std::uint32_t>(root);
    const kz_pt_member m{static_cast<std::uint32_t>(launcher_), 0};
    if (int err = bpf_map__update_elem(obj_->skel()->maps.members, &key, sizeof key, &m, sizeof m, BPF_ANY))
      return bpf_load_error("cannot register the run's root process", err, nullptr);
    return ok_status();
  }

  bool contains(pid_t pid) const override { return pid > 0 && pid != launcher_ && member(pid).has_value(); }

  std::vector<std::string> lineage(pid_t pid) const override {
    std::vector<std::string> up;   // from pid towards the root
    const auto deadline = std::chrono::steady_clock::now() + kCatchUp;
    pid_t cur = pid;
    std::unique_lock lock(table_mu_);
    for (int depth = 0; cur > 0 && cur != launcher_ && depth < kMaxDepth; ++depth) {
      // Wait (bounded) until every exec of `cur` the kernel announced has been read.
      lock.unlock();
      const auto m = member(cur);
      lock.lock();
      // Not a live member: nothing more will come for it, so answer from the table.
      auto seen = [&] {
        if (!m) return true;
        auto it = table_.find(cur);
        return it != table_.end() && it->second.execs_seen >= m->execs;
      };
      if (!seen()) events_cv_.wait_until(lock, deadline, seen);
      auto it = table_.find(cur);
      if (it == table_.end()) {
        if (!m) break;   // never part of the run (or its fork event was lost)
        up.push_back("?");
        cur = static_cast<pid_t>(m->parent);
        continue;
      }
      up.push_back(it->second.p.exe.empty() ? "?" : basename_of(it->second.p.exe));
      if (roots_.count(cur) != 0) break;
      cur = it->second.p.ppid;
    }
    return {up.rbegin(), up.rend()};
  }

  std::optional<SensedProcess> info(pid_t pid) const override {
    std::lock_guard lock(table_mu_);
    auto it = table_.find(pid);
    if (it == table_.end()) return std::nullopt;
    return it->second.p;
  }

  std::vector<SensedProcess> snapshot() const override {
    std::lock_guard lock(table_mu_);
    std::vector<SensedProcess> out;
    out.reserve(table_.size());
    for (const auto& [pid, e] : table_) out.push_back(e.p);
    return out;
  }

  bool wait_exited(pid_t pid, std::chrono::milliseconds timeout) const override {
    std::unique_lock lock(table_mu_);
    return events_cv_.wait_for(lock, timeout, [&] {
      auto it = table_.find(pid);
      return it != table_.end() && it->second.p.exited;
    });
  }

  int members_map_fd() const override {
    std::lock_guard lock(skel_mu_);
    return obj_ ? bpf_map__fd(obj_->skel()->maps.members) : -1;
  }

  void set_listener(Listener l) override {
    std::lock_guard lock(listener_mu_);
    listener_ = std::move(l);
  }

  void stop() override {
    // The consumer must be gone before the skeleton (its maps) and the ring buffer go.
    if (consumer_.joinable()) {
      const std::uint64_t one = 1;
      if (::write(stop_fd_.get(), &one, sizeof one) != sizeof one) {
        // An eventfd write only fails on counter overflow; the thread still sees it readable.
      }
      consumer_.join();
    }
    std::lock_guard lock(skel_mu_);
    rb_.reset();
    links_.clear();   // the tracepoints detach here
    obj_.reset();
  }

 private:
  struct Entry {
    SensedProcess p;
    std::uint32_t execs_seen = 0;
  };

  std::optional<kz_pt_member> member(pid_t pid) const {
    if (pid <= 0) return std::nullopt;
    std::lock_guard lock(skel_mu_);
    if (!obj_) return std::nullopt;
    const std::uint32_t key = static_cast<std::uint32_t>(pid);
    kz_pt_member m{};
    if (bpf_map__lookup_elem(obj_->skel()->maps.members, &key, sizeof key, &m, sizeof m, 0) != 0) return std::nullopt;
    return m;
  }

  static int on_event(void* ctx, void* data, std::size_t size) {
    if (size < sizeof(kz_pt_event)) return 0;
    kz_pt_event e;
    std::memcpy(&e, data, sizeof e);
    static_cast<BpfProcessSensor*>(ctx)->apply(e);
    return 0;
  }

  void apply(const kz_pt_event& ev) {
    const auto pid = static_cast<pid_t>(ev.tgid);
    std::string exec_path;
    std::uint32_t execs = 0;
    {
      std::lock_guard lock(table_mu_);
      switch (ev.type) {
        case KZ_PT_EVENT_FORK: {
          // A fork runs the parent's program until it executes its own: it inherits the
          // parent's exe and argv. A pid seen before belonged to an exited process; the
          // new one replaces it (lineages through the old one were answered already).
          Entry e;
          e.p.pid = pid;
          e.p.ppid = static_cast<pid_t>(ev.parent);
          e.p.start_ns = ev.ts;
          if (auto it = table_.find(e.p.ppid); it != table_.end()) {
            e.p.exe = it->second.p.exe;
            e.p.argv = it->second.p.argv;
          }
          roots_.erase(pid);
          table_[pid] = std::move(e);
          break;
        }
        case KZ_PT_EVENT_EXEC: {
          Entry& e = table_[pid];
          e.p.pid = pid;
          if (e.p.ppid == 0) e.p.ppid = static_cast<pid_t>(ev.parent);
          e.p.exe.assign(ev.filename, strnlen(ev.filename, sizeof ev.filename));
          exec_path = e.p.exe;
          e.p.argv.clear();
          const std::size_t n = std::min<std::size_t>(ev.argv_len, sizeof ev.argv);
          for (std::size_t i = 0; i < n;) {
            const char* s = ev.argv + i;
            const std::size_t len = strnlen(s, n - i);
            e.p.argv.emplace_back(s, len);
            i += len + 1;
          }
          e.execs_seen = std::max(e.execs_seen, ev.exec_seq);
          e.p.execs = e.execs_seen;
          execs = e.execs_seen;
          break;
        }
        case KZ_PT_EVENT_EXIT: {
          Entry& e = table_[pid];
          e.p.pid = pid;
          if (e.p.ppid == 0) e.p.ppid = static_cast<pid_t>(ev.parent);
          e.p.exited = true;
          e.p.exit_status = ev.exit_code;
          break;
        }
        default:
          return;
      }
    }
    events_cv_.notify_all();
    std::lock_guard lock(listener_mu_);
    if (ev.type == KZ_PT_EVENT_EXEC && listener_.exec) listener_.exec(pid, exec_path, execs);
    if (ev.type == KZ_PT_EVENT_FORK && listener_.fork) listener_.fork(pid, static_cast<pid_t>(ev.parent));
    if (ev.type == KZ_PT_EVENT_EXIT && listener_.exit) listener_.exit(pid);
  }

  void consume() {
    pollfd fds[2] = {{ring_buffer__epoll_fd(rb_.get()), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if (fds[0].revents != 0 && ring_buffer__consume(rb_.get()) < 0) return;
    }
  }

  const pid_t launcher_;
  // obj_, links_ and rb_ are reset by stop(); skel_mu_ keeps the callers' map lookups
  // off them meanwhile. Never held together with table_mu_.
  mutable std::mutex skel_mu_;
  std::shared_ptr<SensorObject> obj_;
  std::vector<LinkPtr> links_;
  RingBufferPtr rb_;
  UniqueFd stop_fd_;   // eventfd: wakes the consumer to end
  std::thread consumer_;

  std::mutex listener_mu_;
  Listener listener_;

  mutable std::mutex table_mu_;
  mutable std::condition_variable events_cv_;
  std::unordered_map<pid_t, Entry> table_;
  std::set<pid_t> roots_;
};

}  // namespace

Result<std::unique_ptr<ProcessSensor>> ProcessSensor::start(pid_t launcher) {
  auto obj = SensorObject::load(false);
  if (!obj) return obj.take_error();
  return start(launcher, std::move(*obj));
}

Result<std::unique_ptr<ProcessSensor>> ProcessSensor::start(pid_t launcher, std::shared_ptr<SensorObject> obj) {
  if (auto why = cheap_checks(); !why.empty()) return make_error(ErrorKind::Denied, why);
  if (!obj) return make_error(ErrorKind::Internal, "the process sensor needs the sensors' BPF object");
  LibbpfLogCapture log;
  std::vector<LinkPtr> links;
  for (bpf_program* p : {obj->skel()->progs.kz_pt_fork, obj->skel()->progs.kz_pt_exec, obj->skel()->progs.kz_pt_exit}) {
    LinkPtr l(bpf_program__attach(p));
    if (!l) return bpf_load_error("cannot attach the process-tree tracepoints", errno, &log);
    links.push_back(std::move(l));
  }
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return make_error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));
  auto s = std::make_unique<BpfProcessSensor>(launcher, std::move(obj), std::move(links), std::move(stop));
  if (auto st = s->start_consumer(); !st) return st.take_error();
  return std::unique_ptr<ProcessSensor>(std::move(s));
}

#endif  // KZ_HAVE_BPF

}  // namespace kz
