// TLS toward the real destination, for the fallback proxy: a client SSL_CTX that trusts
// the system store plus [blind] ca_file (the same anchors as the broker's PeerVerifier),
// TLS 1.2 or later, ALPN from the client's own offer (the protocols the proxy can relay:
// http/1.1, http/1.0, and h2 when allowed), full verification of the peer for the host
// the agent asked for (name or IP literal), and client-side session resumption per
// (host, address) so repeated connections skip the full handshake.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "kz/result.h"

namespace kz {

class UpstreamTls {
 public:
  // `anchors`: the broker's trust store (PeerVerifier::store()); the context takes a
  // reference of its own.
  static std::unique_ptr<UpstreamTls> create(X509_STORE* anchors);
  ~UpstreamTls();
  UpstreamTls(const UpstreamTls&) = delete;
  UpstreamTls& operator=(const UpstreamTls&) = delete;

  boost::asio::ssl::context& context() { return ctx_; }
  // Readies one connection's SSL before its handshake: SNI (DNS names only), the name or
  // IP the certificate must match, ALPN (`alpn`, wire format, from upstream_alpn()), and
  // a session to resume for `session_key`.
  Status prepare(SSL* ssl, const std::string& host, const std::string& session_key, const std::string& alpn);
  // Why the handshake of `ssl` failed verification ("" when it did not fail that way).
  static std::string verify_failure(SSL* ssl);

 private:
  UpstreamTls();
  static int on_new_session(SSL* ssl, SSL_SESSION* sess);
  void store_session(const std::string& key, SSL_SESSION* sess);

  boost::asio::ssl::context ctx_;
  std::mutex mu_;
  std::map<std::string, SSL_SESSION*> sessions_;   // one reference each
};

// The ALPN offer toward the destination (wire format: <len><name>...): the protocols of
// the client's offer, in its order, that the proxy can relay (http/1.1, http/1.0, and h2
// when `h2` is true). Nothing left (or no offer at all): http/1.1, as before ALPN.
std::string upstream_alpn(const std::vector<std::string>& client_offer, bool h2);

// The protocol to answer the client with (server-side ALPN), given the client's offer
// (wire format) and what the destination selected ("" for none): the destination's
// choice when the client offered it, else http/1.1 when the destination chose nothing
// and the client offers it; false: no ALPN answer. *out points into `offer`.
bool select_client_alpn(const unsigned char* offer, unsigned int offer_len, const std::string& upstream_selected,
                        const unsigned char** out, unsigned char* out_len);

// True for an IPv4 or IPv6 literal (brackets allowed).
bool is_ip_literal(const std::string& host);

}  // namespace kz
