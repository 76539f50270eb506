// SHA-256 with no dependencies and no allocation, for the preload shim (which links
// nothing but libc): it hashes a SigV4 request's body when the request carries no
// x-amz-content-sha256 header, so that the broker can rebuild the canonical request
// (kz/sigv4.h). The launcher uses it too (kz/digest.h): OpenSSL's first digest costs a
// `kz run` 1.6 ms of start-up. Tests check it against OpenSSL.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::wire {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t n);
  // The 32-byte digest; the object must not be updated afterwards.
  void finish(unsigned char out[32]);

 private:
  void block(const unsigned char* p);
  std::uint32_t h_[8];
  unsigned char buf_[64];
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

// Lower-case hex of SHA-256(data) into out[0, 64).
void sha256_hex(const void* data, std::size_t n, char out[64]);

}  // namespace kz::wire
