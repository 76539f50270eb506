// The run's ephemeral certificate authority for the fallback proxy: an EC P-256 key made
// at start-up that lives only in this process's memory, a self-signed CA certificate,
// and leaf certificates minted on demand for the host names (or IP literals) that
// redirected programs connect to. Redirected programs trust the CA through the bundles
// of proxy/trust_bundles.h; nothing else ever does, and it dies with the run.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "kz/result.h"

namespace kz {

struct LeafCert {
  X509* cert = nullptr;        // owned
  EVP_PKEY* key = nullptr;     // owned (one reference)
  LeafCert() = default;
  LeafCert(const LeafCert&) = delete;
  LeafCert& operator=(const LeafCert&) = delete;
  ~LeafCert();
};

class EphemeralCa {
 public:
  static Result<std::unique_ptr<EphemeralCa>> create();
  ~EphemeralCa();
  EphemeralCa(const EphemeralCa&) = delete;
  EphemeralCa& operator=(const EphemeralCa&) = delete;

  // PEM of the CA certificate (public).
  const std::string& cert_pem() const { return cert_pem_; }
  X509* cert() const { return cert_; }
  // A leaf for `host` (DNS name → SAN dNSName, IP literal → SAN iPAddress), signed by the
  // CA, valid from an hour ago for a day. Cached per host (re-minted after 12 hours);
  // thread-safe. Fails for anything that is neither a DNS name nor an IP literal.
  Result<std::shared_ptr<const LeafCert>> leaf_for(std::string_view host);

 private:
  EphemeralCa() = default;
  EVP_PKEY* ca_key_ = nullptr;
  EVP_PKEY* leaf_key_ = nullptr;   // one key for every leaf of the run
  X509* cert_ = nullptr;
  std::string cert_pem_;
  std::mutex mu_;
  // Each leaf with when it was made: a leaf is valid for a day, so a long run re-mints.
  struct CachedLeaf {
    std::shared_ptr<const LeafCert> leaf;
    std::chrono::steady_clock::time_point made;
  };
  std::map<std::string, CachedLeaf, std::less<>> leaves_;
};

}  // namespace kz
