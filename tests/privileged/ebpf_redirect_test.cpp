// The eBPF redirector against real sockets: a fake proxy (two listeners), destination
// listeners, and forked children that join the run cgroup and connect. Parent and child
// talk over pipes; waits have generous timeouts and nothing sleeps.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/unique_fd.h"
#include "redirect/redirector.h"
#include "redirect/run_cgroup.h"
#include "socket_addrs.h"

namespace kz {
namespace {

constexpr int kWaitMs = 20000;

struct Listener {
  UniqueFd fd;
  sockaddr_storage addr{};
  std::uint16_t port = 0;
};

Listener listen_on(int family, const char* ip, int type = SOCK_STREAM) {
  Listener l;
  l.fd.reset(::socket(family, type | SOCK_CLOEXEC, 0));
  l.addr = test::inet_addr_of(family, ip, 0);
  if (::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&l.addr), test::sockaddr_len(l.addr)) != 0) return {};
  if (type == SOCK_STREAM && ::listen(l.fd.get(), 16) != 0) return {};
  socklen_t len = sizeof l.addr;
  ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&l.addr), &len);
  l.port = port_of(l.addr);
  return l;
}

// Which of `fds` got the (single) connection; it is accepted, its peer returned.
struct Arrival {
  int which = -1;
  UniqueFd conn;
  sockaddr_storage peer{};
};

Arrival wait_arrival(const std::vector<int>& fds) {
  std::vector<pollfd> p;
  for (int fd : fds) p.push_back({fd, POLLIN, 0});
  Arrival a;
  if (::poll(p.data(), p.size(), kWaitMs) <= 0) return a;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i].revents & POLLIN) {
      socklen_t len = sizeof a.peer;
      a.conn.reset(::accept4(fds[i], reinterpret_cast<sockaddr*>(&a.peer), &len, SOCK_CLOEXEC));
      a.which = static_cast<int>(i);
      return a;
    }
  }
  return a;
}

// A forked process that joins the run cgroup and then connects on command, keeping each
// socket open until the next command. Between fork and _exit only system calls are used.
class Child {
 public:
  struct Reply {
    int err = -1;                 // errno of socket/connect/send, 0 when connected
    sockaddr_storage peer{};      // what getpeername() said
  };

  explicit Child(Redirector& r) {
    int cmd[2], rep[2];
    if (::pipe2(cmd, O_CLOEXEC) != 0 || ::pipe2(rep, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(cmd[1]);
      ::close(rep[0]);
      serve(r, cmd[0], rep[1]);
    }
    ::close(cmd[0]);
    ::close(rep[1]);
    cmd_.reset(cmd[1]);
    rep_.reset(rep[0]);
    int rc = -1;
    if (::read(rep_.get(), &rc, sizeof rc) == sizeof rc) joined_ = rc;
  }
  ~Child() {
    cmd_.reset();  // EOF: the child exits
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }

  pid_t pid() const { return pid_; }
  int joined() const { return joined_; }   // child_prepare()'s answer in the child

  Reply connect(const sockaddr_storage& dst, int family, int type = SOCK_STREAM, bool send_byte = false) {
    Cmd c{family, type, send_byte ? 1 : 0, dst};
    Reply r;
    if (::write(cmd_.get(), &c, sizeof c) != sizeof c) return r;
    if (::read(rep_.get(), &r, sizeof r) != sizeof r) r.err = -1;
    return r;
  }

 private:
  struct Cmd {
    int family;
    int type;
    int send_byte;
    sockaddr_storage dst;
  };

  [[noreturn]] static void serve(Redirector& r, int in, int out) {
    int rc = r.child_prepare();
    (void)!::write(out, &rc, sizeof rc);
    int sock = -1;
    Cmd c;
    while (::read(in, &c, sizeof c) == sizeof c) {
      if (sock >= 0) ::close(sock);
      Reply rep;
      sock = ::socket(c.family, c.type, 0);
      socklen_t dlen = c.dst.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      if (sock < 0 || ::connect(sock, reinterpret_cast<sockaddr*>(&c.dst), dlen) != 0) {
        rep.err = errno;
      } else {
        rep.err = 0;
        if (c.send_byte && ::send(sock, "x", 1, 0) != 1) rep.err = errno;
        socklen_t plen = sizeof rep.peer;
        ::getpeername(sock, reinterpret_cast<sockaddr*>(&rep.peer), &plen);
      }
      (void)!::write(out, &rep, sizeof rep);
    }
    ::_exit(0);
  }

  pid_t pid_ = -1;
  int joined_ = -1;
  UniqueFd cmd_, rep_;
};

// Records settings.route() calls; the redirector makes them on its own thread.
struct RouteLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<pid_t> calls;
  Route answer = Route::Proxy;

  Route on_call(pid_t pid) {
    std::lock_guard lock(mu);
    calls.push_back(pid);
    cv.notify_all();
    return answer;
  }
  bool wait_for(pid_t pid) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] {
      return std::find(calls.begin(), calls.end(), pid) != calls.end();
    });
  }
};

class EbpfRedirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = ebpf_redirect_unavailable_reason();
    if (!why.empty()) {
      std::cout << "SKIP: " << why << std::endl;
      GTEST_SKIP() << why;
    }
    proxy4_ = listen_on(AF_INET, "127.0.0.1");
    proxy6_ = listen_on(AF_INET6, "::1");
    dest4_ = listen_on(AF_INET, "127.0.0.1");
    dest6_ = listen_on(AF_INET6, "::1");
    other4_ = listen_on(AF_INET, "127.0.0.1");
    ASSERT_TRUE(proxy4_.fd && proxy6_.fd && dest4_.fd && dest6_.fd && other4_.fd);
  }

  RedirectSettings settings(bool all_programs = false) {
    RedirectSettings s;
    s.proxy4 = reinterpret_cast<const sockaddr_in&>(proxy4_.addr);
    s.proxy6 = reinterpret_cast<const sockaddr_in6&>(proxy6_.addr);
    s.ports = {dest4_.port, dest6_.port};
    s.all_programs = all_programs;
    s.route = [log = log_](pid_t pid) { return log->on_call(pid); };
    return s;
  }

  std::unique_ptr<Redirector> make(bool all_programs = false) {
    auto r = make_ebpf_redirector(settings(all_programs));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // The four listeners a connection can end up at, in this order.
  std::vector<int> all_listeners() const {
    return {proxy4_.fd.get(), proxy6_.fd.get(), dest4_.fd.get(), dest6_.fd.get(), other4_.fd.get()};
  }
  enum { kProxy4, kProxy6, kDest4, kDest6, kOther4 };

  std::shared_ptr<RouteLog> log_ = std::make_shared<RouteLog>();
  Listener proxy4_, proxy6_, dest4_, dest6_, other4_;
};

TEST_F(EbpfRedirectTest, RedirectsIpv4ToTheProxyAndRemembersTheDestination) {
  auto r = make();
  ASSERT_TRUE(r);
  EXPECT_NE(r->describe().find("ebpf (cgroup/connect4+6 on "), std::string::npos) << r->describe();
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);

  const auto dst = test::inet_addr_of(AF_INET, "127.0.0.1", dest4_.port);
  const auto reply = child.connect(dst, AF_INET);
  ASSERT_EQ(reply.err, 0) << std::strerror(reply.err);
  auto a = wait_arrival(all_listeners());
  ASSERT_EQ(a.which, kProxy4);

  const auto orig = r->take_original(a.peer);
  ASSERT_TRUE(orig.has_value());
  EXPECT_EQ(format_address(orig->addr), format_address(dst));
  EXPECT_EQ(orig->len, sizeof(sockaddr_in));
  EXPECT_EQ(orig->pid, child.pid());
  EXPECT_FALSE(r->take_original(a.peer).has_value()) << "each answer is given once";

  // The program's own view: the address it connected to, not the proxy.
  EXPECT_EQ(format_address(reply.peer), format_address(dst));
}

TEST_F(EbpfRedirectTest, PortsOutsideTheSetAndUdpAreUntouched) {
  auto r = make();
  ASSERT_TRUE(r);
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);

  const auto other = test::inet_addr_of(AF_INET, "127.0.0.1", other4_.port);
  auto reply = child.connect(other, AF_INET);
  ASSERT_EQ(reply.err, 0);
  auto a = wait_arrival(all_listeners());
  EXPECT_EQ(a.which, kOther4);
  EXPECT_FALSE(r->take_original(a.peer).has_value());

  // UDP to a redirected port number: connect() keeps its address, the datagram arrives.
  Listener udp = listen_on(AF_INET, "127.0.0.1", SOCK_DGRAM);
  ASSERT_TRUE(udp.fd);
  RedirectSettings s = settings();
  s.ports = {udp.port};
  auto r2 = make_ebpf_redirector(s);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  Child child2(**r2);
  ASSERT_EQ(child2.joined(), 0);
  const auto udst = test::inet_addr_of(AF_INET, "127.0.0.1", udp.port);
  reply = child2.connect(udst, AF_INET, SOCK_DGRAM, /*send_byte=*/true);
  ASSERT_EQ(reply.err, 0) << std::strerror(reply.err);
  EXPECT_EQ(format_address(reply.peer), format_address(udst));
  pollfd p{udp.fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, kWaitMs), 1);
  char byte = 0;
  EXPECT_EQ(::recv(udp.fd.get(), &byte, 1, 0), 1);
  EXPECT_EQ(byte, 'x');
}

TEST_F(EbpfRedirectTest, RedirectsIpv6AndV4MappedDestinations) {
  auto r = make();
  ASSERT_TRUE(r);
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);

  // Native IPv6 goes to the IPv6 listener.
  const auto dst6 = test::inet_addr_of(AF_INET6, "::1", dest6_.port);
  auto reply = child.connect(dst6, AF_INET6);
  ASSERT_EQ(reply.err, 0) << std::strerror(reply.err);
  auto a = wait_arrival(all_listeners());
  ASSERT_EQ(a.which, kProxy6);
  auto orig = r->take_original(a.peer);
  ASSERT_TRUE(orig.has_value());
  EXPECT_EQ(format_address(orig->addr), format_address(dst6));
  EXPECT_EQ(orig->len, sizeof(sockaddr_in6));
  EXPECT_EQ(orig->pid, child.pid());
  EXPECT_EQ(format_address(reply.peer), format_address(dst6));
  EXPECT_FALSE(r->take_original(a.peer).has_value());

  // ::ffff:127.0.0.1 on an AF_INET6 socket is an IPv4 connection: the IPv4 listener
  // gets it, and the destination is reported as the program wrote it.
  const auto mapped = test::inet_addr_of(AF_INET6, "::ffff:127.0.0.1", dest4_.port);
  reply = child.connect(mapped, AF_INET6);
  ASSERT_EQ(reply.err, 0) << std::strerror(reply.err);
  a = wait_arrival(all_listeners());
  ASSERT_EQ(a.which, kProxy4);
  orig = r->take_original(a.peer);
  ASSERT_TRUE(orig.has_value());
  EXPECT_EQ(orig->addr.ss_family, AF_INET6);
  EXPECT_EQ(format_address(orig->addr), format_address(mapped));
  EXPECT_EQ(orig->pid, child.pid());
  EXPECT_EQ(format_address(reply.peer), format_address(mapped));
}

TEST_F(EbpfRedirectTest, ShimServedProcessesGoDirect) {
  auto r = make();
  ASSERT_TRUE(r);
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);
  const auto dst = test::inet_addr_of(AF_INET, "127.0.0.1", dest4_.port);

  // Not classified yet: redirected.
  ASSERT_EQ(child.connect(dst, AF_INET).err, 0);
  auto a = wait_arrival(all_listeners());
  ASSERT_EQ(a.which, kProxy4);
  EXPECT_TRUE(r->take_original(a.peer).has_value());

  r->mark_shim_served(child.pid());
  const auto reply = child.connect(dst, AF_INET);
  ASSERT_EQ(reply.err, 0);
  a = wait_arrival(all_listeners());
  EXPECT_EQ(a.which, kDest4);
  EXPECT_FALSE(r->take_original(a.peer).has_value());
  EXPECT_EQ(format_address(reply.peer), format_address(dst));
}

TEST_F(EbpfRedirectTest, AllProgramsIgnoresVerdicts) {
  auto r = make(/*all_programs=*/true);
  ASSERT_TRUE(r);
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);
  r->mark_shim_served(child.pid());
  const auto dst = test::inet_addr_of(AF_INET, "127.0.0.1", dest4_.port);
  ASSERT_EQ(child.connect(dst, AF_INET).err, 0);
  auto a = wait_arrival(all_listeners());
  ASSERT_EQ(a.which, kProxy4);
  const auto orig = r->take_original(a.peer);
  ASSERT_TRUE(orig.has_value());
  EXPECT_EQ(orig->pid, child.pid());
}

// Forks a child that joins the run cgroup and execs argv (never returns in the child).
pid_t spawn_in(Redirector& r, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (r.child_prepare() != 0) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

TEST_F(EbpfRedirectTest, ExecAsksRouteAndShimProgramsGoDirect) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  log_->answer = Route::Shim;
  auto r = make();
  ASSERT_TRUE(r);

  // go: parent -> python (connect now; EOF: exit); done: python -> parent (connected).
  int go[2], done[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(done), 0);
  // Python inherits only its own ends: its second read must see EOF when we close ours.
  ::fcntl(go[1], F_SETFD, FD_CLOEXEC);
  ::fcntl(done[0], F_SETFD, FD_CLOEXEC);
  const char* code =
      "import os, socket, sys\n"
      "go, done, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])\n"
      "os.read(go, 1)\n"
      "s = socket.create_connection(('127.0.0.1', port))\n"
      "os.write(done, b'c')\n"
      "os.read(go, 1)\n";
  const pid_t py = spawn_in(*r, {"/usr/bin/python3", "-c", code, std::to_string(go[0]),
                                 std::to_string(done[1]), std::to_string(dest4_.port)});
  ::close(go[0]);
  ::close(done[1]);
  UniqueFd go_w(go[1]), done_r(done[0]);
  ASSERT_GT(py, 0);
  ASSERT_TRUE(log_->wait_for(py)) << "route() was not asked about the exec'd program";

  // The verdict is stored after route() returns, on the redirector's one consumer
  // thread. A second exec is a barrier: once route() is asked about it, the first
  // verdict is in the map.
  const pid_t barrier = spawn_in(*r, {"/bin/true"});
  ASSERT_GT(barrier, 0);
  ASSERT_TRUE(log_->wait_for(barrier));
  int status = 0;
  ::waitpid(barrier, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  ASSERT_EQ(::write(go_w.get(), "g", 1), 1);
  auto a = wait_arrival(all_listeners());
  EXPECT_EQ(a.which, kDest4) << "a program route() gives to the shim connects directly";
  char c = 0;
  EXPECT_EQ(::read(done_r.get(), &c, 1), 1);
  go_w.reset();
  ::waitpid(py, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(EbpfRedirectTest, OutsidersAreUntouchedAndStopRemovesTheCgroup) {
  auto r = make();
  ASSERT_TRUE(r);
  const std::string d = r->describe();
  const auto from = d.find(" on ");
  ASSERT_NE(from, std::string::npos);
  const std::string path = d.substr(from + 4, d.size() - from - 5);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;

  // The test process is not in the run cgroup: its connects go where they were sent.
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto dst = test::inet_addr_of(AF_INET, "127.0.0.1", dest4_.port);
  ASSERT_EQ(::connect(s.get(), reinterpret_cast<const sockaddr*>(&dst), sizeof(sockaddr_in)), 0);
  auto a = wait_arrival(all_listeners());
  EXPECT_EQ(a.which, kDest4);

  // A member still running when the run ends is moved out; the directory goes.
  Child child(*r);
  ASSERT_EQ(child.joined(), 0);
  r->stop();
  EXPECT_NE(::stat(path.c_str(), &st), 0) << path << " still exists";
  r->stop();  // idempotent
  EXPECT_NE(r->child_prepare(), 0) << "nothing to join after stop()";

  // Detached: the former member now connects directly.
  ASSERT_EQ(child.connect(dst, AF_INET).err, 0);
  a = wait_arrival(all_listeners());
  EXPECT_EQ(a.which, kDest4);
}

// The run cgroups this process has made and not removed.
int own_run_cgroups() {
  auto parent = own_cgroup2_dir();
  if (!parent) return -1;
  const std::string prefix = "kz-run-" + std::to_string(::getpid()) + "-";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(*parent))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

TEST_F(EbpfRedirectTest, FailsCleanlyAndLeavesNothingBehind) {
  const int before = own_run_cgroups();
  ASSERT_GE(before, 0);
  RedirectSettings s;  // no proxy listener
  s.ports = {443};
  auto r = make_ebpf_redirector(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no proxy listener"), std::string::npos) << r.error().message;

  s = settings();
  s.ports.clear();
  for (std::uint16_t p = 1; p <= 1000; ++p) s.ports.push_back(p);  // more than the map holds
  r = make_ebpf_redirector(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(own_run_cgroups(), before);

  // And a working one is gone once destroyed, without an explicit stop().
  {
    auto ok = make();
    ASSERT_TRUE(ok);
    EXPECT_EQ(own_run_cgroups(), before + 1);
  }
  EXPECT_EQ(own_run_cgroups(), before);
}

}  // namespace
}  // namespace kz
