#include "secrets/peer_verify.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <vector>

#include "core/openssl_ptr.h"
#include "kz/digest.h"

namespace kz {

namespace {

constexpr std::size_t kCacheLimit = 256;

struct StackFree { void operator()(STACK_OF(X509)* s) const { sk_X509_pop_free(s, X509_free); } };

bool is_ip_literal(const std::string& h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

}  // namespace

struct PeerVerifier::Impl {
  X509_STORE* store = nullptr;
  std::mutex mu;
  std::map<std::string, std::string> cache;   // sha256(chain) + host → "" or reason
  ~Impl() { X509_STORE_free(store); }
};

PeerVerifier::PeerVerifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerVerifier::PeerVerifier(PeerVerifier&&) noexcept = default;
PeerVerifier::~PeerVerifier() = default;

Result<PeerVerifier> PeerVerifier::create(const std::string& ca_file) {
  auto impl = std::make_unique<Impl>();
  impl->store = X509_STORE_new();
  if (impl->store == nullptr) return make_error(ErrorKind::Internal, "cannot create a certificate store");
  // The system store (honours SSL_CERT_FILE / SSL_CERT_DIR like every OpenSSL client).
  X509_STORE_set_default_paths(impl->store);
  if (!ca_file.empty() && X509_STORE_load_file(impl->store, ca_file.c_str()) != 1) {
    ERR_clear_error();
    return make_error(ErrorKind::Config, "[blind] ca_file " + ca_file + ": cannot load PEM certificates");
  }
  ERR_clear_error();
  return PeerVerifier(std::move(impl));
}

X509_STORE* PeerVerifier::store() const { return impl_->store; }

std::string PeerVerifier::verify(std::string_view chain, std::string_view host) {
  if (chain.empty()) return "no peer certificate";
  if (host.empty()) return "no host name to verify the certificate for";
  const std::string key = sha256_hex(chain) + "|" + std::string(host);
  {
    std::lock_guard lock(impl_->mu);
    if (auto it = impl_->cache.find(key); it != impl_->cache.end()) return it->second;
  }
  std::string reason;
  std::vector<X509Ptr> certs;
  const auto* p = reinterpret_cast<const unsigned char*>(chain.data());
  const unsigned char* end = p + chain.size();
  while (p < end) {
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(end - p));
    if (x == nullptr) { reason = "malformed peer certificate chain"; break; }
    certs.emplace_back(x);
  }
  if (reason.empty() && certs.empty()) reason = "no peer certificate";
  if (reason.empty()) {
    std::unique_ptr<STACK_OF(X509), StackFree> rest(sk_X509_new_null());
    for (std::size_t i = 1; i < certs.size(); ++i) {
      X509_up_ref(certs[i].get());
      sk_X509_push(rest.get(), certs[i].get());
    }
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), impl_->store, certs[0].get(), rest.get());
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    std::string h(host);
    if (!h.empty() && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    if (is_ip_literal(h)) X509_VERIFY_PARAM_set1_ip_asc(param, h.c_str());
    else X509_VERIFY_PARAM_set1_host(param, h.c_str(), h.size());
    if (X509_verify_cert(ctx.get()) != 1)
      reason = std::string("peer certificate does not verify for ") + h + ": " +
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  }
  ERR_clear_error();
  std::lock_guard lock(impl_->mu);
  if (impl_->cache.size() >= kCacheLimit) impl_->cache.clear();
  impl_->cache.emplace(key, reason);
  return reason;
}

}  // namespace kz
