#include "blind/approval_channels.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/signal_free_thread.h"
#include "kz/digest.h"
#include "secrets/process_tree.h"

namespace kz {

namespace {

std::string errno_text() { return std::strerror(errno); }

void write_all_fd(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Printable text for the prompt: the facts come from the agent's request. Anything but
// printable ASCII (escape sequences that would move the cursor or rewrite the prompt,
// newlines, bytes of other encodings) shows as \xNN; what is cut says how much.
std::string printable(std::string_view s, std::size_t limit = 200) {
  std::string out;
  for (char c : s.substr(0, limit)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      static const char* hex = "0123456789abcdef";
      const auto u = static_cast<unsigned char>(c);
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  if (s.size() > limit) out += "...(" + std::to_string(s.size() - limit) + " more bytes)";
  return out;
}

std::string describe(const ApprovalAsk& a) {
  const std::string& target = a.target.empty() ? a.path : a.target;
  std::string d = printable(a.secret) + " for " + (a.method.empty() ? std::string("?") : printable(a.method)) +
                  " https://" + printable(a.host) + printable(target, 1000);
  return d;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

Result<std::string> approval_socket_dir(bool create) {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string base = (xdg != nullptr && *xdg == '/' && access(xdg, W_OK | X_OK) == 0) ? xdg : "/tmp";
  const std::string dir = base + "/kz-approvals-" + std::to_string(getuid());
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error(ErrorKind::Io, "cannot create " + dir + ": " + errno_text());
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0) return make_error(ErrorKind::NotFound, dir + ": " + errno_text());
  // Another user may have made it first in a shared /tmp: it must be ours and closed.
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0)
    return make_error(ErrorKind::Denied, dir + " is not a directory of this user with mode 0700");
  return dir;
}

Result<std::unique_ptr<ApprovalChannels>> ApprovalChannels::start(ApprovalChannelOptions opts) {
  std::unique_ptr<ApprovalChannels> c(new ApprovalChannels(std::move(opts)));
  if (!c->opts_.webhook_url.empty()) {
    const std::string& u = c->opts_.webhook_url;
    const bool https = u.rfind("https://", 0) == 0;
    const bool loopback_http = u.rfind("http://127.0.0.1:", 0) == 0 || u.rfind("http://localhost:", 0) == 0 ||
                               u.rfind("http://[::1]:", 0) == 0;
    if (!https && !loopback_http)
      return make_error(ErrorKind::Usage, "--approve-via: \"" + u + "\" must be an https:// URL (http:// only to this host)");
    c->description_ = "webhook";
    c->webhook_ = signal_free_thread([p = c.get()] { p->webhook_loop(); });
    return c;
  }
  c->tty_ = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (c->tty_ < 0)
    return make_error(ErrorKind::Usage, "a secret has approve = ..., and kz has no terminal to ask on (/dev/tty: " +
                                            errno_text() + "): use --approve-via=URL");
  c->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  auto dir = approval_socket_dir(true);
  if (!dir) return dir.take_error();
  unsigned char rnd[8];
  RAND_bytes(rnd, sizeof rnd);
  // The run's name carries kz's pid: `kz approve` checks that the socket it reaches is
  // held by that process (the directory is writable by the agent, same user).
  c->socket_id_ = std::to_string(getpid()) + "-" +
                  hex_lower(std::string_view(reinterpret_cast<const char*>(rnd), sizeof rnd));
  c->socket_path_ = *dir + "/" + c->socket_id_ + ".sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (c->socket_path_.size() >= sizeof addr.sun_path)
    return make_error(ErrorKind::Io, "approval socket path too long: " + c->socket_path_);
  std::memcpy(addr.sun_path, c->socket_path_.c_str(), c->socket_path_.size() + 1);
  c->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->listen_fd_ < 0 || bind(c->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      chmod(c->socket_path_.c_str(), 0600) != 0 || listen(c->listen_fd_, 16) != 0)
    return make_error(ErrorKind::Io, "approval socket " + c->socket_path_ + ": " + errno_text());
  c->description_ = "tty+socket";
  c->prompt_ = signal_free_thread([p = c.get()] { p->prompt_loop(); });
  c->socket_ = signal_free_thread([p = c.get()] { p->socket_loop(); });
  return c;
}

ApprovalChannels::~ApprovalChannels() { stop(); }

void ApprovalChannels::stop() {
  opts_.gate->stop();
  cancel_.store(true);
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) {}
  }
  for (std::thread* t : {&prompt_, &socket_, &webhook_})
    if (t->joinable()) t->join();
  {
    std::lock_guard lock(workers_mu_);
    for (auto& w : workers_)
      if (w.joinable()) w.join();
    workers_.clear();
  }
  if (opts_.stdin_gate != nullptr) opts_.stdin_gate->release();
  if (listen_fd_ >= 0) { ::close(listen_fd_); listen_fd_ = -1; }
  if (!socket_path_.empty()) { ::unlink(socket_path_.c_str()); socket_path_.clear(); }
  if (tty_ >= 0) { ::close(tty_); tty_ = -1; }
  if (wake_fd_ >= 0) { ::close(wake_fd_); wake_fd_ = -1; }
}

// ---- the terminal ---------------------------------------------------------------------

void ApprovalChannels::prompt_loop() {
  std::uint64_t seen = 0;
  while (!opts_.gate->stopped()) {
    const auto asks = opts_.gate->open_asks();
    if (asks.empty()) {
      seen = opts_.gate->wait_change(seen, std::chrono::steady_clock::now() + std::chrono::hours(1));
      continue;
    }
    const ApprovalAsk& ask = asks.front();
    if (opts_.stdin_gate != nullptr) opts_.stdin_gate->hold();
    // Whatever was typed (or pushed into the input queue) before the prompt is not an answer.
    tcflush(tty_, TCIFLUSH);
    const long secs = std::max<long>(1, (ask.deadline_ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                               std::chrono::steady_clock::now().time_since_epoch())
                                                               .count()) / 1000);
    // Plain attributes first: what the command wrote before (hidden text, colours) must
    // not disguise the prompt.
    write_all_fd(tty_, "\x1b[0m\r\nkz: approval needed: " + describe(ask) + "\r\n     (pid " + std::to_string(ask.pid) +
                           " " + printable(ask.exe) + ", request " + ask.request_hash.substr(0, 12) +
                           "; the request body is not shown and not covered)\r\n" +
                           "     type " + ask.code + " and Enter to approve, n to deny (" + std::to_string(secs) +
                           " s; or `kz approve --run " + socket_id_ + " " + ask.code + "` in another shell): ");
    std::string line;
    bool done = false;
    int wrong = 0;
    while (!done && opts_.gate->is_open(ask.id)) {
      pollfd p[2] = {{tty_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      // The ask may be answered elsewhere (the socket) or time out: look again soon.
      if (::poll(p, 2, 200) <= 0) continue;
      if (p[1].revents != 0) break;
      char buf[64];
      const ssize_t n = ::read(tty_, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n && !done; ++i) {
        const char ch = buf[i];
        if (ch == 3 || ch == 4) {   // Ctrl-C, Ctrl-D in raw mode: deny
          opts_.gate->answer(ask.id, ApprovalVerdict::Denied, "terminal", "tty");
          done = true;
        } else if (ch == '\r' || ch == '\n') {
          const std::string typed = trim(line);
          line.clear();
          if (typed.empty()) continue;
          if (typed.size() == ask.code.size() && CRYPTO_memcmp(typed.data(), ask.code.data(), typed.size()) == 0) {
            opts_.gate->answer(ask.id, ApprovalVerdict::Approved, "terminal", "tty");
            done = true;
          } else if (typed == "n" || typed == "no" || typed == "deny") {
            opts_.gate->answer(ask.id, ApprovalVerdict::Denied, "terminal", "tty");
            done = true;
          } else if (++wrong >= 3) {
            opts_.gate->answer(ask.id, ApprovalVerdict::Denied, "terminal (3 wrong codes)", "tty");
            done = true;
          } else {
            write_all_fd(tty_, "\r\n     not the code: type " + ask.code + " to approve, n to deny: ");
          }
        } else if (ch == 0x7f || ch == 8) {
          if (!line.empty()) { line.pop_back(); write_all_fd(tty_, "\b \b"); }
        } else if (ch >= 0x20 && ch < 0x7f && line.size() < 64) {
          line.push_back(ch);
          write_all_fd(tty_, std::string_view(&ch, 1));
        }
      }
    }
    write_all_fd(tty_, "\r\n");
    if (opts_.stdin_gate != nullptr) opts_.stdin_gate->release();
  }
}

// ---- `kz approve` -----------------------------------------------------------------------

bool ApprovalChannels::peer_outside_run(pid_t peer, int peer_pidfd) const {
  // Fail closed: the peer must be alive now (a process of the run can connect, hand the
  // socket to a child and exit; its pid then has no parent to walk), its ancestry must
  // reach pid 1 through processes that exist, and none of them is kz or in the run.
  if (peer <= 1) return false;
  if (peer_pidfd >= 0) {
    pollfd q{peer_pidfd, POLLIN, 0};
    if (::poll(&q, 1, 0) != 0) return false;   // readable: the process exited
  }
  if (::kill(peer, 0) != 0 && errno != EPERM) return false;
  const pid_t self = getpid();
  pid_t p = peer;
  for (int depth = 0; p != 1; ++depth) {
    if (depth > 4096 || p <= 0 || p == self) return false;
    if (opts_.in_run && opts_.in_run(p)) return false;
    p = parent_of(p);
  }
  return true;
}

std::string ApprovalChannels::socket_answer(const std::string& line, pid_t peer, int peer_pidfd) {
  if (!peer_outside_run(peer, peer_pidfd))
    return "refused: a process of the run (or one that exited) cannot answer its approvals";
  if (line == "list") {
    std::string out;
    for (const auto& a : opts_.gate->open_asks()) out += (out.empty() ? "" : "; ") + describe(a);
    return out.empty() ? "nothing waits" : "waiting: " + out;
  }
  const bool approve = line.rfind("approve ", 0) == 0;
  const bool deny = line.rfind("deny ", 0) == 0;
  if (!approve && !deny) return "error: say approve CODE, deny CODE or list";
  const std::string code = trim(line.substr(approve ? 8 : 5));
  auto ask = opts_.gate->find_code(code);
  if (!ask) {
    ++bad_codes_;
    return "no waiting request has that code";
  }
  const std::string by = "kz approve (pid " + std::to_string(peer) + ")";
  if (!opts_.gate->answer(ask->id, approve ? ApprovalVerdict::Approved : ApprovalVerdict::Denied, by, "socket"))
    return "that request was answered already";
  return std::string(approve ? "approved: " : "denied: ") + describe(*ask);
}

void ApprovalChannels::socket_loop() {
  while (!opts_.gate->stopped() && bad_codes_ < kMaxBadCodes) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (p[1].revents != 0) break;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof cred;
    std::string reply;
    int peer_pidfd = -1;
#ifdef SO_PEERPIDFD
    socklen_t plen = sizeof peer_pidfd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &peer_pidfd, &plen) != 0) peer_pidfd = -1;
#else
    // Linux >= 6.5 (SO_PEERPIDFD = 77): a pidfd of the peer, immune to pid reuse.
    socklen_t plen = sizeof peer_pidfd;
    if (getsockopt(fd, SOL_SOCKET, 77, &peer_pidfd, &plen) != 0) peer_pidfd = -1;
#endif
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
      reply = "refused: another user";
    } else {
      // One short line, read within a second (a client that says nothing is dropped).
      std::string line;
      char buf[128];
      while (line.size() < 256 && line.find('\n') == std::string::npos) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 1000) <= 0) break;
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<std::size_t>(n));
      }
      // Checked after the line is read: the peer is the one that answers.
      reply = socket_answer(trim(line.substr(0, line.find('\n'))), cred.pid, peer_pidfd);
    }
    if (peer_pidfd >= 0) ::close(peer_pidfd);
    write_all_fd(fd, reply + "\n");
    ::close(fd);
  }
  if (bad_codes_ >= kMaxBadCodes) {
    spdlog::warn("kz approve: {} wrong codes; the approval socket is closed for the rest of the run", bad_codes_);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

// ---- the webhook --------------------------------------------------------------------------

void ApprovalChannels::webhook_loop() {
  std::uint64_t seen = 0;
  std::vector<std::uint64_t> sent;
  while (!opts_.gate->stopped()) {
    for (const auto& a : opts_.gate->open_asks()) {
      if (std::find(sent.begin(), sent.end(), a.id) != sent.end()) continue;
      sent.push_back(a.id);
      std::lock_guard lock(workers_mu_);
      workers_.push_back(signal_free_thread([this, a] { webhook_one(a); }));
    }
    seen = opts_.gate->wait_change(seen, std::chrono::steady_clock::now() + std::chrono::hours(1));
  }
}

void ApprovalChannels::webhook_one(ApprovalAsk ask) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  const long left_ms = static_cast<long>(std::max<std::int64_t>(0, ask.deadline_ms - now_ms));
  nlohmann::json body = {{"run", opts_.run_id},      {"id", ask.id},
                         {"secret", ask.secret},     {"host", ask.host},
                         {"method", ask.method},     {"path", ask.path},
                         {"request_hash", ask.request_hash},
                         {"pid", ask.pid},           {"exe", ask.exe},
                         {"expires_in_ms", left_ms}};
  const WebhookAnswer w = ask_approval_webhook(opts_.webhook_url, opts_.ca_file, body.dump(), ask.request_hash,
                                               std::chrono::steady_clock::now() + std::chrono::milliseconds(left_ms),
                                               &cancel_);
  if (w.verdict == ApprovalVerdict::Timeout) return;   // the gate times it out (and says so)
  opts_.gate->answer(ask.id, w.verdict, w.by, "webhook");
}

// ---- the client -------------------------------------------------------------------------

Result<std::string> send_approval_command(const std::string& run, const std::string& line) {
  // Only the socket the prompt named: the directory is writable by every process of this
  // user, the agent included, so a socket found there proves nothing by itself.
  const auto dash = run.find('-');
  pid_t kz_pid = 0;
  if (dash == std::string::npos || dash == 0 || dash + 1 >= run.size() ||
      run.find_first_not_of("0123456789") != dash || run.find_first_not_of("0123456789abcdef", dash + 1) != std::string::npos ||
      dash > 9 || (kz_pid = static_cast<pid_t>(std::stol(run.substr(0, dash)))) <= 1)
    return make_error(ErrorKind::Usage, "--run: \"" + printable(run) + "\" is not a run name as the prompt shows it");
  auto dir = approval_socket_dir(false);
  if (!dir) return make_error(ErrorKind::NotFound, "no kz run is waiting for an approval (" + dir.error().message + ")");
  const std::string path = *dir + "/" + run + ".sock";
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return make_error(ErrorKind::NotFound, "no run " + run + " waits (" + path + ": " + errno_text() + ")");
  if (!S_ISSOCK(st.st_mode) || st.st_uid != getuid())
    return make_error(ErrorKind::Denied, path + " is not a socket of this user");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return make_error(ErrorKind::Io, "approval socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorKind::Io, "socket: " + errno_text());
  const timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    return make_error(ErrorKind::NotFound, "no run " + run + " waits (" + why + ")");
  }
  // The listener must be that kz: the pid in the run's name, this user. (A socket planted
  // by the agent is held by the agent's process; it never sees the code.)
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid() || cred.pid != kz_pid) {
    ::close(fd);
    return make_error(ErrorKind::Denied, path + " is not held by kz (pid " + std::to_string(kz_pid) +
                                             "): not sent; the run's directory may have been tampered with");
  }
  write_all_fd(fd, line + "\n");
  std::string reply;
  char buf[512];
  ssize_t n;
  while (reply.size() < 4096 && (n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (reply.empty()) return make_error(ErrorKind::Io, "run " + run + " did not answer");
  return trim(reply);
}

}  // namespace kz
