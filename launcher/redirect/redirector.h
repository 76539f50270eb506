// Transparent redirection for blind mode's fallback: the outbound TCP connections of
// programs the shim cannot serve (static, Go, Java, a bundled TLS library), or of every
// program with --blind=proxy, are sent to kz's TLS proxy instead of their destination.
// The program's own view is unchanged (its DNS answer, its connect() target); the proxy
// asks the redirector where each accepted connection was going.
//
// Two implementations, chosen at start-up (redirect/select.h):
//   ebpf     cgroup/connect4+6 (+ sock_ops, getpeername4/6) on a cgroup made for the run
//   seccomp  a user-notification supervisor on connect(); works without privileges
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kz/result.h"

namespace kz {

// Where a program's connection was going, and which process made it.
struct OriginalDestination {
  sockaddr_storage addr{};   // AF_INET or AF_INET6 (a v4-mapped v6 address stays AF_INET6)
  socklen_t len = 0;
  pid_t pid = 0;             // thread-group id of the connecting process (0: unknown)
};

// "1.2.3.4:443" / "[::1]:443"; "" for anything else.
std::string format_address(const sockaddr_storage& a);
// The port of an AF_INET/AF_INET6 address (host order); 0 otherwise.
std::uint16_t port_of(const sockaddr_storage& a);

// Who the shim can serve (redirect/program_route.h decides).
enum class Route { Shim, Proxy };

struct RedirectSettings {
  // The proxy's listeners: redirected IPv4 connects go to proxy4, IPv6 ones to proxy6
  // (v4-mapped IPv6 destinations go to ::ffff:<proxy4>).
  sockaddr_in proxy4{};
  sockaddr_in6 proxy6{};
  // Destination ports to redirect (443 and [blind] proxy_ports). Other ports, and UDP,
  // are never touched.
  std::vector<std::uint16_t> ports;
  // --blind=proxy: every program goes to the proxy, whatever route() says.
  bool all_programs = false;
  // Shim or proxy for this process (classifies /proc/PID/exe, cached, audited once per
  // program). Called from the redirector's own thread; must be thread-safe.
  std::function<Route(pid_t)> route;
};

class Redirector {
 public:
  virtual ~Redirector() = default;
  // "ebpf (cgroup/connect4+6 on /sys/fs/cgroup/unified/kz-…)" / "seccomp (user notification)".
  virtual std::string describe() const = 0;
  // In the child between fork() and exec(): async-signal-safe code only (no allocation,
  // no locks). Joins the run's cgroup / installs the seccomp filter and hands its
  // listener to the parent. 0, or an errno value (the child then fails to start).
  virtual int child_prepare() noexcept = 0;
  // In the parent right after fork(): e.g. receive the seccomp listener, start serving.
  virtual Status after_fork(pid_t child) = 0;
  // The proxy accepted a connection from `client` (its peer address as accept() saw it):
  // where was it going? Each answer is given once (the entry is removed).
  virtual std::optional<OriginalDestination> take_original(const sockaddr_storage& client) = 0;
  // The proxy found that `pid` runs a program the shim serves: stop redirecting its
  // connections until it execs another program (ebpf; a no-op where route() is asked
  // before redirecting).
  virtual void mark_shim_served(pid_t pid) = 0;
  // Detaches everything and removes what start-up created (cgroup, maps). Idempotent.
  virtual void stop() = 0;
  // The cgroup v2 directory made for the run, which every process of the run is in (the
  // command joins it before exec; children inherit it); "" when this redirector made
  // none. At the run's end, kz kills what is left in it (run/survivors.h).
  virtual std::string run_cgroup() const { return {}; }
};

// Each fails with a reason (for `kz doctor` and the fallback to the other) when this
// machine or this user cannot use it.
Result<std::unique_ptr<Redirector>> make_ebpf_redirector(const RedirectSettings& s);
Result<std::unique_ptr<Redirector>> make_seccomp_redirector(const RedirectSettings& s);

// Cheap checks for `kz doctor` (no side effect left behind): "" when usable, else why not.
std::string ebpf_redirect_unavailable_reason();
std::string seccomp_redirect_unavailable_reason();

}  // namespace kz
