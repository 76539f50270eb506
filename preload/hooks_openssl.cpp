// OpenSSL 3 hooks. Types and constants from the headers; every real function through
// dlsym (symbols.h), so programs without libssl never touch it.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>

#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "kz/preload/alpn.h"
#include "broker_socket.h"
#include "kz/preload/conn_table.h"
#include "fd_table.h"
#include "kz/preload/inbound.h"
#include "kz/preload/outbound.h"
#include "session_facts.h"
#include "shim.h"
#include "symbols.h"
#include "tls_common.h"
#include "witness.h"

using namespace kz::preload;

namespace {

struct Ossl {
  SSL* ssl;
  int last_ret = 0;   // the failing real SSL_write's return value
};

// The socket OpenSSL itself knows (SSL_set_fd); -1 behind a program's own BIO (curl).
int ossl_own_fd(SSL* ssl) {
  auto get_fd = KZ_REAL(Ssl, SSL_get_fd);
  return get_fd ? get_fd(ssl) : -1;
}

// The socket under ssl, also behind a program's own BIO: the socket the handshake was
// seen writing to (a table lookup: not for the per-write path).
int ossl_fd(SSL* ssl) {
  const int fd = ossl_own_fd(ssl);
  return fd >= 0 ? fd : session_fd_get(ssl);
}

// Completes a handshake the caller left to SSL_write (SNI/chain exist only after it).
// Without a socket under the object (a memory BIO, a BIO pair) only the program moves the
// handshake's bytes: one step, no waiting.
void ossl_finish_handshake(SSL* ssl) {
  auto finished = KZ_REAL(Ssl, SSL_is_init_finished);
  auto hs = KZ_REAL(Ssl, SSL_do_handshake);
  auto get_error = KZ_REAL(Ssl, SSL_get_error);
  if (!finished || !hs || !get_error) return;
  HandshakeScope scope(ssl);
  for (int i = 0; i < 10000 && !finished(ssl); ++i) {
    const int rc = hs(ssl);
    if (rc == 1 || ossl_fd(ssl) < 0) return;   // a program's own BIO shows its socket during a step
    const int e = get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) { if (!wait_fd(ossl_fd(ssl), POLLIN)) return; }
    else if (e == SSL_ERROR_WANT_WRITE) { if (!wait_fd(ossl_fd(ssl), POLLOUT)) return; }
    else return;
  }
}

// The SNI and the peer's address as the object has them now; no handshake.
void ossl_fill_as_is(ConnFacts* info) {
  SSL* ssl = static_cast<SSL*>(info->ctx);
  auto servername = KZ_REAL(Ssl, SSL_get_servername);
  const char* sni = servername ? servername(ssl, TLSEXT_NAMETYPE_host_name) : nullptr;
  fill_host_and_peer(info, ossl_fd(ssl), sni, sni ? std::strlen(sni) : 0);
}

void ossl_fill(ConnFacts* info) {
  ossl_finish_handshake(static_cast<SSL*>(info->ctx));
  ossl_fill_as_is(info);
}

// ConnFacts::handshake_done.
bool ossl_handshake_done(void* ctx) {
  auto finished = KZ_REAL(Ssl, SSL_is_init_finished);
  return finished != nullptr && finished(static_cast<SSL*>(ctx)) == 1;
}

// ConnFacts::handshake_unstarted: the next SSL_read or SSL_write would start a handshake,
// which OpenSSL begins with SSL_clear (through the PLT, so through the hook).
bool ossl_handshake_unstarted(void* ctx) {
  auto before = KZ_REAL(Ssl, SSL_in_before);
  return before != nullptr && before(static_cast<SSL*>(ctx)) == 1;
}

// ConnFacts::gather_host: the SNI the client set, when it set one (fill_host_and_peer's
// rule for host), on an object whose handshake is done. One that is not goes to the full
// gather, which completes the handshake first (as a grant's recheck did before).
bool ossl_fill_host(ConnFacts* info) {
  if (!ossl_handshake_done(info->ctx)) return false;
  auto servername = KZ_REAL(Ssl, SSL_get_servername);
  const char* sni = servername ? servername(static_cast<SSL*>(info->ctx), TLSEXT_NAMETYPE_host_name) : nullptr;
  return fill_host_from_sni(info, sni, sni ? std::strlen(sni) : 0);
}

std::size_t put_cert(X509* x, unsigned char* out, std::size_t cap, std::size_t used) {
  auto i2d = KZ_REAL(Crypto, i2d_X509);
  if (!i2d || x == nullptr) return used;
  const int len = i2d(x, nullptr);
  if (len <= 0 || used + static_cast<std::size_t>(len) > cap) return used;
  unsigned char* p = out + used;
  return i2d(x, &p) == len ? used + static_cast<std::size_t>(len) : used;
}

std::size_t ossl_chain(void* ctx, unsigned char* out, std::size_t cap) {
  SSL* ssl = static_cast<SSL*>(ctx);
  std::size_t used = 0;
  auto get_chain = KZ_REAL(Ssl, SSL_get_peer_cert_chain);
  auto stack_num = KZ_REAL(Crypto, OPENSSL_sk_num);
  auto stack_value = KZ_REAL(Crypto, OPENSSL_sk_value);
  const STACK_OF(X509)* chain = get_chain ? get_chain(ssl) : nullptr;
  if (chain != nullptr && stack_num && stack_value) {
    // Client side: the stack starts with the leaf.
    const auto* st = reinterpret_cast<const OPENSSL_STACK*>(chain);
    const int n = stack_num(st);
    for (int i = 0; i < n; ++i) used = put_cert(static_cast<X509*>(stack_value(st, i)), out, cap, used);
  }
  if (used == 0) {
    auto get1 = KZ_REAL(Ssl, SSL_get1_peer_certificate);
    auto x509_free = KZ_REAL(Crypto, X509_free);
    if (get1) {
      X509* leaf = get1(ssl);
      used = put_cert(leaf, out, cap, used);
      if (leaf && x509_free) x509_free(leaf);
    }
  }
  return used;
}

// The SHA-1 of each certificate of the peer's chain, leaf first (ConnFacts::fill_chain_ids).
// OpenSSL computes it when it checks a certificate and keeps it: X509_digest then copies
// it, where the DER chain costs an encoding of every certificate. 0 when any is missing.
std::size_t ossl_chain_ids(void* ctx, unsigned char* out, std::size_t cap) {
  SSL* ssl = static_cast<SSL*>(ctx);
  auto get_chain = KZ_REAL(Ssl, SSL_get_peer_cert_chain);
  auto stack_num = KZ_REAL(Crypto, OPENSSL_sk_num);
  auto stack_value = KZ_REAL(Crypto, OPENSSL_sk_value);
  auto digest = KZ_REAL(Crypto, X509_digest);
  auto sha1 = KZ_REAL(Crypto, EVP_sha1);
  if (!get_chain || !stack_num || !stack_value || !digest || !sha1) return 0;
  const STACK_OF(X509)* chain = get_chain(ssl);
  if (chain == nullptr) return 0;
  const auto* st = reinterpret_cast<const OPENSSL_STACK*>(chain);
  const int n = stack_num(st);
  const EVP_MD* md = sha1();
  std::size_t used = 0;
  for (int i = 0; i < n; ++i) {
    unsigned int len = 0;
    unsigned char d[EVP_MAX_MD_SIZE];
    const auto* x = static_cast<const X509*>(stack_value(st, i));
    if (x == nullptr || digest(x, md, d, &len) != 1 || len == 0 || used + len > cap) return 0;
    std::memcpy(out + used, d, len);
    used += len;
  }
  return used;
}

// A TCP socket that is connected: tracked from connect(), else asked (a socket the shim
// did not see connected, e.g. inherited).
bool connected_socket(int fd) {
  if (fd < 0) return false;
  if (fd_flags(fd) & kFdTcp) return true;
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0;
}

// A program's own BIO over a socket (curl's: one BIO for both directions) counts as that
// socket when the object's handshake was seen writing to it. Not a write BIO that is not
// also the read BIO (an agent can swap the write BIO after a verified handshake:
// SSL_set0_wbio), nor one of OpenSSL's in-memory BIOs (by name: curl's own method has
// BIO_TYPE_MEM's type too).
bool own_socket_bio(SSL* ssl, BIO* wbio) {
  auto get_rbio = KZ_REAL(Ssl, SSL_get_rbio);
  auto method_type = KZ_REAL(Crypto, BIO_method_type);
  auto method_name = KZ_REAL(Crypto, BIO_method_name);
  if (get_rbio == nullptr || method_type == nullptr || method_name == nullptr) return false;
  if (get_rbio(ssl) != wbio || method_type(wbio) == BIO_TYPE_BIO) return false;
  const char* name = method_name(wbio);
  if (name == nullptr) return false;
  for (const char* mem : {"memory buffer", "secure memory buffer", "NULL", "BIO pair"})
    if (std::strcmp(name, mem) == 0) return false;
  return true;
}

// What makes a swap on ssl unsafe at this write (see ConnFacts::unsafe). Each check is
// a call to an accessor of the real library; asked only for a write with a token.
std::uint8_t ossl_unsafe(void* ctx) {
  SSL* ssl = static_cast<SSL*>(ctx);
  std::uint8_t f = 0;
  // Key logging: a callback on the context (curl, Python set one for SSLKEYLOGFILE), or
  // the variable itself (OpenSSL >= 3.5 can honour it).
  auto get_ctx = KZ_REAL(Ssl, SSL_get_SSL_CTX);
  auto get_keylog = KZ_REAL(Ssl, SSL_CTX_get_keylog_callback);
  SSL_CTX* sctx = get_ctx ? get_ctx(ssl) : nullptr;
  const bool callback = get_ctx == nullptr || get_keylog == nullptr || (sctx != nullptr && get_keylog(sctx) != nullptr);
  if (callback || keylog_env_seen()) f |= kz::wire::kFlagKeyLog;
  // Where the records go: a socket BIO on a connected socket, or a program's own BIO
  // (curl) whose handshake the shim saw writing to a TCP socket. A memory BIO
  // (Python's ssl.MemoryBIO, BIO_s_mem, BIO pairs) hands the ciphertext to the program.
  auto get_wbio = KZ_REAL(Ssl, SSL_get_wbio);
  auto method_type = KZ_REAL(Crypto, BIO_method_type);
  auto bio_ctrl = KZ_REAL(Crypto, BIO_ctrl);
  BIO* wbio = get_wbio ? get_wbio(ssl) : nullptr;
  bool to_socket = false;
  if (wbio != nullptr && method_type != nullptr && bio_ctrl != nullptr && method_type(wbio) == BIO_TYPE_SOCKET) {
    int fd = -1;
    to_socket = bio_ctrl(wbio, BIO_C_GET_FD, 0, &fd) >= 0 && connected_socket(fd);
  } else if (wbio != nullptr && own_socket_bio(ssl, wbio)) {
    const int fd = session_fd_get(ssl);
    to_socket = fd >= 0 && (fd_flags(fd) & kFdTcp);
  }
  if (!to_socket) f |= kz::wire::kFlagNotSocketBio;
  // The negotiated protocol must be the one the shim follows on this connection: h2
  // through the HTTP/2 engine, else HTTP/1.1 (alpn.h).
  auto alpn = KZ_REAL(Ssl, SSL_get0_alpn_selected);
  const unsigned char* proto = nullptr;
  unsigned int plen = 0;
  if (alpn == nullptr) f |= kz::wire::kFlagAlpnNotHttp1;
  else {
    alpn(ssl, &proto, &plen);
    if (!alpn_allows_swap(proto, proto != nullptr ? plen : 0, conn_is_h2(ssl))) f |= kz::wire::kFlagAlpnNotHttp1;
  }
  return f;
}

// Write all of [p, p+n) with the real SSL_write, retrying on the SAME pointer/length.
bool ossl_write_all(void* ctx, const char* p, std::size_t n) {
  auto* o = static_cast<Ossl*>(ctx);
  auto real = KZ_REAL(Ssl, SSL_write);
  auto get_error = KZ_REAL(Ssl, SSL_get_error);
  if (!real || !get_error) {
    o->last_ret = -1;
    return false;
  }
  std::size_t off = 0;
  while (off < n) {
    const int chunk = n - off > INT_MAX ? INT_MAX : static_cast<int>(n - off);
    const int rc = real(o->ssl, p + off, chunk);
    if (rc > 0) {
      off += static_cast<std::size_t>(rc);   // partial write (SSL_MODE_ENABLE_PARTIAL_WRITE)
      continue;
    }
    const int e = get_error(o->ssl, rc);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      if (wait_fd(ossl_fd(o->ssl), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) continue;
    }
    o->last_ret = rc;
    return false;
  }
  return true;
}

// The grant's end through OpenSSL's own free path: an SSL ex-data index whose free
// callback OpenSSL runs from SSL_free however it is reached (the library's own symbol
// included, past the SSL_free hook). Registered once, at the first grant.
void ossl_ex_free(void* parent, void* ptr, CRYPTO_EX_DATA* ad, int idx, long argl, void* argp);

std::atomic<int> g_ex_index{-1};
pthread_once_t g_ex_once = PTHREAD_ONCE_INIT;

void ossl_register_ex_index() {
  auto new_index = KZ_REAL(Crypto, CRYPTO_get_ex_new_index);
  if (new_index == nullptr) return;
  g_ex_index.store(new_index(CRYPTO_EX_INDEX_SSL, 0, nullptr, nullptr, nullptr, ossl_ex_free),
                   std::memory_order_release);
}

// SwapClient's on_grant: OpenSSL calls a free callback for every SSL it frees (whether
// or not it holds data at the index); the marker is set as well so the entry is there
// under any OpenSSL that calls only for set data.
void ossl_on_grant(void* ctx) {
  pthread_once(&g_ex_once, ossl_register_ex_index);
  const int idx = g_ex_index.load(std::memory_order_acquire);
  auto set = KZ_REAL(Ssl, SSL_set_ex_data);
  static char marker;
  if (idx >= 0 && set != nullptr) set(static_cast<SSL*>(ctx), idx, &marker);
}

struct Ctx {
  Ossl o;
  ConnFacts facts;
  SwapClient client;
  BrokerOps b;
  WriteOps w;
  explicit Ctx(SSL* ssl) : o{ssl}, client(broker_socket(), facts) {
    init_facts(&facts, kz::wire::Channel::OpenSSL, ssl, ossl_fill, ossl_chain);
    facts.fill_chain_ids = ossl_chain_ids;
    facts.gather_host = ossl_fill_host;
    facts.handshake_done = ossl_handshake_done;
    facts.handshake_unstarted = ossl_handshake_unstarted;
    facts.unsafe = ossl_unsafe;
    facts.on_grant = ossl_on_grant;
    b = client.ops();
    w.ctx = &o;
    w.write_all = ossl_write_all;
  }
};

// A write on an object whose handshake is not done, with no socket under it (a memory BIO
// or a BIO pair, where every swap is refused anyway: kFlagNotSocketBio): only the program
// moves the handshake's bytes, so the shim cannot finish it, and the library must not
// start it under the connection's lock (OpenSSL starts it with SSL_clear, whose hook takes
// that lock). A handshake left to this write gets one step here, with no lock held. True
// when the write must go to the library as it is: the handshake is still under way with
// no socket shown (a program's own BIO over a socket shows one during the step), or the
// connection was given up on so already.
bool ossl_left_to_program(SSL* ssl) {
  if (ossl_fd(ssl) >= 0) return false;
  if (!ossl_handshake_unstarted(ssl)) return conn_unfollowed(conn_table(), ssl);
  ossl_finish_handshake(ssl);
  return !ossl_handshake_done(ssl) && ossl_fd(ssl) < 0;
}

// Common write path. Returns true and sets *out when the call was handled here.
WriteOutcome ossl_outbound(SSL* ssl, const void* buf, std::size_t len, int* failed_ret) {
  // Behind a program's own BIO the socket was marked when its handshake was seen.
  fd_mark_tls(ossl_own_fd(ssl));
  Ctx c(ssl);
  if (ossl_handshake_done(ssl)) {
    c.b.handshake_unstarted = nullptr;   // nothing to settle: one accessor call less
  } else if (ossl_left_to_program(ssl)) {
    conn_unfollow(conn_table(), ssl, static_cast<const char*>(buf), len, c.b);
    return WriteOutcome::PassThrough;
  }
  const WriteOutcome r =
      outbound_write(conn_table(), ssl, static_cast<const char*>(buf), len, config().fixup_lengths, c.b, c.w);
  if (r == WriteOutcome::Failed) *failed_ret = c.o.last_ret;
  return r;
}

// Drops what the shim kept for an SSL object that is going away (or whose address is
// reused), without asking the object anything: it may be half freed.
void ossl_forget(SSL* ssl) {
  session_forget(ssl);
  if (conn_table().find(ssl) == nullptr) {   // the common case (every SSL_new): no broker, no lock
    conn_table().lines().forget(ssl);
    return;
  }
  Guard g;
  Ctx c(ssl);
  c.facts.gathered = true;   // no SNI or handshake from a dying object
  c.facts.fill_chain = nullptr;
  conn_drop(conn_table(), ssl, c.b);
}

void ossl_ex_free(void* parent, void*, CRYPTO_EX_DATA*, int, long, void*) {
  if (parent != nullptr && config().enabled) ossl_forget(static_cast<SSL*>(parent));
}

void ossl_before_read(SSL* ssl) {
  if (conn_table().count() == 0) return;
  Ctx c(ssl);
  outbound_flush(conn_table(), ssl, c.b, c.w);
}

long ossl_stream_read(void* ctx, unsigned char* p, std::size_t cap) {
  auto real = KZ_REAL(Ssl, SSL_read);
  if (real == nullptr) return -1;
  return real(static_cast<SSL*>(ctx), p, cap > INT_MAX ? INT_MAX : static_cast<int>(cap));
}

// The stream is over for good: the peer closed (with or without close_notify) or the
// connection failed; not a want-read/want-write.
bool ossl_stream_ended(void* ctx, long rc) {
  auto get_error = KZ_REAL(Ssl, SSL_get_error);
  if (get_error == nullptr) return false;
  const int e = get_error(static_cast<SSL*>(ctx), static_cast<int>(rc));
  return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL;
}

// A connection that carries a value reads through its inbound stream (inbound.h).
// Returns false when it has none (the hook reads as usual); else *rc is what SSL_read
// returns: bytes, or the library's own result, or -1 with errno EPROTO for a
// content-coded response.
ReadOps ossl_read_ops(SSL* ssl) {
  ReadOps r;
  r.ctx = ssl;
  r.read = ossl_stream_read;
  r.ended = ossl_stream_ended;
  return r;
}

// What SSL_read returns for an inbound result other than PassThrough: bytes, the
// library's own result, or -1 with errno EPROTO.
int ossl_read_result(InboundRead how, std::size_t got, long lib) {
  switch (how) {
    case InboundRead::Delivered: return static_cast<int>(got);
    case InboundRead::Library: return static_cast<int>(lib);
    case InboundRead::PassThrough:
    case InboundRead::Failed: break;
  }
  errno = EPROTO;
  return -1;
}

bool ossl_stream(SSL* ssl, void* buf, std::size_t num, bool peek, int* rc) {
  if (conn_table().count() == 0 || num == 0) return false;
  Ctx c(ssl);
  std::size_t got = 0;
  long lib = 0;
  const InboundRead how = inbound_read(conn_table(), ssl, static_cast<unsigned char*>(buf), num, peek, c.b,
                                       ossl_read_ops(ssl), &got, &lib);
  if (how == InboundRead::PassThrough) return false;
  *rc = ossl_read_result(how, got, lib);
  return true;
}

// A read that went to the library as it is returned rc > 0 bytes: when a value went out
// on the connection meanwhile, they go through its stream (inbound_after_passthrough).
int ossl_after_passthrough(SSL* ssl, void* buf, std::size_t num, bool peek, int rc) {
  if (rc <= 0 || buf == nullptr || conn_table().count() == 0) return rc;
  Ctx c(ssl);
  std::size_t got = 0;
  long lib = 0;
  const InboundRead how = inbound_after_passthrough(conn_table(), ssl, static_cast<unsigned char*>(buf),
                                                    static_cast<std::size_t>(rc), num, peek, c.b, ossl_read_ops(ssl),
                                                    &got, &lib);
  return how == InboundRead::PassThrough ? rc : ossl_read_result(how, got, lib);
}

}  // namespace

KZ_EXPORT int SSL_write(SSL* ssl, const void* buf, int num) {
  auto real = KZ_REAL(Ssl, SSL_write);
  if (real == nullptr) return -1;
  if (num > 0 && witness_refuses_ossl(ssl, buf, static_cast<std::size_t>(num), kz::preload::witness::kSslWrite)) return -1;
  if (!shim_active() || num <= 0 || buf == nullptr) return real(ssl, buf, num);
  Guard g;
  int failed = -1;
  switch (ossl_outbound(ssl, buf, static_cast<std::size_t>(num), &failed)) {
    case WriteOutcome::PassThrough: return real(ssl, buf, num);
    case WriteOutcome::Consumed: return num;
    case WriteOutcome::Failed: return failed;
  }
  return -1;
}

KZ_EXPORT int SSL_write_ex(SSL* ssl, const void* buf, size_t num, size_t* written) {
  auto real = KZ_REAL(Ssl, SSL_write_ex);
  if (real == nullptr) return 0;
  if (witness_refuses_ossl(ssl, buf, num, kz::preload::witness::kSslWriteEx)) {
    if (written) *written = 0;
    return 0;
  }
  if (!shim_active() || num == 0 || buf == nullptr) return real(ssl, buf, num, written);
  Guard g;
  int failed = 0;
  switch (ossl_outbound(ssl, buf, num, &failed)) {
    case WriteOutcome::PassThrough: return real(ssl, buf, num, written);
    case WriteOutcome::Consumed:
      if (written) *written = num;
      return 1;
    case WriteOutcome::Failed:
      if (written) *written = 0;
      return 0;
  }
  return 0;
}

namespace {

// SSL_read and SSL_peek (and their _ex forms) alike: send what is held for the
// connection first; then, on a connection that carries a value, read through its
// inbound stream (values redacted), else straight from the library.
int hooked_read(int (*real)(SSL*, void*, int), SSL* ssl, void* buf, int num, bool peek) {
  if (real == nullptr) return -1;
  if (!shim_active()) return real(ssl, buf, num);
  Guard g;
  ossl_before_read(ssl);
  int rc = 0;
  if (num > 0 && buf != nullptr && ossl_stream(ssl, buf, static_cast<std::size_t>(num), peek, &rc)) return rc;
  return num > 0 ? ossl_after_passthrough(ssl, buf, static_cast<std::size_t>(num), peek, real(ssl, buf, num))
                 : real(ssl, buf, num);
}

int hooked_read_ex(int (*real)(SSL*, void*, size_t, size_t*), SSL* ssl, void* buf, size_t num, size_t* got,
                   bool peek) {
  if (real == nullptr) return 0;
  if (!shim_active()) return real(ssl, buf, num, got);
  Guard g;
  ossl_before_read(ssl);
  int rc = 0;
  if (buf != nullptr && ossl_stream(ssl, buf, num, peek, &rc)) {
    if (got != nullptr) *got = rc > 0 ? static_cast<size_t>(rc) : 0;
    return rc > 0 ? 1 : 0;
  }
  std::size_t n = 0;
  const int ok = real(ssl, buf, num, &n);
  if (ok > 0 && n > 0) {
    const int k = ossl_after_passthrough(ssl, buf, num > INT_MAX ? INT_MAX : num, peek,
                                         static_cast<int>(n > INT_MAX ? INT_MAX : n));
    if (got != nullptr) *got = k > 0 ? static_cast<size_t>(k) : 0;
    return k > 0 ? 1 : 0;
  }
  if (got != nullptr) *got = n;
  return ok;
}

}  // namespace

KZ_EXPORT int SSL_read(SSL* ssl, void* buf, int num) { return hooked_read(KZ_REAL(Ssl, SSL_read), ssl, buf, num, false); }

KZ_EXPORT int SSL_read_ex(SSL* ssl, void* buf, size_t num, size_t* readbytes) {
  return hooked_read_ex(KZ_REAL(Ssl, SSL_read_ex), ssl, buf, num, readbytes, false);
}

KZ_EXPORT int SSL_peek(SSL* ssl, void* buf, int num) { return hooked_read(KZ_REAL(Ssl, SSL_peek), ssl, buf, num, true); }

KZ_EXPORT int SSL_peek_ex(SSL* ssl, void* buf, size_t num, size_t* readbytes) {
  return hooked_read_ex(KZ_REAL(Ssl, SSL_peek_ex), ssl, buf, num, readbytes, true);
}

// Bytes the inbound stream holds count as pending: a program that polls the socket only
// when SSL_pending is 0 would otherwise wait for bytes already read.
KZ_EXPORT int SSL_pending(const SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_pending);
  const int n = real != nullptr ? real(ssl) : 0;
  if (!shim_active() || conn_table().count() == 0) return n;
  return n + static_cast<int>(inbound_pending(conn_table(), ssl));
}

KZ_EXPORT int SSL_has_pending(const SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_has_pending);
  const int n = real != nullptr ? real(ssl) : 0;
  if (n != 0 || !shim_active() || conn_table().count() == 0) return n;
  return inbound_pending(conn_table(), ssl) > 0 ? 1 : 0;
}

KZ_EXPORT int SSL_shutdown(SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_shutdown);
  if (real == nullptr) return -1;
  if (shim_active()) {
    Guard g;
    ossl_before_read(ssl);
  }
  return real(ssl);
}

namespace {

// What the shim kept for an object being freed or cleared goes; the use reports name the
// host and peer as the object has them. No handshake from here: SSL_clear runs inside
// OpenSSL's own handshake (through the PLT), where another would re-enter this hook
// under the connection's lock.
void ossl_drop_intact(SSL* ssl) {
  Guard g;
  Ctx c(ssl);
  c.facts.gather = ossl_fill_as_is;
  c.facts.gather_host = nullptr;
  c.facts.fill_chain = nullptr;
  conn_drop(conn_table(), ssl, c.b);
}

}  // namespace

KZ_EXPORT void SSL_free(SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_free);
  if (ssl != nullptr && config().enabled) session_forget(ssl);
  if (ssl != nullptr && config().enabled) ossl_drop_intact(ssl);
  if (real) real(ssl);
}

// A new object may sit where one freed past the hooks was (and past the ex-data
// callback, if the program removed it): nothing of that one carries over.
KZ_EXPORT SSL* SSL_new(SSL_CTX* ctx) {
  auto real = KZ_REAL(Ssl, SSL_new);
  if (real == nullptr) return nullptr;
  SSL* ssl = real(ctx);
  if (ssl != nullptr && config().enabled) ossl_forget(ssl);
  return ssl;
}

// SSL_clear readies the object for a new connection (maybe to another peer): what the
// shim knew about the old one, grants included, goes.
KZ_EXPORT int SSL_clear(SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_clear);
  if (real == nullptr) return 0;
  if (ssl != nullptr && config().enabled) {
    ossl_drop_intact(ssl);
    session_forget(ssl);
  }
  return real(ssl);
}

// Handshakes: note the socket the records go to (see session_facts.h).
KZ_EXPORT int SSL_connect(SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_connect);
  if (real == nullptr) return -1;
  if (!config().enabled) return real(ssl);
  (void)keylog_env_seen();
  HandshakeScope scope(ssl);
  return real(ssl);
}

KZ_EXPORT int SSL_do_handshake(SSL* ssl) {
  auto real = KZ_REAL(Ssl, SSL_do_handshake);
  if (real == nullptr) return -1;
  if (!config().enabled) return real(ssl);
  HandshakeScope scope(ssl);
  return real(ssl);
}

// ALPN: with [blind] http2 = false, drop "h2" so the server answers HTTP/1.1; else the
// offer is left alone and an h2 connection goes through the HTTP/2 engine (h2.h).
KZ_EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX* ctx, const unsigned char* protos, unsigned int len) {
  auto real = KZ_REAL(Ssl, SSL_CTX_set_alpn_protos);
  if (real == nullptr) return 1;
  if (!shim_active() || config().http2 || protos == nullptr || len == 0 || len > 4096) return real(ctx, protos, len);
  unsigned char out[4096 + 16];
  const std::size_t n = alpn_filter_wire(protos, len, out, sizeof out);
  return real(ctx, out, static_cast<unsigned int>(n));
}

KZ_EXPORT int SSL_set_alpn_protos(SSL* ssl, const unsigned char* protos, unsigned int len) {
  auto real = KZ_REAL(Ssl, SSL_set_alpn_protos);
  if (real == nullptr) return 1;
  if (!shim_active() || config().http2 || protos == nullptr || len == 0 || len > 4096) return real(ssl, protos, len);
  unsigned char out[4096 + 16];
  const std::size_t n = alpn_filter_wire(protos, len, out, sizeof out);
  return real(ssl, out, static_cast<unsigned int>(n));
}
