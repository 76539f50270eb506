#include "proxy/upstream_tls.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace kz {

namespace {

constexpr std::size_t kMaxSessions = 1024;

// ex_data slot on each upstream SSL: its session key (a std::string owned by the
// connection, alive for the SSL's lifetime).
int session_key_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// The owner of an SSL_CTX, for the new-session callback.
int ctx_owner_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

std::string strip_brackets(const std::string& h) {
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') return h.substr(1, h.size() - 2);
  return h;
}

}  // namespace

std::string upstream_alpn(const std::vector<std::string>& client_offer, bool h2) {
  std::string out;
  for (const std::string& p : client_offer) {
    const bool relayable = p == "http/1.1" || p == "http/1.0" || (h2 && p == "h2");
    if (!relayable || out.find(p) != std::string::npos) continue;
    out.push_back(static_cast<char>(p.size()));
    out += p;
  }
  if (out.empty()) out = std::string("\x08http/1.1", 9);
  return out;
}

bool select_client_alpn(const unsigned char* offer, unsigned int offer_len, const std::string& upstream_selected,
                        const unsigned char** out, unsigned char* out_len) {
  static const std::string kHttp11 = "http/1.1";
  const std::string& want = upstream_selected.empty() ? kHttp11 : upstream_selected;
  for (unsigned int i = 0; i < offer_len;) {
    const unsigned int len = offer[i];
    if (i + 1 + len > offer_len) break;
    if (len == want.size() && std::memcmp(offer + i + 1, want.data(), len) == 0) {
      *out = offer + i + 1;
      *out_len = static_cast<unsigned char>(len);
      return true;
    }
    i += 1 + len;
  }
  return false;
}

bool is_ip_literal(const std::string& host) {
  const std::string h = strip_brackets(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

UpstreamTls::UpstreamTls() : ctx_(boost::asio::ssl::context::tls_client) {}

UpstreamTls::~UpstreamTls() {
  for (auto& [k, s] : sessions_) SSL_SESSION_free(s);
}

std::unique_ptr<UpstreamTls> UpstreamTls::create(X509_STORE* anchors) {
  std::unique_ptr<UpstreamTls> u(new UpstreamTls());
  SSL_CTX* ctx = u->ctx_.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // The broker's anchors (the system store and [blind] ca_file), one parse for both.
  SSL_CTX_set1_cert_store(ctx, anchors);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Client sessions kept by us (per host and address), not in OpenSSL's internal cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_ex_data(ctx, ctx_owner_index(), u.get());
  SSL_CTX_sess_set_new_cb(ctx, &UpstreamTls::on_new_session);
  // No SSL_MODE_RELEASE_BUFFERS: on a keep-alive connection it frees and reallocates the
  // record buffers around every read and write (a malloc, a free and a cleanse of ~17 KiB
  // per record each way); keeping them costs ~34 KiB per open upstream connection.
  return u;
}

int UpstreamTls::on_new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* self = static_cast<UpstreamTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_owner_index()));
  auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  // Only sessions of verified handshakes reach this callback (a failed verification
  // aborts the handshake first), so resuming one does not skip a check that failed.
  if (self == nullptr || key == nullptr || key->empty() || SSL_get_verify_result(ssl) != X509_V_OK) return 0;
  try {
    self->store_session(*key, sess);
  } catch (...) {
    return 0;
  }
  return 1;   // we keep the reference
}

void UpstreamTls::store_session(const std::string& key, SSL_SESSION* sess) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    SSL_SESSION_free(it->second);
    it->second = sess;
    return;
  }
  if (sessions_.size() >= kMaxSessions) {
    // Simple bound: forget one (the cache is an optimisation, never a correctness need).
    auto victim = sessions_.begin();
    SSL_SESSION_free(victim->second);
    sessions_.erase(victim);
  }
  sessions_.emplace(key, sess);
}

Status UpstreamTls::prepare(SSL* ssl, const std::string& host_in, const std::string& session_key,
                            const std::string& alpn) {
  const std::string host = strip_brackets(host_in);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip_literal(host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
      ERR_clear_error();
      return make_error(ErrorKind::Tls, "cannot verify for IP address " + host);
    }
  } else {
    // SNI carries DNS names only (RFC 6066).
    if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1 ||
        SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
      ERR_clear_error();
      return make_error(ErrorKind::Tls, "cannot verify for host " + host);
    }
  }
  if (SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()),
                          static_cast<unsigned int>(alpn.size())) != 0) {
    ERR_clear_error();
    return make_error(ErrorKind::Tls, "cannot set ALPN");
  }
  SSL_set_ex_data(ssl, session_key_index(), const_cast<std::string*>(&session_key));
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(session_key); it != sessions_.end()) {
    SSL_set_session(ssl, it->second);
    // A TLS 1.3 ticket is meant for one use: the server sends fresh ones.
    if (SSL_SESSION_get_protocol_version(it->second) >= TLS1_3_VERSION) {
      SSL_SESSION_free(it->second);
      sessions_.erase(it);
    }
  }
  return ok_status();
}

std::string UpstreamTls::verify_failure(SSL* ssl) {
  const long v = SSL_get_verify_result(ssl);
  if (v == X509_V_OK) return {};
  return X509_verify_cert_error_string(v);
}

}  // namespace kz
