// Does a TLS peer's certificate chain verify for a host under kz's own trust store?
// The shim sends the chain it saw in the agent's handshake; kz decides with its own
// trust anchors (the system store plus [blind] ca_file), so an agent that disables
// verification or trusts a CA of its own choosing cannot make kz hand a value to a
// peer kz would not trust.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "kz/result.h"

struct x509_store_st;   // OpenSSL's X509_STORE

namespace kz {

class PeerVerifier {
 public:
  // ca_file: extra trust anchors (PEM) beside the system store; empty for none.
  static Result<PeerVerifier> create(const std::string& ca_file);
  PeerVerifier(PeerVerifier&&) noexcept;
  ~PeerVerifier();

  // `chain`: DER certificates, leaf first, concatenated. `host`: a DNS name or an IP
  // literal. Empty string: verified; otherwise the reason it did not verify.
  std::string verify(std::string_view chain, std::string_view host);
  // The trust anchors (the system store and ca_file), for a TLS context that verifies
  // against the same ones: the fallback proxy's upstream connections share them rather
  // than parse the system bundle again (~35 ms at every blind start). Lives as long as
  // this verifier; a context takes its own reference (SSL_CTX_set1_cert_store).
  x509_store_st* store() const;

 private:
  struct Impl;
  explicit PeerVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kz
