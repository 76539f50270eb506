// The broker over its real socket: serves processes of the run, refuses others,
// closes on malformed messages, and cleans up after itself.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

#include "../secrets/decide_requests.h"
#include "blind/broker.h"
#include "secrets/approval.h"
#include "test_support.h"

namespace kz {
namespace {

int connect_to(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) { close(fd); return -1; }
  return fd;
}

// Sends one Report for `token` and returns the reply's decision, or -1 when the broker
// closed the connection (or sent something invalid).
int report(int fd, const std::string& token, std::size_t size = sizeof(wire::Request)) {
  auto r = std::make_unique<wire::Request>();
  std::memset(r.get(), 0, sizeof(wire::Request));
  r->version = wire::kProtocolVersion;
  r->op = wire::Op::Report;
  r->channel = wire::Channel::Plain;
  r->data_len = static_cast<std::uint32_t>(token.size());
  std::memcpy(r->data, token.data(), token.size());
  std::string buf(reinterpret_cast<const char*>(r.get()), sizeof(wire::Request));
  buf.resize(size, '\0');
  if (send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(buf.size())) return -1;
  auto rep = std::make_unique<wire::Reply>();
  const ssize_t n = recv(fd, rep.get(), sizeof(wire::Reply), 0);
  if (n <= 0 || !wire::reply_is_valid(*rep, static_cast<std::size_t>(n), wire::Op::Report)) return -1;
  return static_cast<int>(rep->decision);
}

// Each record as it would be written, into `list`.
struct Collect final : AuditRecorder {
  std::mutex mu;
  std::vector<nlohmann::json> list;
  void record(AuditEvent e) override {
    std::lock_guard l(mu);
    list.push_back(to_record(e));
  }
};

struct BrokerFixture : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  std::unique_ptr<ProcessTree> tree;
  std::unique_ptr<Broker> broker;
  Collect collect;
  std::vector<nlohmann::json>& records = collect.list;
  test::TempDir dir;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from("sk-live-0123456789abcdefghijklmnop")});
    Binding b;
    b.hosts = {"localhost"};
    table = TokenTable::build(std::move(s), {{"API_KEY", b}}).value();
    verifier = std::make_unique<PeerVerifier>(PeerVerifier::create("").value());
    tree = std::make_unique<ProcessTree>(getpid());
    BrokerOptions o;
    o.decide = {&table, verifier.get()};
    o.tree = tree.get();
    o.runtime_dir = dir.path();
    o.audit = &collect;
    auto br = Broker::start(std::move(o));
    ASSERT_TRUE(br.ok()) << br.error().message;
    broker = std::move(*br);
  }
  std::string token() const { return std::string(table.secrets()[0].token.view()); }

  // Runs `body` in a forked child (a member of the tree); returns its exit code.
  template <class F>
  int in_child(F body) {
    pid_t pid = fork();
    if (pid == 0) _exit(body());
    tree->set_root(pid);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
  }
};

TEST_F(BrokerFixture, PrivateDirectoryAndSocket) {
  struct stat d {}, s {};
  const std::string path = broker->socket_path();
  ASSERT_EQ(stat(path.substr(0, path.rfind('/')).c_str(), &d), 0);
  EXPECT_EQ(d.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(path.c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 0777, 0600u);
  broker->stop();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_NE(access(path.substr(0, path.rfind('/')).c_str(), F_OK), 0);
}

TEST_F(BrokerFixture, ServesAProcessOfTheRun) {
  const std::string path = broker->socket_path(), tok = token();
  const int code = in_child([&] {
    const int fd = connect_to(path);
    return report(fd, tok) == static_cast<int>(wire::Decision::Refuse) ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
  broker->stop();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["event"], "swap");
  EXPECT_EQ(records[0]["decision"], "refuse");
  EXPECT_EQ(records[0]["secret"], "API_KEY");
}

TEST_F(BrokerFixture, RefusesAProcessOutsideTheRun) {
  // This test process is the "launcher": never a member of its own run.
  tree->set_root(1);
  const int fd = connect_to(broker->socket_path());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(report(fd, token()), -1);
  close(fd);
  broker->stop();
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0]["event"], "broker.refuse");
  EXPECT_EQ(records[0]["reason"], "process is not part of this run");
}

TEST_F(BrokerFixture, ClosesOnAMalformedMessage) {
  const std::string path = broker->socket_path(), tok = token();
  const int code = in_child([&] {
    const int fd = connect_to(path);
    if (report(fd, tok, sizeof(wire::Request) - 1) != -1) return 1;   // short: closed
    const int fd2 = connect_to(path);
    return report(fd2, tok) == static_cast<int>(wire::Decision::Refuse) ? 0 : 2;   // still serving
  });
  EXPECT_EQ(code, 0);
  broker->stop();
  bool malformed = false;
  std::string all;
  for (const auto& r : records) {
    malformed = malformed || r.value("reason", "").find("malformed") != std::string::npos;
    all += r.dump() + "\n";
  }
  EXPECT_TRUE(malformed) << all;
}

// A connection accepted for a process of the run, used by a process outside it (here
// the test itself, which is never part of its own run): the child hands its connected
// socket over with SCM_RIGHTS, as a same-user thief would take it with pidfd_getfd.
TEST_F(BrokerFixture, RefusesAMessageFromAnotherProcessOnAnAcceptedConnection) {
  const std::string path = broker->socket_path(), tok = token();
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  pid_t child = fork();
  if (child == 0) {
    close(pair[0]);
    const int fd = connect_to(path);
    // Asks once itself, so the connection is accepted (and answered) for this pid.
    if (report(fd, tok) != static_cast<int>(wire::Decision::Refuse)) _exit(1);
    char byte = 'x';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(pair[1], &msg, 0) != 1) _exit(2);
    // Alive (and in the tree) while the test asks on its connection.
    _exit(read(pair[1], &byte, 1) == 1 ? 0 : 3);
  }
  close(pair[1]);
  tree->set_root(child);
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ASSERT_EQ(recvmsg(pair[0], &msg, 0), 1);
  int stolen = -1;
  std::memcpy(&stolen, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof stolen);
  EXPECT_EQ(report(stolen, tok), -1) << "answered a process outside the run";
  ASSERT_EQ(write(pair[0], "x", 1), 1);
  int st = 0;
  waitpid(child, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(stolen);
  close(pair[0]);
  broker->stop();
  bool refused = false;
  std::string all;
  for (const auto& r : records) {
    refused = refused || (r["event"] == "broker.refuse" && r.value("pid", 0L) == static_cast<long>(getpid()) &&
                          r.value("reason", "").find("not a process of this run") != std::string::npos);
    all += r.dump() + "\n";
  }
  EXPECT_TRUE(refused) << all;
}

// review 27, finding 5: approvals through the broker. The broker holds the request, not
// a reply with the value, and decides it again when the gate answers (so a value rotated
// while the ask waited is the one sent); at most ApprovalGate::kMaxOpenAsks asks wait, so
// an agent cannot bury the real ask under thousands of its own: the next is refused and
// recorded.
struct HeldBrokerFixture : ::testing::Test {
  static constexpr const char* kOld = "sk-live-OLD0123456789abcdefghijklm";
  static constexpr const char* kNew = "sk-live-NEW0123456789abcdefghijklm";
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier = test::test_peer_verifier();
  std::unique_ptr<ProcessTree> tree = std::make_unique<ProcessTree>(getpid());
  ApprovalGate gate{std::chrono::minutes(5)};
  std::unique_ptr<Broker> broker;
  Collect collect;
  std::vector<nlohmann::json>& records = collect.list;
  test::TempDir dir;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from(kOld)});
    Binding b;
    b.hosts = {"localhost"};
    b.approve.mode = ApprovalMode::Every;   // every request is its own ask
    table = TokenTable::build(std::move(s), {{"API_KEY", b}}, TokenShape::Plain, {"API_KEY"}).value();
    BrokerOptions o;
    o.decide = {&table, verifier.get()};
    o.decide.approvals = &gate;
    o.tree = tree.get();
    o.runtime_dir = dir.path();
    o.audit = &collect;
    o.approval_channels = "test";
    auto br = Broker::start(std::move(o));
    ASSERT_TRUE(br.ok()) << br.error().message;
    broker = std::move(*br);
  }
  void TearDown() override {
    gate.stop();
    if (broker) broker->stop();
  }
};

// The child's side: a swap on a new connection; returns the reply (decision -1: none).
wire::Reply swap_on(int fd, const std::unique_ptr<wire::Request>& req) {
  wire::Reply rep{};
  rep.decision = static_cast<wire::Decision>(255);
  if (send(fd, req.get(), sizeof(wire::Request), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(wire::Request)))
    return rep;
  const ssize_t n = recv(fd, &rep, sizeof rep, 0);
  if (n <= 0 || !wire::reply_is_valid(rep, static_cast<std::size_t>(n), wire::Op::Swap))
    rep.decision = static_cast<wire::Decision>(255);
  return rep;
}

TEST_F(HeldBrokerFixture, CapsOpenAsksAndDecidesAgainWhenApproved) {
  const std::string path = broker->socket_path(), tok(table.secrets()[0].token.view());
  auto req = test::broker_request(wire::Op::Swap, tok, "localhost", test::der_of_pem_file(test::test_ca().server_cert),
                                  "POST", "/v1/charges");
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(to_parent[0]);
    close(to_child[1]);
    char go = 0;
    if (read(to_child[0], &go, 1) != 1) _exit(10);   // the parent has made this process the run
    int fds[ApprovalGate::kMaxOpenAsks];   // no allocation after fork() (see Step below)
    for (std::size_t i = 0; i < ApprovalGate::kMaxOpenAsks; ++i) {
      fds[i] = connect_to(path);
      if (swap_on(fds[i], req).decision != wire::Decision::Hold) _exit(11);
    }
    const int extra = connect_to(path);
    const wire::Reply over = swap_on(extra, req);
    if (over.decision != wire::Decision::Refuse || over.data_len != 0) _exit(12);
    if (std::string_view(over.reason, over.reason_len).find("too many") == std::string_view::npos) _exit(13);
    if (write(to_parent[1], "1", 1) != 1) _exit(14);
    // The parent rotates the value, then approves the first ask: its held request is
    // decided again and gets the value of now.
    wire::Reply rep{};
    const ssize_t n = recv(fds[0], &rep, sizeof rep, 0);
    if (n <= 0 || !wire::reply_is_valid(rep, static_cast<std::size_t>(n), wire::Op::Swap)) _exit(15);
    if (rep.decision != wire::Decision::Allow) _exit(16);
    if (std::string_view(reinterpret_cast<const char*>(rep.data), rep.data_len) != kNew) _exit(17);
    _exit(0);
  }
  close(to_parent[1]);
  close(to_child[0]);
  tree->set_root(pid);
  ASSERT_EQ(write(to_child[1], "g", 1), 1);
  char done = 0;
  if (read(to_parent[0], &done, 1) != 1) {   // the child gave up: its exit code says where
    int st = 0;
    waitpid(pid, &st, 0);
    FAIL() << "child exited with " << (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  const std::vector<ApprovalAsk> asks = gate.open_asks();
  ASSERT_EQ(asks.size(), ApprovalGate::kMaxOpenAsks);
  ASSERT_TRUE(table.replace_value("API_KEY", SecretValue::from(kNew)).ok());
  ASSERT_TRUE(gate.answer(asks[0].id, ApprovalVerdict::Approved, "test", "test"));
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  gate.stop();
  broker->stop();
  int asked = 0, over = 0, allowed = 0;
  std::string all;
  for (const auto& r : records) {
    all += r.dump() + "\n";
    if (r["event"] == "approve" && r.value("decision", "") == "asked") ++asked;
    if (r["event"] == "swap" && r.value("decision", "") == "refuse" &&
        r.value("reason", "").find("too many requests wait for an approval") != std::string::npos)
      ++over;
    if (r["event"] == "swap" && r.value("decision", "") == "allow") ++allowed;
  }
  EXPECT_EQ(asked, static_cast<int>(ApprovalGate::kMaxOpenAsks)) << all;
  EXPECT_EQ(over, 1) << all;
  EXPECT_EQ(allowed, 1) << all;
  EXPECT_EQ(all.find(kOld), std::string::npos);
  EXPECT_EQ(all.find(kNew), std::string::npos);
}

// review 27, finding 7: Op::Seal only on a connection an allowed swap of the client
// secret armed, at most 32 seals per swap; anything else is refused and recorded, and
// the client secret's sealed-token quota stays free for the real answers.
struct SealBrokerFixture : ::testing::Test {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier = test::test_peer_verifier();
  std::unique_ptr<ProcessTree> tree = std::make_unique<ProcessTree>(getpid());
  std::unique_ptr<Broker> broker;
  Collect collect;
  std::vector<nlohmann::json>& records = collect.list;
  test::TempDir dir;

  void SetUp() override {
    std::vector<ResolvedSecret> s;
    s.push_back({"CLIENT_SECRET", "env", SecretValue::from("cs_client-secret-value-0123456789abcdef")});
    Binding b;
    b.hosts = {"localhost"};
    b.mint_hosts = {"api.test"};
    table = TokenTable::build(std::move(s), {{"CLIENT_SECRET", b}}).value();
    BrokerOptions o;
    o.decide = {&table, verifier.get()};
    o.decide.sealed = &table;
    o.tree = tree.get();
    o.runtime_dir = dir.path();
    o.audit = &collect;
    auto br = Broker::start(std::move(o));
    ASSERT_TRUE(br.ok()) << br.error().message;
    broker = std::move(*br);
  }
  void TearDown() override {
    if (broker) broker->stop();
  }
};

// One step of the child's conversation: a request built before the fork (the child
// only sends and reads: after fork() in a threaded process it must not allocate, which
// under ASan can deadlock on an allocator lock the broker's thread held), and the
// decision it must get (negative: anything but Allow).
struct Step {
  std::unique_ptr<wire::Request> req;
  int want;
};

int answer_to(int fd, const wire::Request& req) {
  if (send(fd, &req, sizeof req, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof req)) return 255;
  wire::Reply rep{};
  const ssize_t n = recv(fd, &rep, sizeof rep, 0);
  if (n <= 0 || !wire::reply_is_valid(rep, static_cast<std::size_t>(n), req.op)) return 255;
  return static_cast<int>(rep.decision);
}

TEST_F(SealBrokerFixture, SealsOnlyWhereASwapArmedThem) {
  const std::string path = broker->socket_path(), tok(table.secrets()[0].token.view());
  const std::uint32_t id = table.secrets()[0].id;
  const int allow = static_cast<int>(wire::Decision::Allow), refuse = static_cast<int>(wire::Decision::Refuse);
  const std::string chain = test::der_of_pem_file(test::test_ca().server_cert);
  std::vector<Step> steps;
  auto step = [&](wire::Op op, const std::string& data, std::uint64_t conn_id, std::uint32_t form, int want) {
    auto req = test::broker_request(wire::Op::Swap, data, "localhost", chain, "POST", "/oauth/token");
    req->op = op;
    req->conn_id = conn_id;
    req->form = form;
    steps.push_back(Step{std::move(req), want});
  };
  auto sealed = [](int i) { return "at_0123456789abcdefghijklmnop-" + std::to_string(i); };
  step(wire::Op::Seal, sealed(0), 7, id, refuse);   // nothing armed it
  step(wire::Op::Swap, tok, 7, 0, allow);           // the client secret's use arms conn 7
  for (int i = 1; i <= 32; ++i) step(wire::Op::Seal, sealed(i), 7, id, allow);
  step(wire::Op::Seal, sealed(33), 7, id, refuse);  // the answer's seals are used up
  step(wire::Op::Seal, sealed(34), 8, id, refuse);  // another connection
  step(wire::Op::Swap, tok, 7, 0, allow);           // the next use arms it again
  step(wire::Op::Seal, sealed(35), 7, id, allow);
  // A swap on it that is not allowed (here a token kz never issued) disarms it.
  step(wire::Op::Swap, "KZ_TOK_0000000000000000000000000000000000", 7, 0, -1);
  step(wire::Op::Seal, sealed(36), 7, id, refuse);
  pid_t pid = fork();
  if (pid == 0) {
    const int fd = connect_to(path);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const int got = answer_to(fd, *steps[i].req);
      if (steps[i].want >= 0 ? got != steps[i].want : got == allow) _exit(static_cast<int>(10 + i));
    }
    _exit(0);
  }
  tree->set_root(pid);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  broker->stop();
  int ok = 0, unarmed = 0;
  for (const auto& r : records) {
    if (r["event"] != "mint") continue;
    if (r.value("decision", "") == "ok") ++ok;
    if (r.value("reason", "").find("armed sealing") != std::string::npos) ++unarmed;
  }
  EXPECT_EQ(ok, 33);
  EXPECT_EQ(unarmed, 4) << [&] { std::string a; for (const auto& r : records) a += r.dump() + "\n"; return a; }();
}

}  // namespace
}  // namespace kz
