// HttpServer on Boost.Beast: N threads, each running an io_context of its own, and each
// connection pinned to one of them (round robin at accept; Beast's tcp_stream on a
// strand executor of that context): a request is read, handled and answered on one
// thread, with no wake-up of another thread on the way (with one io_context shared by
// every thread, each completion could hand the connection to the other thread). A
// session per connection reads a request with a body limit, calls the handler and writes
// the reply, keeping the connection alive while the client asks for it and the server
// is not stopping.
#include "server/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "core/signal_free_thread.h"

namespace kz {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kIdle = std::chrono::seconds(30);

// What sessions share with the server: the handler, the limit, and the count of live
// sessions that stop() waits on.
struct Shared {
  HttpServerOptions opts;
  std::unique_ptr<asio::thread_pool> pool;   // for opts.blocking requests
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  int live = 0;
  void enter() {
    std::lock_guard lock(mu);
    ++live;
  }
  void leave() {
    {
      std::lock_guard lock(mu);
      --live;
    }
    cv.notify_all();
  }
};

HttpRequestView view_of(const Shared& sh, const http::request<http::string_body>& req, const std::string& source) {
  HttpRequestView v;
  v.method = std::string(req.method_string());
  v.target = std::string(req.target());
  v.authorization = std::string(req[http::field::authorization]);
  v.content_type = std::string(req[http::field::content_type]);
  v.body = req.body();
  v.source = source;
  if (sh.opts.all_headers) {
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      v.headers.emplace_back(std::move(name), std::string(f.value()));
    }
  }
  return v;
}

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, std::shared_ptr<Shared> sh, std::string source)
      : stream_(std::move(stream)), sh_(std::move(sh)), source_(std::move(source)) {
    sh_->enter();
  }
  ~Session() { sh_->leave(); }

  void start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(kIdle);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->read();
                              });
    } else {
      read();
    }
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(sh_->opts.body_limit);
    beast::get_lowest_layer(stream_).expires_after(kIdle);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      const std::string target(parser_->get().target());
      std::optional<HttpReply> custom = sh_->opts.too_large ? sh_->opts.too_large(target) : std::nullopt;
      HttpReply r = custom ? std::move(*custom) : HttpReply{413, "application/json", R"({"error":"request too large"})", {}};
      keep_alive_ = false;
      drain_ = true;
      send(std::move(r));
      return;
    }
    if (ec) return;   // closed, timed out or malformed: the connection ends
    const auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    HttpRequestView v = view_of(*sh_, req, source_);
    if (sh_->pool && sh_->opts.blocking && sh_->opts.blocking(v)) {
      // Off the I/O threads; the reply comes back to this connection's strand.
      asio::post(*sh_->pool, [self = this->shared_from_this(), v = std::move(v)]() mutable {
        HttpReply r = self->sh_->opts.handler(v);
        asio::post(self->stream_.get_executor(),
                   [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
      });
      return;
    }
    send(sh_->opts.handler(v));
  }

  void send(HttpReply r) {
    reply_.emplace();
    reply_->version(version_);
    reply_->result(static_cast<http::status>(r.status));
    reply_->set(http::field::server, "kz");
    reply_->set(http::field::content_type, r.content_type);
    reply_->set(http::field::cache_control, "no-store");
    for (auto& [k, v] : r.headers) reply_->set(k, v);
    reply_->body() = std::move(r.body);
    reply_->keep_alive(keep_alive_ && !sh_->stopping.load());
    reply_->prepare_payload();
    write();
  }

  void write() {
    http::async_write(stream_, *reply_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->reply_->keep_alive()) {
        self->close();
        if (!ec && self->drain_) self->drain();
        return;
      }
      self->read();
    });
  }

  // After refusing an oversized request, read and discard what the client is still
  // sending (up to a bound, for a few seconds) before closing: closing a socket with
  // unread data sends a reset, and the client would see that instead of the 413.
  void drain() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    beast::get_lowest_layer(stream_).async_read_some(
        asio::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          self->drained_ += n;
          if (!ec && self->drained_ < (64u << 20)) self->drain();
        });
  }

  void close() {
    beast::error_code ec;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  Stream stream_;
  std::shared_ptr<Shared> sh_;
  std::string source_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> reply_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool drain_ = false;
  std::size_t drained_ = 0;
  std::array<char, 16384> scratch_{};
};

class BeastServer final : public HttpServer {
 public:
  explicit BeastServer(std::shared_ptr<Shared> sh) : sh_(std::move(sh)) {
    const unsigned n = sh_->opts.threads != 0 ? sh_->opts.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      pool_.push_back(std::make_unique<asio::io_context>(1));
      work_.push_back(asio::make_work_guard(*pool_.back()));
    }
    acceptor_.emplace(*pool_.front());
  }
  ~BeastServer() override { stop(0); }

  Status listen() {
    beast::error_code ec;
    const auto addr = asio::ip::make_address(sh_->opts.host, ec);
    if (ec) return make_error(ErrorKind::Usage, "--listen: not an IP address: " + sh_->opts.host);
    const tcp::endpoint ep(addr, sh_->opts.port);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return make_error(ErrorKind::Io, "cannot listen on " + sh_->opts.host + ":" + std::to_string(sh_->opts.port) +
                                           ": " + ec.message());
    port_ = acceptor_->local_endpoint().port();
    if (!sh_->opts.tls_cert.empty()) {
      ssl_.emplace(asio::ssl::context::tls_server);
      ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
      ssl_->use_certificate_chain_file(sh_->opts.tls_cert, ec);
      if (ec) return make_error(ErrorKind::Config, "--tls-cert " + sh_->opts.tls_cert + ": " + ec.message());
      ssl_->use_private_key_file(sh_->opts.tls_key, asio::ssl::context::pem, ec);
      if (ec) return make_error(ErrorKind::Config, "--tls-key " + sh_->opts.tls_key + ": " + ec.message());
    }
    return ok_status();
  }

  void run() {
    accept();
    for (auto& ioc : pool_) threads_.push_back(signal_free_thread([io = ioc.get()] { io->run(); }));
  }

  std::uint16_t port() const override { return port_; }
  bool tls() const override { return ssl_.has_value(); }

  void stop(int grace_ms) override {
    if (stopped_.exchange(true)) return;
    sh_->stopping = true;
    asio::post(acceptor_->get_executor(), [this] {
      beast::error_code ec;
      acceptor_->close(ec);
    });
    {
      // Connections idle in keep-alive are waiting for a request that may never come:
      // they are cut when the grace period ends.
      std::unique_lock lock(sh_->mu);
      sh_->cv.wait_for(lock, std::chrono::milliseconds(grace_ms), [&] { return sh_->live == 0; });
    }
    if (sh_->pool) sh_->pool->join();   // blocking handlers finish (their fetch has a timeout)
    work_.clear();
    for (auto& ioc : pool_) ioc->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  // The context of the next accepted connection (used on the accepting thread only).
  asio::io_context& next_context() { return *pool_[next_++ % pool_.size()]; }

  void accept() {
    acceptor_->async_accept(asio::make_strand(next_context()), [this](beast::error_code ec, tcp::socket sock) {
      if (ec) {
        if (!sh_->stopping) accept();
        return;
      }
      beast::error_code pec;
      const auto peer = sock.remote_endpoint(pec);
      std::string source = pec ? "" : peer.address().to_string();
      sock.set_option(tcp::no_delay(true), pec);
      if (ssl_) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(sock)), *ssl_), sh_, std::move(source))
            ->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(sock)), sh_, std::move(source))
            ->start();
      }
      accept();
    });
  }

  std::shared_ptr<Shared> sh_;
  // One io_context per thread. Declared before everything that holds their executors.
  std::vector<std::unique_ptr<asio::io_context>> pool_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::size_t next_ = 0;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<asio::ssl::context> ssl_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::string_view HttpRequestView::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions opts) {
  if (!opts.handler) return make_error(ErrorKind::Internal, "HttpServer needs a handler");
  if (opts.tls_cert.empty() != opts.tls_key.empty())
    return make_error(ErrorKind::Usage, "--tls-cert and --tls-key go together");
  auto sh = std::make_shared<Shared>();
  sh->opts = std::move(opts);
  if (sh->opts.blocking) sh->pool = std::make_unique<asio::thread_pool>(std::max(1u, sh->opts.blocking_threads));
  auto s = std::make_unique<BeastServer>(sh);
  if (auto st = s->listen(); !st) return st.take_error();
  s->run();
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace kz
