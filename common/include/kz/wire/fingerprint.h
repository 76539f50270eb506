// Rolling fingerprint of a secret value, so the shim can notice a real value coming back
// from a server (and have the broker replace it with its token) without holding the
// value: the broker gives the shim only (length, base, hash). This is a Rabin-Karp
// polynomial hash modulo the Mersenne prime 2^61-1 with a base drawn at random per run;
// a hit is only a candidate, which the broker confirms by comparing the bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::wire {

inline constexpr std::uint64_t kFingerprintModulus = (std::uint64_t{1} << 61) - 1;

constexpr std::uint64_t fp_mulmod(std::uint64_t a, std::uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  std::uint64_t lo = static_cast<std::uint64_t>(r & kFingerprintModulus);
  std::uint64_t hi = static_cast<std::uint64_t>(r >> 61);
  std::uint64_t s = lo + hi;
  return s >= kFingerprintModulus ? s - kFingerprintModulus : s;
}

constexpr std::uint64_t fp_addmod(std::uint64_t a, std::uint64_t b) {
  std::uint64_t s = a + b;
  return s >= kFingerprintModulus ? s - kFingerprintModulus : s;
}

// Hash of n bytes: sum of p[i] * base^(n-1-i), mod 2^61-1.
std::uint64_t fp_hash(const unsigned char* p, std::size_t n, std::uint64_t base);

// base^k mod 2^61-1 (the weight of the byte that leaves a window of k+1 bytes).
std::uint64_t fp_pow(std::uint64_t base, std::size_t k);

// Calls on_hit(offset) for every window of `len` bytes in [p, p+n) whose hash is `hash`.
// Returns early (false) when on_hit returns false.
template <class F>
bool fp_scan(const unsigned char* p, std::size_t n, std::size_t len, std::uint64_t base,
             std::uint64_t hash, F&& on_hit) {
  if (len == 0 || n < len) return true;
  const std::uint64_t top = fp_pow(base, len - 1);
  std::uint64_t h = fp_hash(p, len, base);
  for (std::size_t i = 0;; ++i) {
    if (h == hash && !on_hit(i)) return false;
    if (i + len >= n) return true;
    // Remove p[i], shift, add p[i+len].
    const std::uint64_t out = fp_mulmod(p[i], top);
    h = fp_addmod(h, kFingerprintModulus - out);
    h = fp_addmod(fp_mulmod(h, base), p[i + len]);
  }
}

// The scan's quick filter: the same polynomial over the integers mod 2^64 (wrapping
// arithmetic, an odd base drawn per run), a few cycles a byte where the mod 2^61-1 hash
// costs several times more. A match is checked against the mod 2^61-1 hash before
// anything goes to the broker. Both hash the whole form, so neither says more about a
// value than the other.
constexpr std::uint64_t fq_hash(const unsigned char* p, std::size_t n, std::uint64_t base) {
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < n; ++i) h = h * base + p[i];
  return h;
}
constexpr std::uint64_t fq_pow(std::uint64_t base, std::size_t k) {
  std::uint64_t r = 1;
  for (; k > 0; k >>= 1, base *= base)
    if (k & 1) r *= base;
  return r;
}

}  // namespace kz::wire
