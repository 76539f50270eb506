#include "broker_socket.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kz/preload/scratch.h"
#include "send_credentials.h"
#include "shim.h"

namespace kz::preload {

namespace {

using wire::Reply;
using wire::Request;

// One thread's broker connection and buffers, in one DONTDUMP mapping. Every link is on
// a list (for fork) that its own lock guards only while links come and go.
struct Link {
  Request req;
  Reply rep;
  int fd;
  Link* prev;
  Link* next;
};

thread_local Link* t_link __attribute__((tls_model("initial-exec"))) = nullptr;
pthread_mutex_t g_links_mu = PTHREAD_MUTEX_INITIALIZER;
Link* g_links = nullptr;
pthread_key_t g_exit_key;
bool g_have_exit_key = false;

// Raw system calls: our own socket must not go through the shim's hooks.
void sys_close(int fd) { syscall(SYS_close, fd); }

void drop_connection(Link* l) {
  if (l->fd >= 0) sys_close(l->fd);
  l->fd = -1;
}

// Caller holds g_links_mu.
void unlink_locked(Link* l) {
  if (l->prev != nullptr) l->prev->next = l->next;
  else g_links = l->next;
  if (l->next != nullptr) l->next->prev = l->prev;
}

// Thread exit: the thread's connection closes and its buffers are wiped.
void release_link(void* p) {
  auto* l = static_cast<Link*>(p);
  pthread_mutex_lock(&g_links_mu);
  unlink_locked(l);
  pthread_mutex_unlock(&g_links_mu);
  if (t_link == l) t_link = nullptr;
  drop_connection(l);
  scratch_free(l, sizeof(Link));
}

Link* this_thread_link() {
  if (t_link != nullptr) return t_link;
  auto* l = static_cast<Link*>(scratch_alloc(sizeof(Link)));   // zeroed
  if (l == nullptr) {
    log_once("blind mode: out of memory for the broker client; tokens go out unchanged");
    return nullptr;
  }
  l->fd = -1;
  pthread_mutex_lock(&g_links_mu);
  l->next = g_links;
  if (g_links != nullptr) g_links->prev = l;
  g_links = l;
  pthread_mutex_unlock(&g_links_mu);
  if (g_have_exit_key) pthread_setspecific(g_exit_key, l);
  t_link = l;
  return l;
}

bool ensure_connected(Link* l) {
  if (l->fd >= 0) return true;
  const char* path = config().broker_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) {
    log_once("blind mode: broker socket path too long; tokens go out unchanged");
    return false;
  }
  std::strcpy(addr.sun_path, path);
  const int fd = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd < 0) {
    log_once("blind mode: cannot create the broker socket; tokens go out unchanged");
    return false;
  }
  // A broker that stops answering must not hang the agent forever.
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (syscall(SYS_connect, fd, &addr, sizeof addr) != 0) {
    sys_close(fd);
    log_once("blind mode: cannot reach the broker; tokens go out unchanged");
    return false;
  }
  l->fd = fd;
  return true;
}

// From the first exchange with the broker on, this process may hold values (a grant
// keeps one for the life of its TLS connection; a reply, during a write; a redacted
// response, while it is read). A non-dumpable process cannot be read by another process
// of the same user without CAP_SYS_PTRACE, whatever Yama's ptrace_scope says:
// /proc/PID/mem, process_vm_readv, ptrace attach and pidfd_getfd all fail, and no core
// dump is written. Set once per process image (a fork child inherits it; exec resets
// the kernel's flag and this one alike). Before any value, so nothing is lost if the
// call fails: then the broker is still asked (the kernel says no only under seccomp or
// an LSM that forbids prctl, which the run does not set).
int g_undumpable = 0;
void become_undumpable() {
  if (__atomic_load_n(&g_undumpable, __ATOMIC_RELAXED) != 0) return;
  syscall(SYS_prctl, PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
  __atomic_store_n(&g_undumpable, 1, __ATOMIC_RELAXED);
}

// After a Hold reply: waits (poll, not the socket's 30 s receive timeout) for the
// broker's final answer, up to the seconds the Hold named and a margin. -1: none came.
long await_held_answer(Link* l, wire::Op op) {
  timespec now{}, end{};
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += static_cast<time_t>(l->rep.token_len) + 5;
  while (true) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) return -1;
    timespec left{end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec};
    if (left.tv_nsec < 0) { left.tv_sec -= 1; left.tv_nsec += 1000000000L; }
    pollfd p{l->fd, POLLIN, 0};
    const long r = syscall(SYS_ppoll, &p, 1, &left, nullptr, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    long got;
    do {
      got = syscall(SYS_recvfrom, l->fd, &l->rep, sizeof(Reply), MSG_TRUNC, nullptr, nullptr);
    } while (got < 0 && errno == EINTR);
    if (got <= 0 || !wire::reply_is_valid(l->rep, static_cast<std::size_t>(got), op)) return got;
    if (l->rep.decision != wire::Decision::Hold) return got;
  }
}

}  // namespace

Request* BrokerSocket::request() {
  Link* l = this_thread_link();
  return l != nullptr ? &l->req : nullptr;
}

Reply* BrokerSocket::exchange() {
  Link* l = t_link;
  if (l == nullptr) return nullptr;
  const wire::Op op = l->req.op;
  become_undumpable();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ensure_connected(l)) return nullptr;
    const long s = send_with_credentials(l->fd, &l->req, sizeof(Request));
    if (s != static_cast<long>(sizeof(Request))) {
      drop_connection(l);   // the broker restarted or closed us: one reconnect
      continue;
    }
    // MSG_TRUNC: the return value is the real message size, so an oversized reply is
    // detected instead of silently cut.
    long got;
    do {
      got = syscall(SYS_recvfrom, l->fd, &l->rep, sizeof(Reply), MSG_TRUNC, nullptr, nullptr);
    } while (got < 0 && errno == EINTR);
    // Hold (approve = ...): a person is asked; the answer follows on this connection
    // within the seconds the broker named. Only this thread's write waits.
    if (got > 0 && wire::reply_is_valid(l->rep, static_cast<std::size_t>(got), op) &&
        l->rep.decision == wire::Decision::Hold)
      got = await_held_answer(l, op);
    if (got < 0 || !wire::reply_is_valid(l->rep, static_cast<std::size_t>(got), op) ||
        l->rep.decision == wire::Decision::Hold) {
      drop_connection(l);   // a late or malformed reply must not be paired with the next request
      explicit_bzero(&l->rep, sizeof(Reply));
      log_once(got < 0 ? "blind mode: no answer from the broker; tokens go out unchanged"
                       : "blind mode: malformed broker reply; tokens go out unchanged");
      return nullptr;
    }
    return &l->rep;
  }
  log_once("blind mode: lost the broker connection; tokens go out unchanged");
  return nullptr;
}

void BrokerSocket::warn(const char* msg) { log_once(msg); }

bool BrokerSocket::broker_alive() {
  Link* l = this_thread_link();
  if (l == nullptr) return false;
  if (l->fd >= 0) {
    pollfd p{l->fd, POLLIN, 0};
    const timespec no_wait{0, 0};
    // Readable with nothing sent means a reply is out of step, or the peer hung up.
    if (syscall(SYS_ppoll, &p, 1, &no_wait, nullptr, 0) == 0) return true;
    drop_connection(l);
  }
  return ensure_connected(l);
}

BrokerSocket& broker_socket() {
  static constinit BrokerSocket s;
  return s;
}

std::uint32_t g_shim_pid = 0;

void broker_socket_init() {
  g_shim_pid = static_cast<std::uint32_t>(getpid());
  g_have_exit_key = pthread_key_create(&g_exit_key, release_link) == 0;
}

void broker_socket_lock_for_fork() { pthread_mutex_lock(&g_links_mu); }
void broker_socket_unlock_after_fork() { pthread_mutex_unlock(&g_links_mu); }

void broker_socket_reset_after_fork() {
  pthread_mutex_init(&g_links_mu, nullptr);
  g_shim_pid = static_cast<std::uint32_t>(getpid());
  Link* l = g_links;
  while (l != nullptr) {
    Link* next = l->next;
    drop_connection(l);   // shared with the parent: replies would interleave
    if (l != t_link) {
      // A thread that does not exist here; its thread-exit cleanup never runs.
      unlink_locked(l);
      scratch_free(l, sizeof(Link));
    }
    l = next;
  }
}

}  // namespace kz::preload
