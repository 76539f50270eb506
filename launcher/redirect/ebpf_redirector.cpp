// The privileged redirector: bpf/redirect.bpf.c attached to a cgroup made for the run.
//
// Start-up order (each step undone by RAII if a later one fails, so a failed start
// leaves nothing behind): cgroup -> open skeleton, set .rodata -> load -> fill ports and
// the cgroup array -> attach -> exec-event consumer thread.
#include "redirect/redirector.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/bpf_support.h"
#include "core/unique_fd.h"
#include "redirect/min_btf.h"
#include "redirect/run_cgroup.h"
#include "core/signal_free_thread.h"

#if KZ_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

// bpf/ (shared structs) and the bpf build directory (skeletons) are on the include path.
#include "redirect_shared.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "redirect.skel.h"
#pragma GCC diagnostic pop
#endif

namespace kz {
namespace {

// What loading and attaching needs (kernel/bpf/syscall.c): CAP_BPF to load, CAP_NET_ADMIN
// for the cgroup socket programs, CAP_PERFMON for the tracepoints; CAP_SYS_ADMIN stands
// in for each of them.
[[maybe_unused]] std::string missing_caps() {
  const std::uint64_t caps = effective_caps();
  auto has = [caps](int bit) { return (caps >> bit) & 1u; };
  if (has(kCapSysAdmin)) {
    if (has(kCapNetAdmin)) return "";
    return "CAP_NET_ADMIN";
  }
  std::string missing;
  auto need = [&](int bit, const char* name) {
    if (!has(bit)) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  need(kCapBpf, "CAP_BPF");
  need(kCapNetAdmin, "CAP_NET_ADMIN");
  need(kCapPerfmon, "CAP_PERFMON");
  return missing;
}

std::string cheap_checks() {
#if !KZ_HAVE_BPF
  return "kz was built without eBPF support: clang, bpftool or kernel BTF were missing at build time";
#else
  if (const auto m = missing_caps(); !m.empty())
    return "missing " + m + " (the eBPF redirect needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, "
           "or CAP_SYS_ADMIN and CAP_NET_ADMIN: run kz as root)";
  // The programs report thread-group ids as the initial PID namespace numbers them;
  // inside another one they would name the wrong processes (route(), OriginalDestination).
  if (!in_initial_pid_namespace())
    return "kz runs in a PID namespace other than the initial one, where the eBPF redirect's "
           "process ids would not match";
  if (::access(kKernelBtfPath, R_OK) != 0)
    return std::string("the kernel has no BTF (") + kKernelBtfPath + "), which the CO-RE programs need";
  auto dir = own_cgroup2_dir();
  if (!dir) return dir.error().message;
  if (::access(dir->c_str(), W_OK) != 0)
    return "cannot create a cgroup under " + *dir + ": " + std::strerror(errno);
  return "";
#endif
}

}  // namespace

#if !KZ_HAVE_BPF

Result<std::unique_ptr<Redirector>> make_ebpf_redirector(const RedirectSettings&) {
  return make_error(ErrorKind::Internal, cheap_checks());
}

#else

namespace {

using SkelPtr = std::unique_ptr<kz_redirect, BpfDestroy<kz_redirect, kz_redirect__destroy>>;

class EbpfRedirector final : public Redirector {
 public:
  EbpfRedirector(RedirectSettings s, RunCgroup cg, SkelPtr skel, UniqueFd stop)
      : settings_(std::move(s)), cgroup_(std::move(cg)), skel_(std::move(skel)), stop_fd_(std::move(stop)),
        describe_("ebpf (cgroup/connect4+6 on " + cgroup_.path() + ")") {}
  ~EbpfRedirector() override { stop(); }

  // The ring buffer calls back into this object, so it is opened once the object is in
  // place (not in the constructor's member list).
  Status start() {
    rb_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.exec_events), &EbpfRedirector::on_exec, this, nullptr));
    if (!rb_) return bpf_load_error("cannot open the exec-event ring buffer", errno, nullptr);
    consumer_ = signal_free_thread([this] { consume(); });
    return ok_status();
  }

  // ring_buffer__new's callback: a process of the run executed a new program.
  static int on_exec(void* ctx, void* data, std::size_t size) {
    if (size < sizeof(kz_exec_event)) return 0;
    kz_exec_event e;
    std::memcpy(&e, data, sizeof e);
    static_cast<EbpfRedirector*>(ctx)->classify(static_cast<pid_t>(e.tgid));
    return 0;
  }

  std::string describe() const override { return describe_; }
  std::string run_cgroup() const override { return cgroup_.path(); }

  int child_prepare() noexcept override { return cgroup_.join(); }

  Status after_fork(pid_t) override { return ok_status(); }

  std::optional<OriginalDestination> take_original(const sockaddr_storage& client) override {
    kz_redir_client key{};
    if (client.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(client);
      key.family = KZ_AF_INET;
      key.addr[0] = in.sin_addr.s_addr;
      key.port = ntohs(in.sin_port);
    } else if (client.ss_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(client);
      key.port = ntohs(in6.sin6_port);
      if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
        // A dual-stack listener shows an IPv4 client as ::ffff:a.b.c.d; the kernel side
        // recorded it as the IPv4 connection it is.
        key.family = KZ_AF_INET;
        std::memcpy(&key.addr[0], &in6.sin6_addr.s6_addr[12], 4);
      } else {
        key.family = KZ_AF_INET6;
        std::memcpy(key.addr, &in6.sin6_addr, 16);
      }
    } else {
      return std::nullopt;
    }
    kz_redir_dst d{};
    {
      std::lock_guard lock(mu_);
      if (!skel_) return std::nullopt;
      // Lookup and delete in one step: each answer is given once, even to two racing
      // callers.
      if (bpf_map__lookup_and_delete_elem(skel_->maps.by_client, &key, sizeof key, &d, sizeof d, 0) != 0)
        return std::nullopt;
    }
    OriginalDestination out;
    out.pid = static_cast<pid_t>(d.tgid);
    if (d.family == KZ_AF_INET) {
      auto& in = reinterpret_cast<sockaddr_in&>(out.addr);
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = d.addr[0];
      in.sin_port = d.port;
      out.len = sizeof(sockaddr_in);
    } else {
      auto& in6 = reinterpret_cast<sockaddr_in6&>(out.addr);
      in6.sin6_family = AF_INET6;
      std::memcpy(&in6.sin6_addr, d.addr, 16);
      in6.sin6_port = d.port;
      out.len = sizeof(sockaddr_in6);
    }
    return out;
  }

  void mark_shim_served(pid_t pid) override { set_verdict(pid, KZ_VERDICT_PASS); }

  void stop() override {
    // The consumer must be gone before the skeleton (its maps) and the ring buffer go.
    if (consumer_.joinable()) {
      const std::uint64_t one = 1;
      if (::write(stop_fd_.get(), &one, sizeof one) != sizeof one) {
        // An eventfd write only fails on counter overflow; the thread still sees it readable.
      }
      consumer_.join();
    }
    std::lock_guard lock(mu_);
    rb_.reset();
    skel_.reset();  // destroys the links: the programs detach here
    (void)cgroup_.remove();
  }

 private:
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

  void classify(pid_t pid) {
    if (!settings_.route) return;  // unclassified processes are redirected
    Route r = Route::Proxy;
    try {
      r = settings_.route(pid);
    } catch (...) {
      return;  // same as no answer: the proxy classifies it when it connects
    }
    // Called on the consumer thread, which stop() joins before the skeleton goes.
    set_verdict_unlocked(pid, r == Route::Shim ? KZ_VERDICT_PASS : KZ_VERDICT_REDIRECT);
  }

  void set_verdict(pid_t pid, std::uint8_t v) {
    std::lock_guard lock(mu_);
    set_verdict_unlocked(pid, v);
  }
  void set_verdict_unlocked(pid_t pid, std::uint8_t v) {
    if (!skel_ || pid <= 0) return;
    const std::uint32_t key = static_cast<std::uint32_t>(pid);
    bpf_map__update_elem(skel_->maps.verdicts, &key, sizeof key, &v, sizeof v, BPF_ANY);
  }

  RedirectSettings settings_;
  RunCgroup cgroup_;
  // skel_ and rb_ are reset by stop(); mu_ keeps the proxy's calls off them meanwhile.
  std::mutex mu_;
  SkelPtr skel_;
  RingBufferPtr rb_;
  UniqueFd stop_fd_;   // eventfd: wakes the consumer to end
  std::thread consumer_;
  std::string describe_;
};

}  // namespace

Result<std::unique_ptr<Redirector>> make_ebpf_redirector(const RedirectSettings& s) {
  if (auto why = cheap_checks(); !why.empty()) return make_error(ErrorKind::Denied, why);
  const std::set<std::uint16_t> ports(s.ports.begin(), s.ports.end());
  if (ports.size() > KZ_REDIR_MAX_PORTS)
    return make_error(ErrorKind::Config, "too many redirected ports (" + std::to_string(ports.size()) +
                                             ", at most " + std::to_string(KZ_REDIR_MAX_PORTS) + ")");
  if (s.proxy4.sin_port == 0 && s.proxy6.sin6_port == 0)
    return make_error(ErrorKind::Internal, "the eBPF redirect was given no proxy listener");

  auto cg = RunCgroup::create();
  if (!cg) return cg.take_error();

  // Declared after the cgroup: on failure the programs detach before it is removed.
  LibbpfLogCapture log;
  const MinBtf btf = MinBtf::open();
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  opts.btf_custom_path = btf.path();
  SkelPtr skel(kz_redirect__open_opts(&opts));
  if (!skel) return bpf_load_error("cannot open the eBPF redirect programs", errno, &log);
  kz_redir_config& c = skel->rodata->kz_config;
  c.proxy4_addr = s.proxy4.sin_addr.s_addr;
  c.proxy4_port = s.proxy4.sin_port;
  std::memcpy(c.proxy6_addr, &s.proxy6.sin6_addr, sizeof c.proxy6_addr);
  c.proxy6_port = s.proxy6.sin6_port;
  c.all_programs = s.all_programs ? 1 : 0;
  if (int err = kz_redirect__load(skel.get()); err != 0)
    return bpf_load_error("cannot load the eBPF redirect programs", err, &log);

  for (std::uint16_t port : ports) {
    const std::uint8_t one = 1;
    if (port == 0) continue;
    if (int err = bpf_map__update_elem(skel->maps.ports, &port, sizeof port, &one, sizeof one, BPF_ANY))
      return bpf_load_error("cannot fill the redirected-ports map", err, &log);
  }
  {
    const std::uint32_t slot = 0;
    const std::uint32_t fd = static_cast<std::uint32_t>(cg->dir_fd());
    if (int err = bpf_map__update_elem(skel->maps.run_cgroup, &slot, sizeof slot, &fd, sizeof fd, BPF_ANY))
      return bpf_load_error("cannot register the run cgroup", err, &log);
  }

  // Cgroup programs on the run cgroup only; the tracepoints are global and filter on
  // run_cgroup themselves. Links are owned by the skeleton and detach when it goes.
  struct CgroupProg {
    bpf_program* prog;
    bpf_link** link;
    const char* name;
  };
  const CgroupProg cgroup_progs[] = {
      {skel->progs.kz_connect4, &skel->links.kz_connect4, "cgroup/connect4"},
      {skel->progs.kz_connect6, &skel->links.kz_connect6, "cgroup/connect6"},
      {skel->progs.kz_sockops, &skel->links.kz_sockops, "sockops"},
      {skel->progs.kz_getpeername4, &skel->links.kz_getpeername4, "cgroup/getpeername4"},
      {skel->progs.kz_getpeername6, &skel->links.kz_getpeername6, "cgroup/getpeername6"},
  };
  for (const auto& p : cgroup_progs) {
    *p.link = bpf_program__attach_cgroup(p.prog, cg->dir_fd());
    if (!*p.link) {
      const int err = errno;
      return bpf_load_error(std::string("cannot attach ") + p.name + " to " + cg->path(), err, &log);
    }
  }
  skel->links.kz_exec = bpf_program__attach(skel->progs.kz_exec);
  if (!skel->links.kz_exec) return bpf_load_error("cannot attach the exec tracepoint", errno, &log);
  skel->links.kz_exit = bpf_program__attach(skel->progs.kz_exit);
  if (!skel->links.kz_exit) return bpf_load_error("cannot attach the exit tracepoint", errno, &log);

  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return make_error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));

  auto r = std::make_unique<EbpfRedirector>(s, std::move(*cg), std::move(skel), std::move(stop));
  if (auto st = r->start(); !st) return st.take_error();
  return std::unique_ptr<Redirector>(std::move(r));
}

#endif  // KZ_HAVE_BPF

std::string ebpf_redirect_unavailable_reason() { return cheap_checks(); }

}  // namespace kz
