#include "blind/broker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <vector>

#include "blind/broker_message.h"
#include "blind/redact_misses.h"
#include "kz/wipe.h"
#include "core/signal_free_thread.h"

namespace kz {

namespace {

// Sealing (mint_hosts) is armed per TLS connection of the shim: a swap of a client secret
// this broker allowed lets that connection seal what the token endpoint answers, a few
// tokens per answer. A Seal nothing armed is refused (review 27 #7: a program speaking
// the broker protocol could otherwise seal strings of its choice until the client
// secret's quota is full, and make kz rebuild its masks for each).
// Seals one allowed swap adds to its connection: the token members of an answer and
// every other long string in it (seal_response.cpp); a connection holds at most
// kMaxSealsArmed (HTTP/2: several token requests may be in flight on one connection).
constexpr std::uint32_t kSealsPerAnswer = 32;
constexpr std::uint32_t kMaxSealsArmed = 64;
constexpr std::size_t kMaxArmed = 256;   // connections armed at once, per client

struct Armed {
  std::uint32_t secret_id = 0;
  std::uint32_t left = 0;
};

struct Client {
  PeerProcess peer;
  bool authorised = false;
  unsigned redact_misses = 0;   // redact_misses.h
  bool held = false;            // its reply waits for an approval: nothing is read from it
  std::map<std::uint64_t, Armed> armed;   // by the shim's connection id

  // The reply a swap actually got (sent, after any approval): allowed for a secret whose
  // answers are sealed, it arms its connection; anything else (held, denied, refused)
  // disarms it.
  void arm(wire::Op op, std::uint64_t conn_id, const wire::Reply& rep) {
    if (op != wire::Op::Swap) return;
    if (rep.decision != wire::Decision::Allow || (rep.flags & wire::kReplySealResponses) == 0) {
      armed.erase(conn_id);
      return;
    }
    if (armed.size() >= kMaxArmed && armed.count(conn_id) == 0) armed.erase(armed.begin());
    Armed& a = armed[conn_id];
    a.left = a.secret_id == rep.secret_id ? std::min(a.left + kSealsPerAnswer, kMaxSealsArmed) : kSealsPerAnswer;
    a.secret_id = rep.secret_id;
  }
  // Takes one seal of the connection's arming; false when nothing armed it for this secret.
  bool take_seal(const wire::Request& req) {
    auto it = armed.find(req.conn_id);
    if (it == armed.end() || it->second.secret_id != req.form || it->second.left == 0) return false;
    --it->second.left;
    return true;
  }
};

// The answer to a Seal no swap armed: refused, and an "oauth" error record.
DecideOutcome unarmed_seal(const TokenTable& table, const wire::Request& req, const PeerProcess& peer) {
  DecideOutcome out;
  wire::Reply& rep = out.reply;
  rep.version = wire::kProtocolVersion;
  rep.op = req.op;
  rep.decision = wire::Decision::Refuse;
  const std::string why = "no swap of this client secret armed sealing on this connection (or its answer's "
                          "seals are used up): not sealed";
  const std::size_t n = std::min(why.size(), wire::kMaxReason);
  std::memcpy(rep.reason, why.data(), n);
  rep.reason_len = static_cast<std::uint16_t>(n);
  OAuthMint m;
  for (const auto& e : table.secrets())
    if (e.id == req.form) m.secret = e.name;
  m.source = "response";
  m.decision = "error";
  m.host = std::string(req.host, req.host_len);
  m.reason = why;
  m.pid = static_cast<long>(peer.pid);
  out.mint = std::move(m);
  return out;
}

// A swap that waits for a person (approve = ...). Only the request is held, never its
// reply: the value stays in the token table (locked memory) until the answer, and the
// request is decided again then, so a value rotated meanwhile is the current one.
struct Held {
  int fd = -1;
  std::unique_ptr<wire::Request> req;   // data: the agent's token, not a value
  PeerProcess peer;
};

// At most this many requests wait at once (several may wait on one ask, and a request is
// ~38 KiB); the gate also caps the open asks (ApprovalGate::kMaxOpenAsks).
constexpr std::size_t kMaxHeld = 64;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Result<std::unique_ptr<Broker>> Broker::start(BrokerOptions opts) {
  std::unique_ptr<Broker> b(new Broker(std::move(opts)));
  std::string base = b->opts_.runtime_dir;
  if (base.empty()) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    base = (xdg != nullptr && *xdg == '/' && access(xdg, W_OK | X_OK) == 0) ? xdg : "/tmp";
  }
  std::string templ = base + "/kz-broker-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr)   // mkdtemp creates it 0700
    return make_error(ErrorKind::Io, "cannot create the broker directory in " + base + ": " + errno_text());
  b->dir_ = templ;
  b->socket_path_ = b->dir_ + "/broker.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (b->socket_path_.size() >= sizeof addr.sun_path)
    return make_error(ErrorKind::Io, "broker socket path too long: " + b->socket_path_);
  std::memcpy(addr.sun_path, b->socket_path_.c_str(), b->socket_path_.size() + 1);
  b->listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (b->listen_fd_ < 0) return make_error(ErrorKind::Io, "broker socket: " + errno_text());
  // SO_PASSCRED before listen(): accepted connections inherit it, so every message,
  // from the first, arrives with its sender's credentials (broker_message.h).
  if (!enable_sender_credentials(b->listen_fd_) ||
      bind(b->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      chmod(b->socket_path_.c_str(), 0600) != 0 || listen(b->listen_fd_, 128) != 0)
    return make_error(ErrorKind::Io, "broker socket " + b->socket_path_ + ": " + errno_text());
  b->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->wake_fd_ < 0) return make_error(ErrorKind::Io, "eventfd: " + errno_text());
  b->thread_ = signal_free_thread([p = b.get()] { p->serve(); });
  return b;
}

Broker::~Broker() {
  stop();
}

void Broker::stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) {}
    thread_.join();
  }
  if (listen_fd_ >= 0) { ::close(listen_fd_); listen_fd_ = -1; }
  if (wake_fd_ >= 0) { ::close(wake_fd_); wake_fd_ = -1; }
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
  socket_path_.clear();
  dir_.clear();
}

void Broker::serve() {
  std::map<int, Client> clients;
  // One request buffer for the thread: a wire::Request is ~38 KiB.
  auto req = std::make_unique<wire::Request>();
  ApprovalGate* gate = opts_.decide.approvals;
  std::map<std::uint64_t, std::vector<Held>> holds;   // by ask id
  std::size_t held_count = 0;
  auto drop_holds_of = [&](int fd) {
    for (auto& [id, list] : holds)
      for (auto it = list.begin(); it != list.end();) {
        if (it->fd == fd) { wipe(it->req->data, sizeof it->req->data); it = list.erase(it); --held_count; }
        else ++it;
      }
  };
  auto close_client = [&](int fd) { drop_holds_of(fd); ::close(fd); clients.erase(fd); };
  // The gate's answers: each held reply goes out (approved) or becomes a refusal, and
  // the client is read from again.
  auto settle = [&] {
    gate->expire();
    for (ApprovalAnswer& ans : gate->take_answers()) {
      ApprovalEvent e = approval_event(ans.ask, verdict_name(ans.verdict), ans.channel);
      if (!ans.by.empty()) e.by = ans.by;
      opts_.audit->record(std::move(e));
      auto it = holds.find(ans.ask.id);
      if (it == holds.end()) continue;
      std::vector<Held> list = std::move(it->second);
      holds.erase(it);
      held_count -= list.size();
      for (Held& h : list) {
        DecideOutcome out = decide_answered(opts_.decide, *h.req, h.peer, ans);
        wipe(h.req->data, sizeof h.req->data);
        if (auto held_by = clients.find(h.fd); held_by != clients.end())
          held_by->second.arm(h.req->op, h.req->conn_id, out.reply);
        const ssize_t sent = ::send(h.fd, &out.reply, sizeof out.reply, MSG_NOSIGNAL);
        wipe(&out.reply, sizeof out.reply);
        if (out.audit) {
          out.audit->conn = h.req->conn_id;
          opts_.audit->record(std::move(*out.audit));
        }
        auto c = clients.find(h.fd);
        if (c == clients.end()) continue;
        c->second.held = false;
        if (sent != static_cast<ssize_t>(sizeof out.reply)) close_client(h.fd);
      }
    }
  };
  const uid_t uid = getuid();
  while (true) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    if (gate != nullptr) fds.push_back({gate->answered_fd(), POLLIN, 0});
    const std::size_t first_client = fds.size();
    // A held client is watched only for hang-up: its next request comes after its answer.
    for (const auto& [fd, c] : clients) fds.push_back({fd, static_cast<short>(c.held ? 0 : POLLIN), 0});
    const int timeout = gate != nullptr ? gate->ms_to_next_deadline() : -1;
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    if (gate != nullptr) settle();
    if (fds[1].revents & POLLIN) {
      while (true) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) break;
        ucred cred{};
        socklen_t len = sizeof cred;
        Client c;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
          c.peer.pid = cred.pid;
          c.peer.exe = executable_of(cred.pid);
          c.authorised = cred.uid == uid && opts_.tree->contains(cred.pid);
          // Taken now, while the process is certainly alive: every record of this
          // connection names the same process.
          if (c.authorised) c.peer.lineage = opts_.tree->lineage(cred.pid);
        }
        if (c.authorised && !enable_sender_credentials(fd)) c.authorised = false;
        if (!c.authorised) {
          opts_.audit->record(BrokerRefusal{static_cast<long>(c.peer.pid), c.peer.exe, "process is not part of this run"});
          ::close(fd);
          continue;
        }
        clients.emplace(fd, std::move(c));
      }
    }
    for (std::size_t i = first_client; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (clients.count(fd) == 0) continue;   // closed while the answers were settled
      if ((fds[i].revents & POLLIN) == 0) { close_client(fd); continue; }
      const ReceivedRequest got = receive_request(fd, *req);
      const long n = got.size;
      if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) { close_client(fd); continue; }
      if (n < 0) continue;
      Client& c = clients[fd];
      // Every message, not only the connection, must come from a process of this run.
      const std::string foreign = sender_refusal(got.sender, c.peer.pid, uid,
                                                 [&](pid_t p) { return opts_.tree->contains(p); });
      if (!foreign.empty()) {
        const long who = got.sender ? static_cast<long>(got.sender->pid) : 0;
        opts_.audit->record(BrokerRefusal{who, who > 0 ? executable_of(static_cast<pid_t>(who)) : std::string(), foreign});
        wipe(req->data, sizeof req->data);
        close_client(fd);   // shared with a process outside the run: the shim reconnects
        continue;
      }
      // A fork child of the accepted process (same run, same uid) asking on the inherited
      // connection: its records name it, not the parent.
      PeerProcess sender_peer;
      const PeerProcess* peer = &c.peer;
      if (got.sender->pid != c.peer.pid) {
        sender_peer.pid = got.sender->pid;
        sender_peer.exe = executable_of(got.sender->pid);
        sender_peer.lineage = opts_.tree->lineage(got.sender->pid);
        peer = &sender_peer;
      }
      if (!wire::request_is_valid(*req, static_cast<std::size_t>(n))) {
        opts_.audit->record(BrokerRefusal{static_cast<long>(peer->pid), peer->exe,
                                          "malformed request (" + std::to_string(n) + " bytes)"});
        wipe(req->data, sizeof req->data);
        close_client(fd);
        continue;
      }
      DecideOutcome out = req->op == wire::Op::Seal && !c.take_seal(*req) ? unarmed_seal(*opts_.decide.table, *req, *peer)
                                                                         : decide(opts_.decide, *req, *peer);
      const std::uint64_t conn_id = req->conn_id;
      std::unique_ptr<wire::Request> held_req;
      if (out.ask && gate != nullptr) {
        // Held: only the request waits; the value leaves the reply now.
        wipe(out.reply.data, sizeof out.reply.data);
        out.reply.data_len = 0;
        bool created = false;
        ApprovalAsk ask = gate->open(std::move(*out.ask), &created);
        out.ask.reset();
        if (ask.id == 0 || held_count >= kMaxHeld) {
          refuse_outcome(out, ask.secret + ": too many requests wait for an approval (" +
                                  std::to_string(ask.id == 0 ? ApprovalGate::kMaxOpenAsks : kMaxHeld) +
                                  "): refused without asking");
        } else {
          held_req = std::make_unique<wire::Request>(*req);
          if (created) opts_.audit->record(approval_event(ask, "asked", opts_.approval_channels));
          out.ask = std::move(ask);
        }
      }
      // Only `data` is sensitive (a token, or response bytes that may hold a value); the
      // rest is request metadata and public certificates.
      wipe(req->data, sizeof req->data);
      if (out.ask) {
        // Held: the shim's write waits; this thread goes on serving everyone else.
        const ApprovalAsk ask = std::move(*out.ask);
        wire::Reply hold{};
        hold.version = wire::kProtocolVersion;
        hold.op = req->op;
        hold.decision = wire::Decision::Hold;
        c.arm(req->op, conn_id, hold);   // a held swap arms nothing (until it is allowed)
        hold.token_len = static_cast<std::uint32_t>(
            std::min<long long>(wire::kMaxHoldSeconds, gate->timeout().count() / 1000 + 1));
        if (::send(fd, &hold, sizeof hold, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hold)) {
          wipe(held_req->data, sizeof held_req->data);
          close_client(fd);
          continue;
        }
        c.held = true;
        holds[ask.id].push_back(Held{fd, std::move(held_req), *peer});
        ++held_count;
        continue;
      }
      // Answer first, then write the record: the shim's write waits for the answer, not
      // for the audit log's lock and append. The record is written before the next
      // request is read, so the log still holds every answer, in order.
      c.arm(req->op, conn_id, out.reply);
      const ssize_t sent = ::send(fd, &out.reply, sizeof out.reply, MSG_NOSIGNAL);
      const bool redact_miss = req->op == wire::Op::Redact && out.reply.decision == wire::Decision::Unknown;
      wipe(&out.reply, sizeof out.reply);
      if (out.audit) {
        out.audit->conn = conn_id;
        opts_.audit->record(std::move(*out.audit));
      }
      if (out.mint) opts_.audit->record(std::move(*out.mint));
      if (redact_miss) {
        opts_.audit->record(redact_miss_record(*req, *peer, ++c.redact_misses));
        if (c.redact_misses >= kMaxRedactMisses) { close_client(fd); continue; }
      }
      if (sent != static_cast<ssize_t>(sizeof out.reply)) close_client(fd);
    }
  }
  for (auto& [id, list] : holds)
    for (Held& h : list) wipe(h.req->data, sizeof h.req->data);
  for (auto& [fd, c] : clients) ::close(fd);
}

}  // namespace kz
