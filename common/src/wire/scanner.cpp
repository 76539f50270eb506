#include "kz/wire/scanner.h"

#include <atomic>
#include <cstring>

#include "kz/wire/token.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kz::wire {

namespace {

// The search looks for 'K' and, six bytes later, '_' (the first and last bytes of
// "KZ_TOK_") in whole vectors at once, and compares the five bytes between only where
// both match. Random or compressed data has a candidate every 65536 bytes or so, text
// almost never: the scan runs at memory speed instead of memmem's ~5 GB/s. (The same
// two-byte filter idea as in Wojciech Muła's "SIMD-friendly algorithms for substring
// searching"; written for this one fixed needle.)
constexpr std::size_t kLast = kTokenPrefixLen - 1;   // offset of the trailing '_'

inline bool middle_matches(const char* p) { return std::memcmp(p + 1, kTokenPrefix + 1, kLast - 1) == 0; }

#if !defined(__x86_64__)
std::size_t finish_with_memmem(const char* p, std::size_t n, std::size_t from) {
  const void* hit = memmem(p + from, n - from, kTokenPrefix, kTokenPrefixLen);
  return hit == nullptr ? n : static_cast<std::size_t>(static_cast<const char*>(hit) - p);
}
#endif

// The last few bytes after the vector loop (fewer than 22): a plain loop beats memmem's
// set-up cost there.
std::size_t finish_bytewise(const char* p, std::size_t n, std::size_t from) {
  for (std::size_t j = from; j + kTokenPrefixLen <= n; ++j)
    if (p[j] == 'K' && p[j + kLast] == '_' && middle_matches(p + j)) return j;
  return n;
}

#if defined(__x86_64__)
std::size_t find_sse2(const char* p, std::size_t n) {
  const __m128i first = _mm_set1_epi8('K'), last = _mm_set1_epi8('_');
  std::size_t i = 0;
  for (; i + kLast + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + kLast));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first),
                                                                           _mm_cmpeq_epi8(b, last))));
    while (mask != 0) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctz(mask));
      if (middle_matches(p + i + bit)) return i + bit;
      mask &= mask - 1;
    }
  }
  return finish_bytewise(p, n, i);
}

// Bytes of the 32 positions at p where 'K' and, six later, '_' both are: 0xff, else 0.
__attribute__((target("avx2"), always_inline)) inline __m256i candidates(const char* p, __m256i first,
                                                                         __m256i last) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kLast));
  return _mm256_and_si256(_mm256_cmpeq_epi8(a, first), _mm256_cmpeq_epi8(b, last));
}

__attribute__((target("avx2"))) std::size_t find_avx2(const char* p, std::size_t n) {
  const __m256i first = _mm256_set1_epi8('K'), last = _mm256_set1_epi8('_');
  std::size_t i = 0;
  // 128 bytes per step while nothing matches (the common case); a step with a candidate
  // is looked at again 32 bytes at a time below.
  for (; i + kLast + 128 <= n; i += 128) {
    const __m256i any =
        _mm256_or_si256(_mm256_or_si256(candidates(p + i, first, last), candidates(p + i + 32, first, last)),
                        _mm256_or_si256(candidates(p + i + 64, first, last), candidates(p + i + 96, first, last)));
    if (!_mm256_testz_si256(any, any)) break;
  }
  for (; i + kLast + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + kLast));
    unsigned mask = static_cast<unsigned>(_mm256_movemask_epi8(_mm256_and_si256(_mm256_cmpeq_epi8(a, first),
                                                                                _mm256_cmpeq_epi8(b, last))));
    while (mask != 0) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctz(mask));
      if (middle_matches(p + i + bit)) return i + bit;
      mask &= mask - 1;
    }
  }
  return finish_bytewise(p, n, i);   // the last < 38 bytes
}
#endif

}  // namespace

std::size_t find_token_prefix(const char* p, std::size_t n) {
#if defined(__x86_64__)
  // 0: not yet known, 1: SSE2 (every x86-64), 2: AVX2. Racy first calls agree.
  static std::atomic<int> level{0};
  int l = level.load(std::memory_order_relaxed);
  if (l == 0) {
    __builtin_cpu_init();
    l = __builtin_cpu_supports("avx2") ? 2 : 1;
    level.store(l, std::memory_order_relaxed);
  }
  return l == 2 ? find_avx2(p, n) : find_sse2(p, n);
#else
  return finish_with_memmem(p, n, 0);
#endif
}

namespace detail {
#if defined(__x86_64__)
std::size_t find_token_prefix_sse2(const char* p, std::size_t n) { return find_sse2(p, n); }
std::size_t find_token_prefix_avx2(const char* p, std::size_t n) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") ? find_avx2(p, n) : find_sse2(p, n);
}
#else
std::size_t find_token_prefix_sse2(const char* p, std::size_t n) { return finish_with_memmem(p, n, 0); }
std::size_t find_token_prefix_avx2(const char* p, std::size_t n) { return finish_with_memmem(p, n, 0); }
#endif
}  // namespace detail

std::size_t token_extent(const char* p, std::size_t n) {
  std::size_t i = kTokenPrefixLen;
  while (i < n && i < kMaxTokenLen && is_base62(static_cast<unsigned char>(p[i]))) ++i;
  return i;
}

std::size_t trailing_prefix_len(const char* p, std::size_t n) {
  for (std::size_t k = kTokenPrefixLen - 1; k >= 1; --k)
    if (n >= k && std::memcmp(p + n - k, kTokenPrefix, k) == 0) return k;
  return 0;
}

}  // namespace kz::wire
