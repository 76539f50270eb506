// The client side of the broker protocol (kz/wire/protocol.h), shared by the shim (over
// a unix socket, preload/broker_socket.h) and the fallback proxy (decide() in-process,
// launcher/proxy/decide_transport.h). It builds the fixed-size requests, keeps the
// connection grants (a swap the broker allowed again on the same connection costs no
// round trip; the uses are counted and reported) and applies each reply: the value in
// place of the token, the value's fingerprint for inbound redaction, fail closed on
// anything else.
//
// The client holds no lock and keeps no state of its own: the grants and fingerprints
// live in the connection's ConnState (the driver that passes it holds its lock), the
// request and reply buffers belong to the transport (one pair per thread), and the
// connection facts to the caller. So a slow broker answer or a slow handshake on one
// thread never waits on, or holds up, another thread's swap.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/preload/conn_table.h"
#include "kz/preload/outbound.h"
#include "kz/wire/protocol.h"

namespace kz::preload {

// How a request reaches the broker and the reply comes back.
class SwapTransport {
 public:
  // The calling thread's request buffer, for the client to fill; nullptr when there is
  // none (out of memory): the client then fails closed.
  virtual wire::Request* request() = 0;
  // Sends the calling thread's request; returns the reply, checked against the request's
  // op (wire::reply_is_valid), or nullptr when there is no usable answer (fail closed).
  // The reply stays valid until the calling thread's next request(); the client wipes
  // the request's data and the reply after each exchange.
  virtual wire::Reply* exchange() = 0;
  // Something the program's user should hear about (once per process at most).
  virtual void warn(const char* msg) { (void)msg; }
  // Whether the broker that granted this process's connections is still there. Asked
  // before a grant is used: a process that outlives its run (kz and its broker gone)
  // must not go on swapping unaudited. false: the client drops the connection's grants
  // and asks the broker, which fails closed.
  virtual bool broker_alive() { return true; }

 protected:
  ~SwapTransport() = default;
};

// What the broker needs to know about the connection, apart from its request line (kept
// in the ConnState). Gathered by the caller without holding any lock.
struct ConnFacts {
  wire::Channel channel = wire::Channel::Plain;
  std::uint32_t pid = 0;           // the process the request speaks for
  std::uint64_t conn_id = 0;       // 0: the ConnState's id
  char host[wire::kMaxHost];       // SNI, else the peer's IP literal
  std::size_t host_len = 0;
  char peer[wire::kMaxPeer];       // "1.2.3.4:443" / "[::1]:443"
  std::size_t peer_len = 0;
  // Fills the facts above from ctx when the first request needs them (SNI and the
  // certificate chain cost something to fetch; the shim may complete a handshake). Set
  // gathered to skip it.
  void (*gather)(ConnFacts* self) = nullptr;
  bool gathered = false;
  // Optional: fills host alone when that is cheap (the client named the server: its SNI)
  // and returns true; false leaves the facts to gather. A grant's recheck needs only the
  // host and the chain (peer_identity.h), so the peer's address is not formatted for it.
  bool (*gather_host)(ConnFacts* self) = nullptr;
  bool host_known = false;
  void* ctx = nullptr;             // the caller's connection (SSL*, session, fd, ...)
  // Writes the peer's DER chain, leaf first, into out; returns its length (0: none).
  std::size_t (*fill_chain)(void* ctx, unsigned char* out, std::size_t cap) = nullptr;
  // Optional: a digest of each certificate of that chain, leaf first, that the TLS
  // library already keeps (OpenSSL caches each certificate's SHA-1); 0 when it cannot
  // (then the DER chain is used). What a grant's peer identity is derived from, when
  // given and rechecked before each reuse (peer_identity.h): no encoding per request.
  std::size_t (*fill_chain_ids)(void* ctx, unsigned char* out, std::size_t cap) = nullptr;
  // What makes a swap on ctx unsafe right now (wire::kFlagKeyLog, kFlagNotSocketBio,
  // kFlagAlpnNotHttp1); 0 when nothing does. Asked on every swap, grants included: a
  // key-log callback or a memory BIO can be set after the first grant. A few pointer
  // reads through the TLS library; never called on a write without a token.
  std::uint8_t (*unsafe)(void* ctx) = nullptr;
  // Optional: ctx has finished its handshake, so the chain it reports is the live
  // connection's. Before that the library answers from the session the object holds,
  // which may be an earlier peer's (an object cleared past the hooks keeps its session
  // for resumption, then handshakes with whoever its new socket reaches). A grant's
  // recheck fails while this is false.
  bool (*handshake_done)(void* ctx) = nullptr;
  // Optional: ctx's next read or write through the library would start a handshake
  // (BrokerOps::handshake_unstarted; OpenSSL: SSL_in_before).
  bool (*handshake_unstarted)(void* ctx) = nullptr;
  // Optional: the broker granted reuse on ctx. The shim registers the TLS library's own
  // free path here (OpenSSL ex-data), so the grant ends however the object is freed.
  void (*on_grant)(void* ctx) = nullptr;
  // ctx talks to one peer for its whole life, and its ConnState is dropped before ctx
  // goes (the fallback proxy's session, with its one verified upstream): a grant is
  // then reused without re-deriving the peer's identity on every request. The shim leaves it false: an SSL* freed past its hooks may come
  // back as another connection at the same address.
  bool peer_fixed = false;

  // Runs gather once.
  void ensure_gathered() {
    if (gathered) return;
    gathered = true;
    host_len = 0;   // nothing gather_host set survives a gather that finds no host
    if (gather != nullptr) gather(this);
  }
  // host is set: by gather_host when it can, else by gather. A later gather sets host
  // afresh (see ensure_gathered).
  void ensure_host() {
    if (gathered || host_known) return;
    if (gather_host != nullptr && gather_host(this)) host_known = true;
    else ensure_gathered();
  }
};

class SwapClient {
 public:
  // Both must outlive the client. Construction costs two pointer stores (the shim makes
  // one per hook call).
  SwapClient(SwapTransport& transport, ConnFacts& facts) : t_(transport), facts_(facts) {}

  // BrokerOps (outbound.h) for the rewrite drivers, ctx = this.
  BrokerOps ops();

  // Allow: the value is in value_out[0, *value_len) (at most cap bytes). Incomplete:
  // *token_len = the length of the token tok begins. Anything else: send it unchanged.
  wire::Decision swap(ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                      std::size_t cap, std::size_t* value_len, std::size_t* token_len);
  // A token that goes out unchanged; the broker audits it.
  void report(ConnState* st, const char* tok, std::size_t len);
  // Inbound candidate p[0, len) in `form`: true when it was overwritten with its replacement.
  bool redact(ConnState* st, unsigned char* p, std::size_t len, std::uint32_t form);
  // A content-coded response on a connection that carries a value: the broker audits it.
  void report_coded(ConnState* st, const char* coding, std::size_t len);
  // The connection ends: report the uses of its grants not yet reported. Uses the host
  // and peer kept in st (the TLS object may be gone), not the facts.
  void report_grant_uses(ConnState* st);
  // An AWS SigV4 request to re-sign (wire::Op::Sign, sigv4_resign.h): Allow puts the
  // broker's 64-hex signature in sig_out and its offset in the head in *at. Never
  // answered from a grant: every signature is the broker's decision.
  wire::Decision sign(ConnState* st, const char* data, std::size_t n, std::uint32_t form, char* sig_out,
                      std::size_t* at);
  // A token in a token endpoint's response (wire::Op::Seal): true when p[0, len) was
  // overwritten with the broker's new token of the same length.
  bool seal(ConnState* st, unsigned char* p, std::size_t len);
  // Gathers the facts now (BrokerOps::prepare), unless st holds grants: then a swap is
  // most likely answered from them, and a new token gathers when it needs to.
  void prepare(const ConnState* st);
  // The connection's next library call would start a handshake (ConnFacts::handshake_unstarted).
  bool handshake_unstarted() const { return facts_.handshake_unstarted(facts_.ctx); }

 private:
  wire::Request* fill(wire::Op op, const ConnFacts& f, ConnState* st, const void* data, std::size_t n, bool at_end);
  const wire::Reply* round_trip(wire::Request* r);
  void wipe_exchange(wire::Request* r, const wire::Reply* rep);
  bool swap_from_grant(ConnState* st, const char* tok, std::size_t len, char* value_out, std::size_t cap,
                       std::size_t* value_len);
  void report_uses(ConnState* st, Grant& g);
  void remember_grant(ConnState* st, const char* tok, std::size_t len, const wire::Reply& rep, std::uint64_t peer);
  bool grants_match_peer(const ConnState* st);
  void drop_grants(ConnState* st);

  SwapTransport& t_;
  ConnFacts& facts_;
};

}  // namespace kz::preload
