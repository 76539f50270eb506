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

 private:
  struct Impl;
  explicit PeerVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kz
