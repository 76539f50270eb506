#include "proxy/proxy_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>

#include <boost/asio/buffer.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "kz/preload/inbound.h"
#include "kz/preload/outbound.h"
#include "kz/wipe.h"
#include "proxy/client_hello.h"
#include "secrets/binding.h"
#include "secrets/process_tree.h"

namespace kz {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// 16 KiB: one TLS record's plaintext, which is the most a TLS read returns.
constexpr std::size_t kBuf = 16384;
static_assert(kBuf >= kMaxClientHello);
// A held request or token fragment goes out when the client has sent nothing more for
// this long (the shim sends it when the client starts reading; the proxy cannot see that).
constexpr auto kIdleFlush = std::chrono::milliseconds(100);
// The HTTP/2 drivers are in (h2 may be offered to the destination).
constexpr bool kH2Relay = true;
constexpr std::size_t kH2PrefaceLen = 24;   // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

tcp::endpoint endpoint_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) {
    const auto& s = reinterpret_cast<const sockaddr_in&>(a);
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &s.sin_addr, 4);
    return {asio::ip::address_v4(b), ntohs(s.sin_port)};
  }
  const auto& s = reinterpret_cast<const sockaddr_in6&>(a);
  asio::ip::address_v6::bytes_type b;
  std::memcpy(b.data(), &s.sin6_addr, 16);
  return {asio::ip::address_v6(b, s.sin6_scope_id), ntohs(s.sin6_port)};
}

sockaddr_storage storage_of(const tcp::endpoint& e) {
  sockaddr_storage s{};
  std::memcpy(&s, e.data(), e.size());
  return s;
}

// The destination as a host for binding checks and the leaf: its IP literal (a
// v4-mapped IPv6 address as the IPv4 literal, which is what the program asked for).
std::string ip_literal(const sockaddr_storage& a) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, ip, sizeof ip);
  } else if (a.ss_family == AF_INET6) {
    const auto& s6 = reinterpret_cast<const sockaddr_in6&>(a);
    if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) inet_ntop(AF_INET, &s6.sin6_addr.s6_addr[12], ip, sizeof ip);
    else inet_ntop(AF_INET6, &s6.sin6_addr, ip, sizeof ip);
  }
  return ip;
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
  }
  return false;
}

// The upstream's certificates, DER, leaf first, as the shim sends them to the broker;
// certificates past wire::kMaxChain are left out.
std::string der_chain(SSL* ssl) {
  std::string out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  const int n = chain != nullptr ? sk_X509_num(chain) : 0;
  for (int i = 0; i < n; ++i) {
    const int len = i2d_X509(sk_X509_value(chain, i), nullptr);
    if (len <= 0 || out.size() + static_cast<std::size_t>(len) > wire::kMaxChain) break;
    const std::size_t at = out.size();
    out.resize(at + static_cast<std::size_t>(len));
    auto* p = reinterpret_cast<unsigned char*>(out.data() + at);
    i2d_X509(sk_X509_value(chain, i), &p);
  }
  return out;
}

void set_nodelay(tcp::socket& s) {
  error_code ig;
  s.set_option(tcp::no_delay(true), ig);
}

void scan_sink(void* ctx, const char* tok, std::size_t len) {
  static_cast<ProxySwapClient*>(ctx)->report_token(tok, len);
}

bool benign_end(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

bool proxy_relays_h2() { return kH2Relay; }

bool ProxyShared::host_bound(const std::string& host) const {
  if (host.empty()) return false;
  for (const auto& s : opts.decide.table->secrets()) {
    if (host_allowed(s.binding, host)) return true;
    // Tokens sealed from a token endpoint's answer go to the mint_hosts (decide_seal.h).
    Binding sealed;
    sealed.hosts = s.mint_hosts;
    if (!s.mint_hosts.empty() && host_allowed(sealed, host)) return true;
  }
  return false;
}

void ProxyShared::audit(AuditEvent event) const {
  if (opts.audit == nullptr) return;
  try {
    opts.audit->record(std::move(event));
  } catch (...) {
    // An audit sink that throws must not take a connection (or a thread) down.
  }
}

ProxySession::ProxySession(ProxyShared& sh, tcp::socket client)
    : sh_(sh), ex_(client.get_executor()), client_(std::move(client)), upstream_(ex_) {
  mem_.reset(new char[2 * kBuf]);
  cbuf_ = mem_.get();
  ubuf_ = mem_.get() + kBuf;
  swap_.decide = &sh_.opts.decide;
  swap_.audit = sh_.opts.audit;
  swap_.conn_id = sh_.next_conn_id.fetch_add(1, std::memory_order_relaxed);
  swap_.while_held = [this](const std::function<void()>& wait) {
    auto& io = static_cast<asio::io_context&>(asio::query(ex_, asio::execution::context));
    sh_.held.serve_while(io, wait);
  };
  ops_ = swapper_.ops();
  wops_.ctx = this;
  wops_.write_all = &ProxySession::write_all_cb;
}

ProxySession::~ProxySession() {
  drop_state();
  if (!obuf_.empty()) wipe(obuf_.data(), obuf_.size());
  if (!dbuf_.empty()) wipe(dbuf_.data(), dbuf_.size());
  if (!h2_head_.empty()) wipe(h2_head_.data(), h2_head_.size());
  std::lock_guard lock(sh_.mu);
  sh_.live.erase(this);
}

bool ProxySession::write_all_cb(void* ctx, const char* p, std::size_t n) {
  auto* self = static_cast<ProxySession*>(ctx);
  try {
    self->obuf_.append(p, n);
  } catch (...) {
    return false;
  }
  return true;
}

void ProxySession::record(const char* decision, const std::string& reason) {
  ProxyConnection a{decision, reason};
  if (swap_.pid > 0) {
    a.pid = static_cast<long>(swap_.pid);
    a.exe = executable_of(swap_.pid);
  }
  if (!swap_.host.empty()) a.host = swap_.host;
  if (!dest_text_.empty()) a.peer = dest_text_;
  a.conn = swap_.conn_id;
  sh_.audit(std::move(a));
}

void ProxySession::start() {
  error_code ec;
  const tcp::endpoint peer = client_.remote_endpoint(ec);
  if (ec) return close_all();
  set_nodelay(client_);
  std::optional<OriginalDestination> dest;
  try {
    if (sh_.opts.original) dest = sh_.opts.original(storage_of(peer));
  } catch (...) {
    dest.reset();
  }
  if (!dest || (dest->addr.ss_family != AF_INET && dest->addr.ss_family != AF_INET6)) {
    ProxyConnection a{"refuse", "unknown original destination"};
    a.client = format_address(storage_of(peer));
    sh_.audit(std::move(a));
    return close_all();
  }
  dest_ = dest->addr;
  dest_text_ = format_address(dest_);
  swap_.pid = dest->pid;
  swap_.peer = dest_text_;
  if (same_address(dest_, sh_.listen4) || same_address(dest_, sh_.listen6)) {
    record("refuse", "the destination is the proxy itself");
    return close_all();
  }
  bool shim = false;
  try {
    shim = sh_.opts.route && dest->pid > 0 && sh_.opts.route(dest->pid) == Route::Shim;
    if (shim && sh_.opts.shim_served) sh_.opts.shim_served(dest->pid);
  } catch (...) {
    shim = false;
  }
  connect_upstream();
  if (shim) {
    // The shim serves this program (its TLS writes are rewritten in the program): pass
    // its bytes through untouched.
    hello_done_ = true;
    decided(Next::SpliceRaw);
    return;
  }
  read_hello();
}

void ProxySession::connect_upstream() {
  upstream_.async_connect(endpoint_of(dest_), [self = shared_from_this()](const error_code& ec) { self->on_connected(ec); });
}

void ProxySession::on_connected(const error_code& ec) {
  if (closed_) return;
  if (ec) {
    // The client connected "successfully" to us; a reset is the closest to what it would
    // have seen from the destination.
    error_code ig;
    client_.set_option(asio::socket_base::linger(true, 0), ig);
    return close_all();
  }
  connected_ = true;
  set_nodelay(upstream_);
  if (next_ != Next::Undecided) return proceed();
  // While we wait for the ClientHello: a server that speaks first (SSH, SMTP, MySQL)
  // means the client is waiting for it, not about to send TLS.
  upstream_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& e) { self->on_upstream_readable(e); });
}

void ProxySession::on_upstream_readable(const error_code& ec) {
  if (closed_ || ec || hello_done_) return;
  hello_done_ = true;
  decided(Next::SpliceScan);
}

void ProxySession::read_hello() {
  hello_reading_ = true;
  client_.async_read_some(asio::buffer(cbuf_ + hello_len_, kMaxClientHello - hello_len_),
                          [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_hello_read(ec, n); });
}

void ProxySession::on_hello_read(const error_code& ec, std::size_t n) {
  hello_reading_ = false;
  if (closed_) return;
  hello_len_ += n;
  if (hello_done_) {
    // Decided while this read was out (a server that speaks first): the splice takes
    // these bytes first.
    if (next_ == Next::SpliceScan || next_ == Next::SpliceRaw) {
      if (connected_) {
        if (ec && ec != asio::error::eof) return close_all();
        if (ec && hello_len_ == 0) {
          c_done_ = true;
          error_code ig;
          upstream_.shutdown(tcp::socket::shutdown_send, ig);
          return direction_done();
        }
        splice_c2u_write(hello_len_);
      }
    }
    return;
  }
  if (ec) {
    if (hello_len_ == 0) return close_all();   // the client left without a byte
    // The client stopped (or half-closed) before a whole ClientHello: what it sent goes
    // through unchanged, and its end follows.
    hello_done_ = true;
    const ClientHello h = parse_client_hello(reinterpret_cast<const unsigned char*>(cbuf_), hello_len_);
    return decided(h.status == HelloStatus::NotTls ? Next::SpliceScan : Next::SpliceRaw);
  }
  const ClientHello h = parse_client_hello(reinterpret_cast<const unsigned char*>(cbuf_), hello_len_);
  if (h.status == HelloStatus::NeedMore && hello_len_ < kMaxClientHello) return read_hello();
  hello_done_ = true;
  if (h.status == HelloStatus::NotTls) return decided(Next::SpliceScan);
  if (h.status != HelloStatus::Complete || !h.sni_valid) return decided(Next::SpliceRaw);
  swap_.host = h.sni.empty() ? ip_literal(dest_) : h.sni;
  client_alpn_ = h.alpn;
  // No secret may go to this host: nothing to swap, so the client talks to the real
  // server and sees its real certificate.
  if (!sh_.host_bound(swap_.host)) {
    // Recorded so an auditor sees where redirected programs went, even untouched.
    record("passthrough", "no secret is bound to this host: TLS passed through untouched");
    return decided(Next::SpliceRaw);
  }
  decided(Next::Tls);
}

void ProxySession::decided(Next next) {
  next_ = next;
  if (connected_) {
    error_code ig;
    upstream_.cancel(ig);   // the server-speaks-first watch
    proceed();
  }
}

void ProxySession::proceed() {
  switch (next_) {
    case Next::SpliceRaw: return start_splice(false);
    case Next::SpliceScan: return start_splice(true);
    case Next::Tls: return start_upstream_tls();
    case Next::Undecided: return;
  }
}

// ---- Splice ---------------------------------------------------------------------------

void ProxySession::start_splice(bool scan) {
  if (scan) {
    swap_.channel = wire::Channel::Plain;
    if (swap_.host.empty()) swap_.host = ip_literal(dest_);
    scanner_ = std::make_unique<PlainTokenScanner>(&scan_sink, &swapper_);
  }
  splice_u2c_read();
  if (hello_reading_) return;   // its completion starts the client→upstream side
  if (hello_len_ > 0) splice_c2u_write(hello_len_);
  else splice_c2u_read();
}

void ProxySession::splice_c2u_read() {
  client_.async_read_some(asio::buffer(cbuf_, kBuf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_) return;
    if (n > 0) return self->splice_c2u_write(n);
    if (ec != asio::error::eof) return self->close_all();
    // Half-close: the client is done sending; the server may still answer.
    if (self->scanner_) self->scanner_->finish();
    error_code ig;
    self->upstream_.shutdown(tcp::socket::shutdown_send, ig);
    self->c_done_ = true;
    self->direction_done();
  });
}

void ProxySession::splice_c2u_write(std::size_t n) {
  if (scanner_) scanner_->feed(cbuf_, n);
  asio::async_write(upstream_, asio::buffer(cbuf_, n), [self = shared_from_this()](const error_code& ec, std::size_t) {
    if (self->closed_) return;
    if (ec) return self->close_all();
    self->splice_c2u_read();
  });
}

void ProxySession::splice_u2c_read() {
  upstream_.async_read_some(asio::buffer(ubuf_, kBuf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_) return;
    if (n > 0) {
      asio::async_write(self->client_, asio::buffer(self->ubuf_, n), [self](const error_code& e, std::size_t) {
        if (self->closed_) return;
        if (e) return self->close_all();
        self->splice_u2c_read();
      });
      return;
    }
    if (ec != asio::error::eof) return self->close_all();
    error_code ig;
    self->client_.shutdown(tcp::socket::shutdown_send, ig);
    self->u_done_ = true;
    self->direction_done();
  });
}

// ---- TLS ------------------------------------------------------------------------------

void ProxySession::start_upstream_tls() {
  upstream_tls_.emplace(std::move(upstream_), sh_.upstream->context());
  session_key_ = swap_.host + "|" + dest_text_;
  if (Status s = sh_.upstream->prepare(upstream_tls_->native_handle(), swap_.host, session_key_,
                                       upstream_alpn(client_alpn_, sh_.opts.http2 && kH2Relay));
      !s.ok())
    return fallback_to_splice(s.error().message);
  upstream_tls_->async_handshake(TlsStream::client, [self = shared_from_this()](const error_code& ec) {
    self->on_upstream_handshake(ec);
  });
}

void ProxySession::on_upstream_handshake(const error_code& ec) {
  if (closed_) return;
  if (ec) {
    const std::string why = UpstreamTls::verify_failure(upstream_tls_->native_handle());
    return fallback_to_splice(why.empty() ? "upstream TLS handshake failed: " + ec.message()
                                          : "upstream certificate does not verify: " + why);
  }
  swap_.chain = der_chain(upstream_tls_->native_handle());
  swap_.channel = wire::Channel::OpenSSL;
  const unsigned char* sel = nullptr;
  unsigned int sel_len = 0;
  SSL_get0_alpn_selected(upstream_tls_->native_handle(), &sel, &sel_len);
  upstream_alpn_.assign(reinterpret_cast<const char*>(sel), sel_len);
  start_client_tls();
}

void ProxySession::fallback_to_splice(const std::string& why) {
  // Nothing will be swapped: the client gets a fresh connection to the real server with
  // its own ClientHello, sees the real certificate, and its own verification decides.
  record("refuse", why);
  error_code ig;
  if (upstream_tls_) {
    upstream_tls_->next_layer().close(ig);
    upstream_tls_.reset();
  }
  upstream_ = tcp::socket(ex_);
  connected_ = false;
  next_ = Next::SpliceRaw;
  connect_upstream();
}

void ProxySession::start_client_tls() {
  auto leaf = sh_.opts.ca->leaf_for(swap_.host);
  if (!leaf.ok()) return fallback_to_splice("no certificate for " + swap_.host + ": " + leaf.error().message);
  leaf_ = *leaf;
  client_tls_.emplace(std::move(client_), sh_.server_ctx);
  SSL* ssl = client_tls_->native_handle();
  if (SSL_use_certificate(ssl, leaf_->cert) != 1 || SSL_use_PrivateKey(ssl, leaf_->key) != 1) return close_all();
  // The ALPN select callback answers the client with the destination's choice.
  SSL_set_ex_data(ssl, upstream_alpn_index(), &upstream_alpn_);
  // The ClientHello was already read: it is the handshake's first input.
  client_tls_->async_handshake(TlsStream::server, asio::buffer(cbuf_, hello_len_),
                               [self = shared_from_this()](const error_code& ec, std::size_t) {
                                 self->on_client_handshake(ec);
                               });
}

void ProxySession::on_client_handshake(const error_code& ec) {
  if (closed_) return;
  if (ec) return close_all();   // e.g. the client does not trust the run's CA
  const unsigned char* sel = nullptr;
  unsigned int sel_len = 0;
  SSL_get0_alpn_selected(client_tls_->native_handle(), &sel, &sel_len);
  h2_ = sel_len == 2 && std::memcmp(sel, "h2", 2) == 0;
  state_dropped_ = false;
  tls_c2u_read();
  // h2: the server's first frames (its SETTINGS come unasked) wait until the client's
  // preface has made the connection's HTTP/2 engine, which then follows the server's
  // frames from the first byte (see start_u2c_once).
  if (!h2_) start_u2c_once();
}

void ProxySession::start_u2c_once() {
  if (u2c_started_) return;
  u2c_started_ = true;
  tls_u2c_read();
}

void ProxySession::tls_c2u_read() {
  if (c_done_) return;
  if (u_done_) return tls_c2u_end(false);
  c_reading_ = true;
  client_tls_->async_read_some(asio::buffer(cbuf_, kBuf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    self->on_tls_c2u_read(ec, n);
  });
}

void ProxySession::on_tls_c2u_read(const error_code& ec, std::size_t n) {
  c_reading_ = false;
  if (closed_) return;
  if (u_writing_) {   // an idle flush is being written: finish that first
    parked_ = true;
    parked_ec_ = ec;
    parked_n_ = n;
    return;
  }
  ++idle_gen_;
  if (n == 0) {
    if (u_done_ && ec == asio::error::operation_aborted) return tls_c2u_end(false);   // we cancelled it
    if (!benign_end(ec)) return close_all();   // reset, TLS alert: nothing more to relay
    return tls_c2u_end(true);
  }
  const char* data = cbuf_;
  std::size_t len = n;
  if (h2_ && !u2c_started_) {
    // The engine knows an h2 connection by its whole preface in the first write.
    h2_head_.append(cbuf_, n);
    if (h2_head_.size() < kH2PrefaceLen) return tls_c2u_read();
    data = h2_head_.data();
    len = h2_head_.size();
  }
  // The shim's write path, unchanged: tokens swapped, Basic credentials, framing fixed
  // up, requests held until their body is complete; h2 frames rewritten by the HTTP/2
  // engine. What it writes lands in obuf_.
  const preload::WriteOutcome r =
      preload::outbound_write(*sh_.table, this, data, len, sh_.fixup_lengths, ops_, wops_);
  if (r == preload::WriteOutcome::Failed) return close_all();
  if (h2_ && !u2c_started_) {
    if (r == preload::WriteOutcome::PassThrough) obuf_.append(data, len);
    wipe(h2_head_.data(), h2_head_.size());
    h2_head_.clear();
    start_u2c_once();
    if (r == preload::WriteOutcome::PassThrough) return tls_c2u_write();
  }
  if (r == preload::WriteOutcome::PassThrough && !obuf_.empty()) {
    // Something held was written first (a held request that could not grow): this
    // chunk follows it in the same write.
    obuf_.append(cbuf_, n);
    return tls_c2u_write();
  }
  if (r == preload::WriteOutcome::PassThrough) {
    u_writing_ = true;
    asio::async_write(*upstream_tls_, asio::buffer(cbuf_, n), [self = shared_from_this()](const error_code& e, std::size_t) {
      self->on_tls_c2u_written(e);
    });
    return;
  }
  if (obuf_.empty()) return on_tls_c2u_written({});   // all held for now
  tls_c2u_write();
}

void ProxySession::tls_c2u_write() {
  u_writing_ = true;
  asio::async_write(*upstream_tls_, asio::buffer(obuf_), [self = shared_from_this()](const error_code& e, std::size_t) {
    self->on_tls_c2u_written(e);
  });
}

void ProxySession::on_tls_c2u_written(const error_code& ec) {
  u_writing_ = false;
  if (!obuf_.empty()) {
    wipe(obuf_.data(), obuf_.size());   // it held values
    obuf_.clear();
    if (obuf_.capacity() > 4 * kBuf) obuf_.shrink_to_fit();
  }
  if (closed_) return;
  if (ec) return close_all();
  if (parked_) {
    parked_ = false;
    return on_tls_c2u_read(parked_ec_, parked_n_);
  }
  if (c_done_) return finish_c2u();       // the flush at the client's end is out
  if (c_reading_) {                       // an idle flush went out; the read is still waiting
    if (u_done_) {
      error_code ig;
      client_tls_->next_layer().cancel(ig);
      return;
    }
    if (h2_) tls_c2u_idle_flush();   // what the read side came to owe meanwhile
    return;
  }
  // Something held (a request waiting for its body, a token fragment): flush it if the
  // client then goes quiet.
  preload::ConnState* st = sh_.table->count() > 0 ? sh_.table->find(this) : nullptr;
  if (st != nullptr && st->outbound_pending.load(std::memory_order_acquire)) {
    if (!idle_timer_) idle_timer_.emplace(ex_);
    idle_timer_->expires_after(kIdleFlush);
    idle_timer_->async_wait([self = shared_from_this(), gen = idle_gen_](const error_code& e) {
      // Only when no client bytes arrived since the timer was set.
      if (!e && gen == self->idle_gen_) self->tls_c2u_idle_flush();
    });
  }
  tls_c2u_read();
  if (h2_) tls_c2u_idle_flush();   // what the read side came to owe during the write
}

void ProxySession::tls_c2u_idle_flush() {
  if (closed_ || c_done_ || u_writing_ || !c_reading_) return;
  preload::outbound_flush(*sh_.table, this, ops_, wops_);
  if (!obuf_.empty()) tls_c2u_write();
}

void ProxySession::tls_c2u_end(bool clean) {
  c_done_ = true;
  start_u2c_once();   // an h2 client that ended before its preface: the server's side ends too
  c_clean_ = clean;
  if (clean && !u_done_) {
    // The shim flushes before the client reads or shuts down: held bytes go out now.
    preload::outbound_flush(*sh_.table, this, ops_, wops_);
    if (!obuf_.empty()) {
      tls_c2u_write();   // on_tls_c2u_written → finish_c2u()
      return;
    }
  }
  finish_c2u();
}

void ProxySession::finish_c2u() {
  if (c_clean_ && !u_done_) {
    // The client finished sending: tell the server (TCP half-close; a close_notify would
    // need the TLS object that the upstream read is using), so it answers and closes
    // instead of waiting for more requests.
    error_code ig;
    upstream_tls_->next_layer().shutdown(tcp::socket::shutdown_send, ig);
  }
  direction_done();
}

void ProxySession::tls_u2c_read() {
  upstream_tls_->async_read_some(asio::buffer(ubuf_, kBuf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_) return;
    if (n == 0) {
      if (!benign_end(ec)) return self->close_all();
      // Bytes the inbound stream held back are final now: they go first.
      if (self->drain_inbound(true)) return self->tls_u2c_write_then([self] { self->tls_u2c_end(); });
      return self->tls_u2c_end();
    }
    if (!preload::inbound_active(*self->sh_.table, self.get())) {
      asio::async_write(*self->client_tls_, asio::buffer(self->ubuf_, n), [self](const error_code& e, std::size_t) {
        if (self->closed_) return;
        if (e) return self->close_all();
        self->tls_u2c_read();
      });
      return;
    }
    // A connection that carries a value: the response goes through the inbound stream,
    // which replaces echoed values (in any encoding, across reads and chunks) by their
    // tokens and refuses a content-coded body.
    std::size_t off = 0;
    bool failed = false, stalled = false;
    while (off < n && !failed) {
      const std::size_t k = preload::inbound_push(*self->sh_.table, self.get(),
                                                  reinterpret_cast<const unsigned char*>(self->ubuf_) + off, n - off,
                                                  self->ops_, &failed);
      off += k;
      self->drain_inbound(false);
      if (k == 0 && stalled) break;   // nothing taken even after a drain
      stalled = k == 0;
    }
    // The HTTP/2 engine parses only while its output has room for a frame: after the
    // drain, frames it took but did not parse yet come out with more (empty) pushes.
    while (self->h2_ && !failed) {
      const std::size_t before = self->dbuf_.size();
      preload::inbound_push(*self->sh_.table, self.get(), reinterpret_cast<const unsigned char*>(self->ubuf_), 0,
                            self->ops_, &failed);
      self->drain_inbound(false);
      if (self->dbuf_.size() == before) break;
    }
    // failed: the broker audited it. off < n: bytes the stream would not take would be
    // lost when the next read reuses the buffer; a reset is better than a cut response.
    if (failed || off < n) return self->close_all();
    // What the HTTP/2 engine's read side owes the server (RST_STREAM of a refused stream,
    // credit for the DATA it dropped) goes now, not only with the client's next write: a
    // client that only reads would otherwise leave the server's window shut.
    if (self->h2_) self->tls_c2u_idle_flush();
    if (self->dbuf_.empty()) return self->tls_u2c_read();
    self->tls_u2c_write_then([self] { self->tls_u2c_read(); });
  });
}

bool ProxySession::drain_inbound(bool at_end) {
  if (!preload::inbound_active(*sh_.table, this)) return !dbuf_.empty();
  if (at_end) preload::inbound_finish(*sh_.table, this, ops_);
  unsigned char tmp[4096];
  std::size_t used = 0;   // the most of tmp any take filled: what needs wiping
  for (;;) {
    const std::size_t k = preload::inbound_take(*sh_.table, this, tmp, sizeof tmp);
    if (k == 0) break;
    used = std::max(used, k);
    dbuf_.append(reinterpret_cast<const char*>(tmp), k);
  }
  if (used > 0) wipe(tmp, used);
  return !dbuf_.empty();
}

void ProxySession::tls_u2c_write_then(std::function<void()> next) {
  asio::async_write(*client_tls_, asio::buffer(dbuf_), [self = shared_from_this(), next = std::move(next)](const error_code& e, std::size_t) {
    wipe(self->dbuf_.data(), self->dbuf_.size());
    self->dbuf_.clear();
    if (self->closed_) return;
    if (e) return self->close_all();
    next();
  });
}

void ProxySession::tls_u2c_end() {
  u_done_ = true;
  // The server is done: the client cannot be answered any more, so its side ends
  // too (a client read still waiting is cancelled; a write in flight finishes).
  if (c_reading_ && !u_writing_) {
    error_code ig;
    client_tls_->next_layer().cancel(ig);
  }
  direction_done();
}

// ---- End ------------------------------------------------------------------------------

void ProxySession::direction_done() {
  // A flush write still going out comes back here when it is done.
  if (closed_ || !c_done_ || !u_done_ || finishing_ || u_writing_) return;
  finishing_ = true;
  drop_state();
  if (client_tls_) {
    // close_notify to the client without waiting for its own: its read side is shut, so
    // the shutdown's wait for the peer ends at once.
    error_code ig;
    client_tls_->next_layer().shutdown(tcp::socket::shutdown_receive, ig);
    client_tls_->async_shutdown([self = shared_from_this()](const error_code&) { self->close_all(); });
    return;
  }
  close_all();
}

void ProxySession::drop_state() {
  if (state_dropped_) return;
  state_dropped_ = true;
  // Reports a held token fragment and the uses of connection grants, then wipes.
  preload::conn_drop(*sh_.table, this, ops_);
}

void ProxySession::abort() {
  if (closed_) return;
  close_all();
}

void ProxySession::close_all() {
  if (closed_) return;
  closed_ = true;
  drop_state();
  error_code ig;
  if (idle_timer_) idle_timer_->cancel();
  if (client_tls_) client_tls_->next_layer().close(ig);
  if (upstream_tls_) upstream_tls_->next_layer().close(ig);
  client_.close(ig);
  upstream_.close(ig);
}

}  // namespace kz
