// The unprivileged redirector end to end with real sockets: a fake proxy listening on
// 127.0.0.1:0 and [::1]:0, destination listeners whose ports are in settings.ports, and
// forked children that install the filter (child_prepare) and then connect. No sleeps:
// listeners are polled, children report over pipes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "core/unique_fd.h"
#include "redirect/redirector.h"
#include "redirect/seccomp_support.h"
#include "socket_addrs.h"

namespace kz {
namespace {

using namespace seccomp_redirect;

constexpr int kWaitMs = 10'000;

// A TCP listener on loopback port 0; `addr` gets the bound address.
UniqueFd listen_loopback(int family, sockaddr_storage& addr) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  addr = family == AF_INET ? test::inet_addr_of(AF_INET, "127.0.0.1", 0) : test::inet_addr_of(AF_INET6, "::1", 0);
  socklen_t len = test::sockaddr_len(addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd.get(), 16) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return UniqueFd();
  return fd;
}

// Accepts one connection within kWaitMs; an empty fd on timeout.
UniqueFd accept_one(int listener, sockaddr_storage& peer) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, kWaitMs) != 1) return UniqueFd();
  socklen_t len = sizeof peer;
  return UniqueFd(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
}

bool has_pending(int listener) {
  pollfd p{listener, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

std::string read_all(int fd) {
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

std::string peer_of(int fd) {
  sockaddr_storage s{};
  socklen_t len = sizeof s;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&s), &len) != 0) return std::string("getpeername: ") + std::strerror(errno);
  return format_address(s);
}

int int_opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  ::getsockopt(fd, level, name, &v, &len);
  return v;
}

// A forked child that installs the filter, then runs `body`: "" for success or what went
// wrong, sent back over a pipe (the child never returns into gtest).
struct Child {
  pid_t pid = -1;
  UniqueFd report;
};

Result<Child> spawn(Redirector& r, const std::function<std::string()>& body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(ErrorKind::Io, "pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    const int rc = r.child_prepare();
    const std::string msg = rc != 0 ? std::string("child_prepare: ") + std::strerror(rc) : body();
    (void)!::write(p[1], msg.data(), msg.size());
    ::_exit(msg.empty() ? 0 : 1);
  }
  ::close(p[1]);
  Child c{pid, UniqueFd(p[0])};
  if (auto st = r.after_fork(pid); !st) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return st.take_error();
  }
  return c;
}

// The child's report ("" when it succeeded), after it exited.
std::string finish(Child& c) {
  std::string msg = read_all(c.report.get());
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  if (msg.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    msg = "child exit status " + std::to_string(status);
  return msg;
}

// Connects a TCP socket of `family` to `dest` in the child and checks where it went.
std::string connect_and_expect_peer(int family, const sockaddr_storage& dest, const std::string& want_peer) {
  UniqueFd s(::socket(family, SOCK_STREAM, 0));
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&dest), test::sockaddr_len(dest)) != 0)
    return std::string("connect: ") + std::strerror(errno);
  if (peer_of(s.get()) != want_peer) return "peer is " + peer_of(s.get()) + ", want " + want_peer;
  if (::write(s.get(), "hi", 2) != 2) return "write failed";
  return "";
}

// The proxy and destination listeners of one test.
struct Net {
  UniqueFd proxy4, proxy6, dest4, dest6, other4;
  sockaddr_storage p4{}, p6{}, d4{}, d6{}, o4{};
  bool ok() const { return proxy4 && proxy6 && dest4 && dest6 && other4; }
  Net() {
    proxy4 = listen_loopback(AF_INET, p4);
    proxy6 = listen_loopback(AF_INET6, p6);
    dest4 = listen_loopback(AF_INET, d4);
    dest6 = listen_loopback(AF_INET6, d6);
    other4 = listen_loopback(AF_INET, o4);
  }
  RedirectSettings settings(Route route = Route::Proxy) const {
    RedirectSettings s;
    std::memcpy(&s.proxy4, &p4, sizeof s.proxy4);
    std::memcpy(&s.proxy6, &p6, sizeof s.proxy6);
    s.ports = {port_of(d4), port_of(d6)};
    s.route = [route](pid_t) { return route; };
    return s;
  }
};

// The whole basic case, returning "" or what failed, so that it can also run in a
// process that dropped its privileges (no gtest assertions there).
std::string basic_redirect_scenario() {
  Net net;
  if (!net.ok()) return "listeners: " + std::string(std::strerror(errno));
  auto r = make_seccomp_redirector(net.settings());
  if (!r) return "make_seccomp_redirector: " + r.error().message;
  const sockaddr_storage dest = net.d4;
  const std::string proxy = format_address(net.p4);
  auto c = spawn(**r, [&] { return connect_and_expect_peer(AF_INET, dest, proxy); });
  if (!c) return "spawn: " + c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.proxy4.get(), peer);
  if (!conn) return "nothing arrived at the proxy";
  char buf[2];
  if (::read(conn.get(), buf, 2) != 2 || std::memcmp(buf, "hi", 2) != 0) return "wrong bytes at the proxy";
  auto orig = (*r)->take_original(peer);
  if (!orig) return "take_original found nothing for " + format_address(peer);
  if (format_address(orig->addr) != format_address(dest)) return "original is " + format_address(orig->addr);
  if (orig->pid != c->pid) return "original pid " + std::to_string(orig->pid) + ", want " + std::to_string(c->pid);
  if ((*r)->take_original(peer)) return "take_original answered twice";
  if (std::string m = finish(*c); !m.empty()) return "child: " + m;
  if (has_pending(net.dest4.get())) return "the destination got a connection";
  return "";
}

class SeccompRedirect : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = seccomp_redirect_unavailable_reason(); !why.empty()) {
      std::printf("SKIP: seccomp redirect unavailable: %s\n", why.c_str());
      GTEST_SKIP() << "SKIP: seccomp redirect unavailable: " << why;
    }
    ASSERT_TRUE(net.ok()) << std::strerror(errno);
  }
  std::unique_ptr<Redirector> make(const RedirectSettings& s) {
    auto r = make_seccomp_redirector(s);
    EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
    return r ? std::move(*r) : nullptr;
  }
  Net net;
};

TEST_F(SeccompRedirect, BlockingConnectArrivesAtTheProxyAndTheOriginalIsGivenOnce) {
  EXPECT_EQ(basic_redirect_scenario(), "");
}

TEST_F(SeccompRedirect, Describes) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->describe(), "seccomp (user notification on connect)");
}

TEST_F(SeccompRedirect, NonBlockingConnectCompletesToTheProxyKeepingOptions) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const sockaddr_storage dest = net.d4;
  const std::string proxy = format_address(net.p4);
  auto c = spawn(*r, [&]() -> std::string {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    const int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    const int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&dest), test::sockaddr_len(dest));
    if (rc != 0 && errno != EINPROGRESS) return std::string("connect: ") + std::strerror(errno);
    pollfd p{s.get(), POLLOUT, 0};
    if (::poll(&p, 1, kWaitMs) != 1) return "never writable";
    if (int e = int_opt(s.get(), SOL_SOCKET, SO_ERROR); e != 0) return std::string("SO_ERROR ") + std::strerror(e);
    if (!(::fcntl(s.get(), F_GETFL) & O_NONBLOCK)) return "O_NONBLOCK lost";
    if (int_opt(s.get(), SOL_SOCKET, SO_KEEPALIVE) != 1) return "SO_KEEPALIVE lost";
    if (peer_of(s.get()) != proxy) return "peer is " + peer_of(s.get());
    return "";
  });
  ASSERT_TRUE(c) << c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.proxy4.get(), peer);
  ASSERT_TRUE(conn) << "nothing at the proxy";
  EXPECT_EQ(finish(*c), "");
  auto orig = r->take_original(peer);
  ASSERT_TRUE(orig);
  EXPECT_EQ(format_address(orig->addr), format_address(dest));
  EXPECT_EQ(orig->pid, c->pid);
  EXPECT_FALSE(has_pending(net.dest4.get()));
}

TEST_F(SeccompRedirect, UdpAndOtherPortsAreUntouched) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const sockaddr_storage dest = net.d4, other = net.o4;
  auto c = spawn(*r, [&]() -> std::string {
    UniqueFd u(::socket(AF_INET, SOCK_DGRAM, 0));
    if (::connect(u.get(), reinterpret_cast<const sockaddr*>(&dest), test::sockaddr_len(dest)) != 0)
      return std::string("udp connect: ") + std::strerror(errno);
    if (peer_of(u.get()) != format_address(dest)) return "udp peer is " + peer_of(u.get());
    return connect_and_expect_peer(AF_INET, other, format_address(other));
  });
  ASSERT_TRUE(c) << c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.other4.get(), peer);
  EXPECT_TRUE(conn) << "the other port's listener got nothing";
  EXPECT_EQ(finish(*c), "");
  EXPECT_FALSE(has_pending(net.proxy4.get()));
}

TEST_F(SeccompRedirect, ShimRoutedProgramsConnectDirectlyUnlessAllPrograms) {
  for (bool all : {false, true}) {
    SCOPED_TRACE(all ? "all_programs" : "route");
    RedirectSettings s = net.settings(Route::Shim);
    std::atomic<pid_t> asked{0};
    s.route = [&asked](pid_t pid) { asked = pid; return Route::Shim; };
    s.all_programs = all;
    auto r = make(s);
    ASSERT_TRUE(r);
    const sockaddr_storage dest = net.d4;
    const std::string want = format_address(all ? net.p4 : net.d4);
    auto c = spawn(*r, [&] { return connect_and_expect_peer(AF_INET, dest, want); });
    ASSERT_TRUE(c) << c.error().message;
    sockaddr_storage peer{};
    UniqueFd conn = accept_one(all ? net.proxy4.get() : net.dest4.get(), peer);
    EXPECT_TRUE(conn);
    EXPECT_EQ(finish(*c), "");
    if (!all) {
      EXPECT_EQ(asked.load(), c->pid);
    }
    EXPECT_EQ(r->take_original(peer).has_value(), all);
  }
}

TEST_F(SeccompRedirect, Ipv6LoopbackGoesToTheIpv6Proxy) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const sockaddr_storage dest = net.d6;
  const std::string proxy = format_address(net.p6);
  auto c = spawn(*r, [&] { return connect_and_expect_peer(AF_INET6, dest, proxy); });
  ASSERT_TRUE(c) << c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.proxy6.get(), peer);
  ASSERT_TRUE(conn);
  EXPECT_EQ(finish(*c), "");
  auto orig = r->take_original(peer);
  ASSERT_TRUE(orig);
  EXPECT_EQ(format_address(orig->addr), format_address(dest));
  EXPECT_EQ(orig->len, sizeof(sockaddr_in6));
  EXPECT_FALSE(has_pending(net.dest6.get()));
}

TEST_F(SeccompRedirect, V4MappedDestinationOnAnIpv6SocketGoesToTheIpv4Proxy) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const sockaddr_storage dest = test::inet_addr_of(AF_INET6, "::ffff:127.0.0.1", port_of(net.d4));
  const std::string proxy = "[::ffff:127.0.0.1]:" + std::to_string(port_of(net.p4));
  auto c = spawn(*r, [&] { return connect_and_expect_peer(AF_INET6, dest, proxy); });
  ASSERT_TRUE(c) << c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.proxy4.get(), peer);
  ASSERT_TRUE(conn);
  EXPECT_EQ(peer.ss_family, AF_INET);
  EXPECT_EQ(finish(*c), "");
  auto orig = r->take_original(peer);
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->addr.ss_family, AF_INET6);  // v4-mapped stays AF_INET6
  EXPECT_EQ(format_address(orig->addr), format_address(dest));
  EXPECT_FALSE(has_pending(net.dest4.get()));
}

TEST_F(SeccompRedirect, AnExecutedProgramIsRedirectedToo) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "SKIP: no /usr/bin/python3";
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const std::string port = std::to_string(port_of(net.d4));
  auto c = spawn(*r, [&]() -> std::string {
    const char* script =
        "import socket, sys\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "s.sendall(b'py')\n";
    ::execl("/usr/bin/python3", "python3", "-c", script, port.c_str(), static_cast<char*>(nullptr));
    return std::string("exec: ") + std::strerror(errno);
  });
  ASSERT_TRUE(c) << c.error().message;
  sockaddr_storage peer{};
  UniqueFd conn = accept_one(net.proxy4.get(), peer);
  ASSERT_TRUE(conn) << "python's connection did not arrive at the proxy";
  char buf[2] = {};
  EXPECT_EQ(::read(conn.get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "py");
  auto orig = r->take_original(peer);
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->pid, c->pid);
  EXPECT_EQ(format_address(orig->addr), format_address(net.d4));
  EXPECT_EQ(finish(*c), "");
  EXPECT_FALSE(has_pending(net.dest4.get()));
}

// The "normal user" proof: a process that is not root makes the redirector itself.
TEST_F(SeccompRedirect, WorksForAnUnprivilegedUser) {
  if (::geteuid() != 0) {
    std::printf("SKIP: not root, cannot drop privileges\n");
    GTEST_SKIP() << "SKIP: not root, cannot drop privileges";
  }
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string msg;
    const gid_t nobody = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
        ::setresuid(nobody, nobody, nobody) != 0) {
      msg = std::string("dropping privileges: ") + std::strerror(errno);
    } else {
      // Changing uid made this process non-dumpable; an agent that exec'd is dumpable again.
      ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
      msg = basic_redirect_scenario();
    }
    (void)!::write(p[1], msg.data(), msg.size());
    ::_exit(msg.empty() ? 0 : 1);
  }
  ::close(p[1]);
  UniqueFd rd(p[0]);
  const std::string msg = read_all(rd.get());
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(msg, "");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(SeccompRedirect, AChildThatDiesBeforeInstallingTheFilterIsReported) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(3);  // never calls child_prepare
  auto st = r->after_fork(pid);
  ::waitpid(pid, nullptr, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("exited before installing"), std::string::npos) << st.error().message;
}

TEST_F(SeccompRedirect, AfterStopConnectFailsWithEnosys) {
  auto r = make(net.settings());
  ASSERT_TRUE(r);
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  UniqueFd go_rd(go[0]), go_wr(go[1]);
  const sockaddr_storage dest = net.o4;
  auto c = spawn(*r, [&]() -> std::string {
    go_wr.reset();
    char b;
    if (::read(go_rd.get(), &b, 1) != 0) return "no go";
    UniqueFd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&dest), test::sockaddr_len(dest)) == 0) return "connected";
    return errno == ENOSYS ? "" : std::string("connect: ") + std::strerror(errno);
  });
  ASSERT_TRUE(c) << c.error().message;
  r->stop();
  r->stop();  // idempotent
  go_wr.reset();  // EOF: go
  EXPECT_EQ(finish(*c), "");
}

// kz under another supervisor's listener (a sandbox): a clear reason, no half-made redirector.
TEST_F(SeccompRedirect, UnderAnotherListenerItIsUnavailableWithAReason) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const RedirectSettings s = net.settings();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    sock_fprog prog{1, &allow};
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    std::string msg;
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog) < 0) {
      msg = "setup failed";
    } else {
      auto r = make_seccomp_redirector(s);
      msg = seccomp_redirect_unavailable_reason() + "\n" + (r ? std::string("made") : r.error().message);
    }
    (void)!::write(p[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(p[1]);
  UniqueFd rd(p[0]);
  const std::string msg = read_all(rd.get());
  ::waitpid(pid, nullptr, 0);
  EXPECT_NE(msg.find("EBUSY"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("made"), std::string::npos) << msg;
}

// ---- the pure helpers ----

TEST(SeccompRedirectHelpers, ProxyAddressFollowsTheDestinationFamily) {
  const sockaddr_storage p4s = test::inet_addr_of(AF_INET, "127.0.0.1", 7000), p6s = test::inet_addr_of(AF_INET6, "::1", 7001);
  sockaddr_in p4;
  sockaddr_in6 p6;
  std::memcpy(&p4, &p4s, sizeof p4);
  std::memcpy(&p6, &p6s, sizeof p6);
  EXPECT_EQ(format_address(proxy_address_for(test::inet_addr_of(AF_INET, "1.2.3.4", 443), p4, p6)->addr), "127.0.0.1:7000");
  EXPECT_EQ(proxy_address_for(test::inet_addr_of(AF_INET, "1.2.3.4", 443), p4, p6)->len, sizeof(sockaddr_in));
  EXPECT_EQ(format_address(proxy_address_for(test::inet_addr_of(AF_INET6, "2001:db8::1", 443), p4, p6)->addr), "[::1]:7001");
  EXPECT_EQ(format_address(proxy_address_for(test::inet_addr_of(AF_INET6, "::ffff:1.2.3.4", 443), p4, p6)->addr),
            "[::ffff:127.0.0.1]:7000");
  EXPECT_EQ(proxy_address_for(test::inet_addr_of(AF_INET6, "::ffff:1.2.3.4", 443), p4, p6)->len, sizeof(sockaddr_in6));
  sockaddr_in none4{};
  sockaddr_in6 none6{};
  EXPECT_FALSE(proxy_address_for(test::inet_addr_of(AF_INET, "1.2.3.4", 443), none4, p6));
  EXPECT_FALSE(proxy_address_for(test::inet_addr_of(AF_INET6, "2001:db8::1", 443), p4, none6));
  EXPECT_FALSE(proxy_address_for(test::inet_addr_of(AF_INET6, "::ffff:1.2.3.4", 443), none4, p6));
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(proxy_address_for(unix_addr, p4, p6));
}

TEST(SeccompRedirectHelpers, LoopbackBindAddressMatchesTheSocket) {
  EXPECT_EQ(format_address(loopback_bind_address_for(test::inet_addr_of(AF_INET, "1.2.3.4", 443)).addr), "127.0.0.1:0");
  EXPECT_EQ(format_address(loopback_bind_address_for(test::inet_addr_of(AF_INET6, "2001:db8::1", 443)).addr), "[::1]:0");
  EXPECT_EQ(format_address(loopback_bind_address_for(test::inet_addr_of(AF_INET6, "::ffff:1.2.3.4", 443)).addr), "[::ffff:127.0.0.1]:0");
}

TEST(SeccompRedirectHelpers, UnboundMeansNoPortAndNoAddress) {
  EXPECT_TRUE(is_unbound(test::inet_addr_of(AF_INET, "0.0.0.0", 0)));
  EXPECT_TRUE(is_unbound(test::inet_addr_of(AF_INET6, "::", 0)));
  EXPECT_FALSE(is_unbound(test::inet_addr_of(AF_INET, "0.0.0.0", 5)));
  EXPECT_FALSE(is_unbound(test::inet_addr_of(AF_INET, "10.0.0.1", 0)));
  EXPECT_FALSE(is_unbound(test::inet_addr_of(AF_INET6, "::1", 0)));
}

TEST(SeccompRedirectHelpers, DestinationsNeedTheirWholeAddress) {
  EXPECT_TRUE(is_inet_destination(test::inet_addr_of(AF_INET, "1.2.3.4", 443), sizeof(sockaddr_in)));
  EXPECT_FALSE(is_inet_destination(test::inet_addr_of(AF_INET, "1.2.3.4", 443), 8));
  EXPECT_TRUE(is_inet_destination(test::inet_addr_of(AF_INET6, "::1", 443), sizeof(sockaddr_in6)));
  EXPECT_TRUE(is_inet_destination(test::inet_addr_of(AF_INET6, "::1", 443), 24));
  EXPECT_FALSE(is_inet_destination(test::inet_addr_of(AF_INET6, "::1", 443), 20));
  sockaddr_storage u{};
  u.ss_family = AF_UNIX;
  EXPECT_FALSE(is_inet_destination(u, sizeof u));
}

TEST(SeccompRedirectHelpers, KeysUseTheFamilyOnTheWire) {
  EXPECT_EQ(key_of_client(test::inet_addr_of(AF_INET, "127.0.0.1", 5000)), (ConnKey{AF_INET, 5000}));
  EXPECT_EQ(key_of_client(test::inet_addr_of(AF_INET6, "::ffff:127.0.0.1", 5000)), (ConnKey{AF_INET, 5000}));
  EXPECT_EQ(key_of_client(test::inet_addr_of(AF_INET6, "::1", 5000)), (ConnKey{AF_INET6, 5000}));
  EXPECT_EQ(key_for(test::inet_addr_of(AF_INET6, "::ffff:127.0.0.1", 7000), 5000), (ConnKey{AF_INET, 5000}));
  EXPECT_FALSE(key_for(test::inet_addr_of(AF_INET, "127.0.0.1", 7000), 0));
  sockaddr_storage u{};
  u.ss_family = AF_UNIX;
  EXPECT_FALSE(key_of_client(u));
}

TEST(SeccompRedirectHelpers, ParsesTgidFromProcStatus) {
  EXPECT_EQ(parse_tgid("Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\n"), 4242);
  EXPECT_EQ(parse_tgid("Tgid: 7\n"), 7);
  EXPECT_EQ(parse_tgid("Tgid:\t12"), 12);
  EXPECT_EQ(parse_tgid("Name:\tTgid:\t99\nPid:\t5\n"), 0);  // not at a line start
  EXPECT_EQ(parse_tgid("Pid:\t5\n"), 0);
  EXPECT_EQ(parse_tgid("Tgid:\tx\n"), 0);
  EXPECT_EQ(parse_tgid("Tgid:\t12x\n"), 0);
  EXPECT_EQ(parse_tgid("Tgid:\t-3\n"), 0);
  EXPECT_EQ(parse_tgid(""), 0);
}

TEST(SeccompRedirectHelpers, TableGivesEachAnswerOnceAndDropsTheOldest) {
  OriginalTable t(2);
  OriginalDestination a, b, c;
  a.pid = 1;
  b.pid = 2;
  c.pid = 3;
  t.put({AF_INET, 1}, a);
  t.put({AF_INET, 2}, b);
  t.put({AF_INET, 3}, c);  // drops {AF_INET, 1}
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.take({AF_INET, 1}));
  EXPECT_EQ(t.take({AF_INET, 2})->pid, 2);
  EXPECT_FALSE(t.take({AF_INET, 2}));
  EXPECT_FALSE(t.take({AF_INET6, 3}));  // another family
  t.put({AF_INET, 4}, b);   // table: 3 (older), 4
  t.put({AF_INET, 3}, a);   // port reused: the newer entry replaces it and is the youngest
  EXPECT_EQ(t.size(), 2u);
  t.put({AF_INET, 5}, c);   // drops 4, now the oldest
  EXPECT_FALSE(t.take({AF_INET, 4}));
  EXPECT_EQ(t.take({AF_INET, 3})->pid, 1);
  EXPECT_EQ(t.take({AF_INET, 5})->pid, 3);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace kz
