// One connection through the fallback proxy, from accept to close. Everything a
// connection does runs on its own strand (an SSL object is never used by two threads),
// and its errors end only this connection.
//
//   accept → where was it going (ProxyOptions.original)? → shim-served program: splice
//   → read the ClientHello (meanwhile connect to the destination; a server that speaks
//     first means this is no TLS client: splice)
//   → not TLS: splice, reporting the tokens seen → TLS to a host no secret is bound to:
//     splice (the client sees the real certificate) → bound host: verified TLS upstream
//     first (failure: audit, fresh connection, splice), then terminate the client's TLS
//     with a leaf of the run's CA and relay through the shim's rewrite.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kz/preload/conn_table.h"
#include "proxy/decide_transport.h"
#include "proxy/held_io.h"
#include "proxy/plain_scan.h"
#include "proxy/tls_proxy.h"
#include "proxy/upstream_tls.h"

namespace kz {

class ProxySession;

// What every connection of one proxy shares. Outlives its sessions.
struct ProxyShared {
  ProxyOptions opts;
  boost::asio::ssl::context server_ctx{boost::asio::ssl::context::tls_server};
  std::unique_ptr<UpstreamTls> upstream;
  std::unique_ptr<preload::ConnTable> table;   // the rewrite's per-connection state
  bool fixup_lengths = false;
  sockaddr_storage listen4{}, listen6{};       // to refuse a connection to the proxy itself
  std::atomic<std::uint64_t> next_conn_id{1};
  // Stand-ins for I/O threads whose handler waits for an approval (held_io.h).
  HeldIo held;

  // Live sessions, for stop().
  std::mutex mu;
  std::unordered_map<ProxySession*, std::weak_ptr<ProxySession>> live;
  bool stopping = false;

  // Some secret of the run may be used with this host.
  bool host_bound(const std::string& host) const;
  void audit(AuditEvent event) const;
};

class ProxySession : public std::enable_shared_from_this<ProxySession> {
 public:
  // `client`'s executor is the session's strand.
  ProxySession(ProxyShared& sh, boost::asio::ip::tcp::socket client);
  ~ProxySession();
  ProxySession(const ProxySession&) = delete;
  ProxySession& operator=(const ProxySession&) = delete;

  boost::asio::any_io_executor get_executor() const { return ex_; }
  void start();   // on the strand
  void abort();   // on the strand: close everything now (stop(), errors)

 private:
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;
  using TlsStream = boost::asio::ssl::stream<tcp::socket>;
  enum class Next { Undecided, SpliceRaw, SpliceScan, Tls };

  // Start-up.
  void connect_upstream();
  void on_connected(const error_code& ec);
  void read_hello();
  void on_hello_read(const error_code& ec, std::size_t n);
  void on_upstream_readable(const error_code& ec);
  void decided(Next next);
  void proceed();
  // Splice.
  void start_splice(bool scan);
  void splice_c2u_read();
  void splice_c2u_write(std::size_t n);
  void splice_u2c_read();
  // TLS.
  void start_upstream_tls();
  void on_upstream_handshake(const error_code& ec);
  void fallback_to_splice(const std::string& why);
  void start_client_tls();
  void on_client_handshake(const error_code& ec);
  void start_u2c_once();
  void tls_c2u_read();
  void on_tls_c2u_read(const error_code& ec, std::size_t n);
  void tls_c2u_write();
  void on_tls_c2u_written(const error_code& ec);
  void tls_c2u_end(bool clean);
  void finish_c2u();
  void tls_u2c_read();
  // Moves the inbound stream's final bytes into dbuf_ (all of them at the upstream's end);
  // true when dbuf_ has bytes for the client.
  bool drain_inbound(bool at_end);
  void tls_u2c_write_then(std::function<void()> next);
  void tls_u2c_end();
  void tls_c2u_idle_flush();
  // End.
  void direction_done();
  void close_all();
  void drop_state();
  // One "proxy" audit record for this connection (decision: refuse, passthrough).
  void record(const char* decision, const std::string& reason);
  static bool write_all_cb(void* ctx, const char* p, std::size_t n);

  ProxyShared& sh_;
  boost::asio::any_io_executor ex_;
  tcp::socket client_;
  tcp::socket upstream_;
  std::string session_key_;   // before the streams: the upstream SSL points at it
  std::optional<TlsStream> client_tls_, upstream_tls_;
  std::optional<boost::asio::steady_timer> idle_timer_;
  sockaddr_storage dest_{};
  std::string dest_text_;
  std::vector<std::string> client_alpn_;   // the ClientHello's ALPN offer
  std::string upstream_alpn_;              // what the destination selected ("" none)
  bool h2_ = false;                        // the client's TLS negotiated h2
  bool u2c_started_ = false;               // the upstream→client relay runs
  std::string h2_head_;                    // h2: the client's first bytes, until the whole preface

  // Two relay buffers (client→upstream, upstream→client), one allocation.
  std::unique_ptr<char[]> mem_;
  char* cbuf_ = nullptr;
  char* ubuf_ = nullptr;
  std::size_t hello_len_ = 0;

  Next next_ = Next::Undecided;
  bool connected_ = false, hello_reading_ = false, hello_done_ = false;
  bool c_done_ = false, u_done_ = false, closed_ = false, finishing_ = false;
  bool state_dropped_ = true;   // false while the rewrite may hold state for this connection
  // TLS relay, client→upstream: one read or one write at a time (backpressure), except
  // that an idle flush may write while a read waits; a read that completes meanwhile is
  // parked until the write is done.
  bool c_reading_ = false, u_writing_ = false, parked_ = false, c_clean_ = false;
  std::uint64_t idle_gen_ = 0;   // client reads so far: a stale idle timer does nothing
  error_code parked_ec_;
  std::size_t parked_n_ = 0;
  std::string obuf_;   // rewritten bytes for the upstream (wiped after each write)
  std::string dbuf_;   // redacted bytes for the client (wiped after each write)

  SwapContext swap_;
  ProxySwapClient swapper_{swap_};
  preload::BrokerOps ops_{};
  preload::WriteOps wops_{};
  std::unique_ptr<PlainTokenScanner> scanner_;
  std::shared_ptr<const LeafCert> leaf_;
};

}  // namespace kz
