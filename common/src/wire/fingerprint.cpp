#include "kz/wire/fingerprint.h"

namespace kz::wire {

std::uint64_t fp_hash(const unsigned char* p, std::size_t n, std::uint64_t base) {
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < n; ++i) h = fp_addmod(fp_mulmod(h, base), p[i]);
  return h;
}

std::uint64_t fp_pow(std::uint64_t base, std::size_t k) {
  std::uint64_t r = 1, b = base % kFingerprintModulus;
  while (k > 0) {
    if (k & 1) r = fp_mulmod(r, b);
    b = fp_mulmod(b, b);
    k >>= 1;
  }
  return r;
}

}  // namespace kz::wire
