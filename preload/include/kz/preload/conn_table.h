// Per-connection state, keyed by the TLS object (SSL* / gnutls_session_t) or, for plain
// TCP, nothing (plain sockets keep no state). Entries exist only for connections that
// have something to remember (a held token fragment, a held request, fingerprints for
// inbound redaction, the last request line); a process where no write ever held a token
// has an empty table and the hooks never look at it (count() == 0 is one atomic load).
//
// Lookup is lock-free: open addressing over atomic keys. Insert and remove (rare: on the
// first token of a connection, and in SSL_free / gnutls_deinit) take one mutex. The
// state of an entry has its own mutex, taken by the write/read drivers.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "kz/wire/protocol.h"
#include "kz/wire/token.h"
#include "kz/preload/inbound_stream.h"
#include "kz/preload/message_tracker.h"
#include "kz/preload/request_lines.h"

namespace kz::preload {

struct H2Conn;   // h2.h

struct Fingerprint {
  std::uint64_t base = 0, hash = 0;
  // The scan's quick filter (wire::fq_hash); quick_base 0: none, the scan uses `hash`.
  std::uint64_t quick_base = 0, quick = 0;
  std::uint32_t len = 0, secret_id = 0;
  std::uint32_t form = 0;   // wire::ValueForm of the bytes it fingerprints
};

// Every encoded form of up to 4 secrets per connection (wire::kValueFormCount each).
inline constexpr std::size_t kMaxFingerprints = 44;

// A broker answer the shim may reuse on this connection (wire::kReplyReuseOnConnection):
// the token, its value, and the uses not yet reported to the broker.
inline constexpr std::size_t kMaxGrants = 4, kMaxGrantLen = 512;
struct Grant {
  std::uint16_t token_len = 0, value_len = 0;
  std::uint32_t unreported = 0;
  char token[kMaxGrantLen];
  char value[kMaxGrantLen];
};
inline constexpr std::size_t kHoldLimit = std::size_t{1} << 20;   // held request bytes
inline constexpr std::uint32_t kReadersDropped = 0x80000000u;     // ConnState::readers

// What the inbound stream must know of a request to frame its response: a HEAD's has no
// body, a CONNECT's 2xx starts a tunnel (inbound.cpp).
enum class RequestKind : std::uint8_t { Other, Head, Connect };
// Requests sent whose final responses the inbound stream has not parsed yet, at most.
inline constexpr std::size_t kMaxPendingRequests = 128;

struct ConnState {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  // Taken before mu by every inbound read (inbound_read): one reader at a time. An h2
  // read waits in the library holding only this one (h2.h), so another thread's write
  // on the same connection is not held up behind a read that waits for its answer.
  pthread_mutex_t read_mu = PTHREAD_MUTEX_INITIALIZER;
  // Readers inside a ReadLock (waiting for read_mu or holding it), and kReadersDropped
  // once ConnTable::remove unlinked the state while one was: an h2 read waits in the
  // library without mu (h2.h), so a drop (SSL_free, SSL_clear, gnutls_deinit) from
  // another thread must not free the state under it; the last reader frees it instead.
  std::atomic<std::uint32_t> readers{0};
  std::uint64_t conn_id = 0;
  // Outbound.
  unsigned char carry[wire::kMaxTokenLen];   // bytes of a token that the last write ended inside
  std::size_t carry_len = 0;
  std::uint8_t prev_trailing = 0;            // the last write ended with this many bytes of a marker
  char prev_tail[wire::kMaxMarkerLen];       // ... which are these (wire/scanner.h: trailing_prefix_len)
  bool chunked_body = false;                 // the last head on this connection was chunked
  char* held = nullptr;                      // a request held until its body is complete
  std::size_t held_len = 0, held_cap = 0;
  char method[wire::kMaxMethod];
  char path[wire::kMaxPath];
  std::size_t method_len = 0, path_len = 0;
  // The request the next broker question is about (set per token by the rewrite): its
  // Host header and wire::kFlagHostInvalid / kFlagUnidentified.
  char http_host[wire::kMaxHost];
  std::size_t http_host_len = 0;
  std::uint8_t request_flags = 0;
  // The connection's request boundaries, from its first write on (message_tracker.h).
  MessageTracker tracker;
  bool tracker_fresh = true;   // no write tracked yet
  // Its bytes go to the library without the shim (conn_unfollow): Lost for good.
  bool unfollowed = false;
  // Inbound.
  Fingerprint fps[kMaxFingerprints];
  std::size_t nfps = 0;
  InboundStream in;   // used once nfps > 0 (see inbound.h)
  // The kinds of the requests sent while the connection carries a value, oldest first,
  // one per request head, popped per final response (a ring: no allocation). The
  // stream frames each response as the answer to its own request, never by `method`
  // (the request the last token was bound to). requests_unknown: a request went out
  // whose kind is not in the ring (the ring was full, the tracker lost the framing):
  // a response past the ring fails the read (inbound.cpp).
  RequestKind requests[kMaxPendingRequests];
  std::uint32_t requests_first = 0, requests_count = 0;
  bool requests_unknown = false;
  // Non-zero: a client secret with mint_hosts (this secret_id) went out on this
  // connection, so its responses are held whole and their tokens sealed (seal_response.h).
  std::uint32_t seal_secret = 0;
  // Grants, and what the use reports need once the TLS object may be gone (process exit).
  Grant grants[kMaxGrants];
  std::size_t ngrants = 0;
  // The identity of the peer the grants were given for (peer_identity.h): every reuse
  // recomputes it from the live TLS object, whose address may now belong to a new
  // session with another peer.
  std::uint64_t grant_peer = 0;
  wire::Channel channel = wire::Channel::Plain;
  char host[wire::kMaxHost];
  char peer[wire::kMaxPeer];
  std::size_t host_len = 0, peer_len = 0;
  // An HTTP/2 connection (its first write was the client preface): every write and read
  // goes through this engine (h2.h); freed with the entry.
  H2Conn* h2 = nullptr;
  // The connection's writes so far are the first preface_have bytes of the HTTP/2
  // client preface, held (nothing sent yet) until the rest tells h2 from HTTP/1.1.
  std::uint8_t preface_have = 0;
  // What a Report the next broker call sends is about (wire::kReport*; 0: a token sent
  // unchanged). Set and cleared around the call by the HTTP/2 engine.
  std::uint32_t report_reason = 0;

  bool has_outbound_state() const {
    return carry_len > 0 || prev_trailing > 0 || held_len > 0 || chunked_body || preface_have > 0;
  }
  // has_outbound_state() as of the end of the last locked write, readable without the
  // lock: a token-free body write on a connection with nothing pending takes no lock.
  // (A TLS object is written by one thread at a time; OpenSSL and GnuTLS require it.)
  std::atomic<bool> outbound_pending{false};
  // Records a fingerprint (deduplicated; the oldest is replaced when full).
  void add_fingerprint(const Fingerprint& f);
  void set_request_line(const char* m, std::size_t ml, const char* p, std::size_t pl);
  // host_count: how many Host headers the head has (the value is of the last one).
  void set_request_host(const char* h, std::size_t hl, unsigned host_count);
  // The request FIFO (requests above): a head sent; the oldest for a final response
  // (false: none is known).
  void push_request(RequestKind k);
  bool pop_request(RequestKind* k);
};

class ConnTable {
 public:
  static constexpr std::size_t kSlots = 4096;

  // Number of live entries; the hooks skip every lookup while it is 0.
  std::size_t count() const { return count_.load(std::memory_order_acquire); }
  // Lock-free; nullptr when the key has no entry.
  ConnState* find(const void* key) const;
  // Creates the entry when missing (zeroed, DONTDUMP memory); nullptr when the table is full.
  ConnState* find_or_create(const void* key);
  // Wipes and frees the entry. The caller guarantees no other thread uses the key (the
  // TLS object is being freed).
  void remove(const void* key);
  // After fork in the child: the insert mutex may have been held by another thread.
  void reset_lock_after_fork();
  // Calls f(key, state) for every entry. Only where no other thread can remove entries
  // (a fork child, process exit).
  template <class F>
  void for_each(F f) {
    for (std::size_t s = 0; s < kSlots; ++s) {
      const std::uintptr_t k = keys_[s].load(std::memory_order_acquire);
      ConnState* st = states_[s].load(std::memory_order_acquire);
      if (k > 1 && st != nullptr) f(reinterpret_cast<const void*>(k), st);
    }
  }
  void lock_for_fork();
  void unlock_after_fork();
  // Frees a state no longer in the table (remove, or the last reader of a removed one).
  static void destroy(ConnState* st);
  // Request lines of connections without an entry (see request_lines.h).
  RequestLines& lines() { return lines_; }
  // A connection wrote without an entry (the table was full): its bytes were not
  // tracked, and a connection that gets an entry later cannot be told from it, so new
  // entries start with their request framing lost (fail closed).
  void note_untracked() { untracked_.store(true, std::memory_order_relaxed); }
  bool untracked() const { return untracked_.load(std::memory_order_relaxed); }

 private:
  std::size_t slot_of(std::uintptr_t k) const;
  std::atomic<std::uintptr_t> keys_[kSlots] = {};
  std::atomic<ConnState*> states_[kSlots] = {};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> next_id_{1};
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
  std::atomic<bool> untracked_{false};
  RequestLines lines_;
};

// The process-wide table used by the hooks.
ConnTable& conn_table();

// RAII lock of one ConnState; publishes outbound_pending before it unlocks.
// The reader's lock (ConnState::read_mu), taken before the StateLock.
// A state removed from the table while a reader is inside is freed when the last reader
// leaves (ConnState::readers).
class ReadLock {
 public:
  explicit ReadLock(ConnState* s) : s_(s) {
    if (s_ == nullptr) return;
    s_->readers.fetch_add(1, std::memory_order_acq_rel);
    pthread_mutex_lock(&s_->read_mu);
  }
  ~ReadLock() {
    if (s_ == nullptr) return;
    pthread_mutex_unlock(&s_->read_mu);
    if (s_->readers.fetch_sub(1, std::memory_order_acq_rel) == (kReadersDropped | 1)) ConnTable::destroy(s_);
  }
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;
 private:
  ConnState* s_;
};

class StateLock {
 public:
  explicit StateLock(ConnState* s) : s_(s) { if (s_) pthread_mutex_lock(&s_->mu); }
  ~StateLock() {
    if (s_ == nullptr) return;
    s_->outbound_pending.store(s_->has_outbound_state(), std::memory_order_release);
    pthread_mutex_unlock(&s_->mu);
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
 private:
  ConnState* s_;
};

}  // namespace kz::preload
