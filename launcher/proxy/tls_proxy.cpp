#include "proxy/tls_proxy.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>

#include <spdlog/spdlog.h>
#include "proxy/proxy_session.h"
#include "core/signal_free_thread.h"

namespace kz {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Pause before accepting again after a failed accept (EMFILE/ENFILE would otherwise spin).
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);

// Server-side ALPN: the client's TLS is answered after the destination's handshake, so
// the client gets the protocol the destination selected from the offer the proxy made
// in the client's name (upstream_alpn: h2 only when [blind] http2 allows it and the
// proxy can relay it), or http/1.1 when the destination selected none.
int select_as_upstream(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                       unsigned int inlen, void*) {
  const auto* chosen = static_cast<const std::string*>(SSL_get_ex_data(ssl, upstream_alpn_index()));
  static const std::string kNone;
  return select_client_alpn(in, inlen, chosen != nullptr ? *chosen : kNone, out, outlen) ? SSL_TLSEXT_ERR_OK
                                                                                        : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

int upstream_alpn_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

struct TlsProxy::Impl {
  ProxyShared sh;
  std::vector<std::thread> threads;
  bool stopped = false;
  // One io_context per thread, each connection pinned to one of them: all of a
  // connection's handlers run on the same thread, so a request and its answer are never
  // handed between threads (each hand-off costs a wake-up and shows in the latency).
  // Declared last, destroyed first: handlers still queued at destruction hold sessions
  // that use `sh`.
  std::vector<std::unique_ptr<asio::io_context>> pool;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  // Round-robin over the pool. Atomic: while a handler of the listeners' thread waits for
  // an approval, a stand-in runs them (held_io.h), and both accept loops may run at once.
  std::atomic<std::size_t> next{0};
  asio::io_context& ioc() { return *pool.front(); }
  // The listeners and their retry timers, on one strand of pool[0]: while a handler there
  // waits for an approval a stand-in runs pool[0] too (held_io.h), and an acceptor must
  // not be closed by stop() while its accept handler runs on another thread.
  std::optional<asio::strand<asio::io_context::executor_type>> listen;
  std::optional<tcp::acceptor> acc4, acc6;
  std::optional<asio::steady_timer> retry4, retry6;
  sockaddr_in l4{};
  sockaddr_in6 l6{};

  explicit Impl(ProxyOptions o, unsigned threads) {
    sh.opts = std::move(o);
    for (unsigned i = 0; i < threads; ++i) {
      // No concurrency hint of 1: while one of its handlers waits for an approval a
      // stand-in runs the io_context too (held_io.h), and with that hint asio skips the
      // wake-ups a second thread needs (the first one back would sleep on its event
      // while the reactor sat in the queue, unwatched).
      pool.push_back(std::make_unique<asio::io_context>());
      work.push_back(asio::make_work_guard(*pool.back()));
    }
    listen.emplace(asio::make_strand(ioc()));
  }
  // Stand-ins still serving an io_context end before the pool goes.
  ~Impl() { sh.held.join_all(); }
  void accept(tcp::acceptor& acc, asio::steady_timer& retry);
};

void TlsProxy::Impl::accept(tcp::acceptor& acc, asio::steady_timer& retry) {
  // Each connection gets its own strand on one io_context of the pool: its socket's
  // executor, and so every handler of its operations.
  asio::io_context& home = *pool[next.fetch_add(1, std::memory_order_relaxed) % pool.size()];
  acc.async_accept(asio::make_strand(home), [this, &acc, &retry](const error_code& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acc.is_open()) return;
    if (ec) {
      spdlog::debug("proxy: accept failed: {}", ec.message());
      retry.expires_after(kAcceptRetry);
      retry.async_wait([this, &acc, &retry](const error_code& e) {
        if (!e && acc.is_open()) accept(acc, retry);
      });
      return;
    }
    try {
      auto session = std::make_shared<ProxySession>(sh, std::move(s));
      {
        std::lock_guard lock(sh.mu);
        if (sh.stopping) return;   // session (and socket) go away here
        sh.live.emplace(session.get(), session);
      }
      auto ex = session->get_executor();
      asio::post(ex, [session] { session->start(); });
    } catch (const std::exception& e) {
      spdlog::debug("proxy: cannot set up a connection: {}", e.what());
    }
    accept(acc, retry);
  });
}

TlsProxy::TlsProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TlsProxy::~TlsProxy() { stop(); }

Result<std::unique_ptr<TlsProxy>> TlsProxy::start(ProxyOptions opts) {
  if (opts.ca == nullptr || opts.decide.table == nullptr || opts.decide.verifier == nullptr || !opts.original)
    return make_error(ErrorKind::Internal, "proxy: missing CA, token table, peer verifier or destination lookup");
  unsigned n = opts.threads;
  if (n == 0) n = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  auto impl = std::make_unique<Impl>(std::move(opts), n);
  ProxyShared& sh = impl->sh;
  sh.upstream = UpstreamTls::create(sh.opts.decide.verifier->store());
  sh.table = std::make_unique<preload::ConnTable>();
  sh.fixup_lengths = sh.opts.decide.table->needs_length_fixup();

  SSL_CTX* sctx = sh.server_ctx.native_handle();
  SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(sctx, &select_as_upstream, nullptr);
  // One resumption ticket per connection is enough for clients that reconnect.
  SSL_CTX_set_num_tickets(sctx, 1);

  try {
    error_code ec;
    impl->acc4.emplace(*impl->listen);
    impl->acc4->open(tcp::v4(), ec);
    if (!ec) impl->acc4->bind({asio::ip::address_v4::loopback(), 0}, ec);
    if (!ec) impl->acc4->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return make_error(ErrorKind::Network, "proxy: cannot listen on 127.0.0.1: " + ec.message());
    const tcp::endpoint e4 = impl->acc4->local_endpoint();
    std::memcpy(&impl->l4, e4.data(), sizeof impl->l4);
    std::memcpy(&sh.listen4, e4.data(), e4.size());

    impl->acc6.emplace(*impl->listen);
    impl->acc6->open(tcp::v6(), ec);
    if (!ec) impl->acc6->set_option(asio::ip::v6_only(true), ec);
    if (!ec) impl->acc6->bind({asio::ip::address_v6::loopback(), 0}, ec);
    if (!ec) impl->acc6->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::debug("proxy: no IPv6 listener ({})", ec.message());
      impl->acc6.reset();
    } else {
      const tcp::endpoint e6 = impl->acc6->local_endpoint();
      std::memcpy(&impl->l6, e6.data(), sizeof impl->l6);
      std::memcpy(&sh.listen6, e6.data(), e6.size());
    }
    impl->retry4.emplace(*impl->listen);
    impl->retry6.emplace(*impl->listen);
    impl->accept(*impl->acc4, *impl->retry4);
    if (impl->acc6) impl->accept(*impl->acc6, *impl->retry6);

    for (auto& ctx : impl->pool) {
      impl->threads.push_back(signal_free_thread([io = ctx.get()] {
        // Handlers do not throw (error codes everywhere); anything that still does ends
        // that handler only.
        while (true) {
          try {
            io->run();
            return;
          } catch (const std::exception& e) {
            spdlog::debug("proxy: handler failed: {}", e.what());
          }
        }
      }));
    }
  } catch (const std::exception& e) {
    return make_error(ErrorKind::Internal, std::string("proxy: cannot start: ") + e.what());
  }
  return std::unique_ptr<TlsProxy>(new TlsProxy(std::move(impl)));
}

sockaddr_in TlsProxy::listen4() const { return impl_->l4; }
sockaddr_in6 TlsProxy::listen6() const { return impl_->l6; }

void TlsProxy::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  Impl& im = *impl_;
  // Listeners first (on their strand, where their handlers run).
  asio::post(*im.listen, [&im] {
    error_code ig;
    if (im.acc4) im.acc4->close(ig);
    if (im.acc6) im.acc6->close(ig);
    if (im.retry4) im.retry4->cancel();
    if (im.retry6) im.retry6->cancel();
  });
  std::vector<std::shared_ptr<ProxySession>> sessions;
  {
    std::lock_guard lock(im.sh.mu);
    im.sh.stopping = true;
    for (auto& [p, w] : im.sh.live)
      if (auto s = w.lock()) sessions.push_back(std::move(s));
  }
  // Each session closes on its own strand; its handlers then finish with errors, and the
  // last one frees it (reporting its grants' uses).
  for (auto& s : sessions) asio::post(s->get_executor(), [s] { s->abort(); });
  sessions.clear();
  im.work.clear();
  for (auto& t : im.threads)
    if (t.joinable()) t.join();
  im.threads.clear();
  im.sh.held.join_all();   // each ended with its wait, which the gate's stop ended
  // Anything the threads did not get to (none when they drained) runs here, single-threaded.
  for (auto& ctx : im.pool) {
    ctx->restart();
    ctx->poll();
  }
  im.sh.held.join_all();   // a handler of that last poll may have waited too
}

}  // namespace kz
