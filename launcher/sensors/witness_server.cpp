#include "sensors/witness_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/credentials_message.h"
#include "core/private_dir.h"
#include "core/signal_free_thread.h"
#include "core/unique_fd.h"

namespace kz {

namespace {

using preload::witness::Message;
using preload::witness::Op;
using preload::witness::Table;
using preload::witness::Verdict;

std::string errno_text() { return std::strerror(errno); }

const char* function_name(std::uint32_t fn) {
  switch (fn) {
    case preload::witness::kSslWrite: return "SSL_write";
    case preload::witness::kSslWriteEx: return "SSL_write_ex";
    case preload::witness::kGnutlsRecordSend: return "gnutls_record_send";
    default: return "?";
  }
}

class Server final : public WitnessServer {
 public:
  Server(PrivateDir dir, std::string path, UniqueFd listen, UniqueFd wake, std::unique_ptr<Table> table,
         WitnessHandlers h)
      : dir_(std::move(dir)), path_(std::move(path)), listen_(std::move(listen)), wake_(std::move(wake)),
        table_(std::move(table)), h_(std::move(h)) {
    thread_ = signal_free_thread([this] { serve(); });
  }
  ~Server() override { stop(); }
  const std::string& path() const override { return path_; }

  void stop() override {
    if (thread_.joinable()) {
      const std::uint64_t one = 1;
      if (::write(wake_.get(), &one, sizeof one) < 0) {
      }
      thread_.join();
    }
    ::unlink(path_.c_str());
  }

 private:
  void serve() {
    std::map<int, UniqueFd> clients;
    const uid_t uid = getuid();
    for (;;) {
      std::vector<pollfd> fds{{wake_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (const auto& [fd, c] : clients) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      // Whatever the clients sent before the end is still read (their counts at exit).
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Served r;
        while ((r = serve_one(fds[i].fd, uid)) == Served::More) {
        }
        if (r == Served::Closed) clients.erase(fds[i].fd);
      }
      if (fds[0].revents != 0) return;
      if (fds[1].revents & POLLIN) {
        for (;;) {
          UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
          if (!fd) break;
          const int raw = fd.get();
          clients.emplace(raw, std::move(fd));
        }
      }
    }
  }

  // More: a message was served, there may be another; Drained: none left for now;
  // Closed: the connection is done (closed, or it sent something it must not).
  enum class Served { More, Drained, Closed };
  Served serve_one(int fd, uid_t uid) {
    Message m{};
    const CredentialedMessage got = receive_with_credentials(fd, &m, sizeof m);
    if (got.size < 0) return got.size == -EAGAIN || got.size == -EINTR ? Served::Drained : Served::Closed;
    return handle(fd, uid, m, got.size, got.sender) ? Served::More : Served::Closed;
  }

  // False: the connection is done.
  bool handle(int fd, uid_t uid, Message& m, long n, const std::optional<ucred>& sender) {
    if (n != static_cast<long>(sizeof m) || m.magic != preload::witness::kMagic) return false;
    if (!sender || sender->uid != uid || sender->pid <= 0) return false;
    const pid_t pid = sender->pid;
    const bool member = h_.member && h_.member(pid);
    switch (m.op) {
      case Op::Hello: {
        // The table is keyed fingerprints of the run's values: a process outside the run
        // gets nothing (its hello fails and its witness stays off).
        if (!member) return false;
        greeted_.insert(pid);
        if (h_.hello) h_.hello(pid);
        return ::send(fd, table_.get(), sizeof(Table), MSG_NOSIGNAL) == static_cast<long>(sizeof(Table));
      }
      case Op::Sighting: {
        if (!member) return false;
        if (m.writes > 0 && h_.writes) h_.writes(pid, m.writes);
        m.host[sizeof m.host - 1] = '\0';
        m.peer[sizeof m.peer - 1] = '\0';
        WitnessSighting s{pid, m.secret, function_name(m.fn), m.host, m.peer};
        const auto [bound, refuse] = h_.sighting ? h_.sighting(s) : std::make_pair(false, false);
        if (m.wait == 0) return true;
        const Verdict v{preload::witness::kMagic, refuse ? 1u : 0u, bound ? 1u : 0u, 0};
        return ::send(fd, &v, sizeof v, MSG_NOSIGNAL) == static_cast<long>(sizeof v);
      }
      case Op::Uses:
        // Only processes that were given the table add to the run's summary. A process
        // that just exited is no member any more, so membership alone would lose its
        // report: greeted_ remembers it.
        if (!member && greeted_.count(pid) == 0) return false;
        m.host[sizeof m.host - 1] = '\0';
        if (h_.uses) h_.uses(pid, m.secret, m.host, m.writes);
        return true;
      case Op::Counts:
        if (!member && greeted_.count(pid) == 0) return false;
        if (h_.writes) h_.writes(pid, m.writes);
        return true;
    }
    return false;
  }

  PrivateDir dir_;
  std::string path_;
  UniqueFd listen_, wake_;
  std::unique_ptr<Table> table_;
  std::unordered_set<pid_t> greeted_;   // pids sent the table (the server's thread only)
  WitnessHandlers h_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<WitnessServer>> WitnessServer::start(const Table& table, WitnessHandlers h) {
  auto dir = PrivateDir::create("kz-witness-");
  if (!dir) return dir.take_error();
  std::string path = dir->path() + "/witness.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return make_error(ErrorKind::Io, "witness socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return make_error(ErrorKind::Io, "witness socket: " + errno_text());
  // SO_PASSCRED before listen(): every message arrives with its sender's credentials.
  if (!enable_sender_credentials(fd.get()) ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || chmod(path.c_str(), 0600) != 0 ||
      listen(fd.get(), 128) != 0)
    return make_error(ErrorKind::Io, "witness socket " + path + ": " + errno_text());
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return make_error(ErrorKind::Io, "eventfd: " + errno_text());
  auto t = std::make_unique<Table>(table);
  t->accepted = 1;   // only members are ever sent it
  return std::unique_ptr<WitnessServer>(
      new Server(std::move(*dir), std::move(path), std::move(fd), std::move(wake), std::move(t), std::move(h)));
}

}  // namespace kz
