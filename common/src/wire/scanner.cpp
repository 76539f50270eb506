#include "kz/wire/scanner.h"

#include <atomic>
#include <cstring>

#include "kz/wire/token.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kz::wire {

namespace {

// The search looks at three bytes of every position in whole vectors at once: the first
// byte, the seventh and the tenth. "KZ_TOK_" and the letter markers ("kztokqx",
// "KZTOKQX") all have 'k' (either case) first; the seventh is '_' or 'x' (either case);
// the digit marker has '7' first and '4' tenth. Only where those match are the bytes
// between compared. Random or compressed data has a candidate every 20000 bytes or so,
// text almost never: the scan stays at memory speed instead of memmem's ~5 GB/s per
// needle. (The two-byte filter of Wojciech Muła's "SIMD-friendly algorithms for
// substring searching", written for these fixed needles.)
constexpr std::size_t kSeventh = kTokenPrefixLen - 1;   // offset of the plain prefix's trailing '_'
constexpr std::size_t kTenth = kMarkerDigitLen - 1;     // offset of the digit marker's last byte
static_assert(kMarkerLetterLen == kTokenPrefixLen, "the letter markers share the plain prefix's filter");

// The last few bytes after the vector loop (and short buffers): a plain loop beats any
// set-up cost there. Every marker starts with 'k', 'K' or '7': one compare per byte
// before any memcmp.
std::size_t finish_bytewise(const char* p, std::size_t n, std::size_t from) {
  for (std::size_t j = from; j + kTokenPrefixLen <= n; ++j) {
    const unsigned char c = static_cast<unsigned char>(p[j]);
    if ((c | 0x20) != 'k' && c != '7') continue;
    if (marker_at(p + j, n - j) != 0) return j;
  }
  return n;
}

#if defined(__x86_64__)
// Bytes of the 16 positions at p where a marker may start: 0xff, else 0.
inline __m128i candidates_sse2(const char* p) {
  const __m128i k = _mm_set1_epi8('k'), x = _mm_set1_epi8('x'), us = _mm_set1_epi8('_'),
                seven = _mm_set1_epi8('7'), four = _mm_set1_epi8('4'), fold = _mm_set1_epi8(0x20);
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kSeventh));
  const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kTenth));
  const __m128i letters = _mm_and_si128(
      _mm_cmpeq_epi8(_mm_or_si128(a, fold), k),
      _mm_or_si128(_mm_cmpeq_epi8(b, us), _mm_cmpeq_epi8(_mm_or_si128(b, fold), x)));
  const __m128i digits = _mm_and_si128(_mm_cmpeq_epi8(a, seven), _mm_cmpeq_epi8(c, four));
  return _mm_or_si128(letters, digits);
}

// The first marker among the candidate positions of mask (bits from p + at), or false.
inline bool first_in_mask(const char* p, std::size_t n, std::size_t at, unsigned mask, std::size_t* found) {
  while (mask != 0) {
    const unsigned bit = static_cast<unsigned>(__builtin_ctz(mask));
    if (marker_at(p + at + bit, n - at - bit) != 0) {
      *found = at + bit;
      return true;
    }
    mask &= mask - 1;
  }
  return false;
}

std::size_t find_sse2(const char* p, std::size_t n) {
  std::size_t i = 0, found = 0;
  for (; i + kTenth + 16 <= n; i += 16)
    if (first_in_mask(p, n, i, static_cast<unsigned>(_mm_movemask_epi8(candidates_sse2(p + i))), &found)) return found;
  // The positions left where a whole vector still fits: one last vector ending at the
  // end, overlapping what was looked at (no marker there, so the first it finds is the
  // first). Then the few positions only a letter marker fits in.
  if (n >= kTenth + 16 && i < n - kTenth) {
    const std::size_t last = n - kTenth - 16;
    if (first_in_mask(p, n, last, static_cast<unsigned>(_mm_movemask_epi8(candidates_sse2(p + last))), &found))
      return found;
    i = n - kTenth;
  }
  return finish_bytewise(p, n, i);
}

// Bytes of the 32 positions at p where a marker may start: 0xff, else 0.
__attribute__((target("avx2"), always_inline)) inline __m256i candidates(const char* p) {
  const __m256i k = _mm256_set1_epi8('k'), x = _mm256_set1_epi8('x'), us = _mm256_set1_epi8('_'),
                seven = _mm256_set1_epi8('7'), four = _mm256_set1_epi8('4'), fold = _mm256_set1_epi8(0x20);
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kSeventh));
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kTenth));
  const __m256i letters = _mm256_and_si256(
      _mm256_cmpeq_epi8(_mm256_or_si256(a, fold), k),
      _mm256_or_si256(_mm256_cmpeq_epi8(b, us), _mm256_cmpeq_epi8(_mm256_or_si256(b, fold), x)));
  const __m256i digits = _mm256_and_si256(_mm256_cmpeq_epi8(a, seven), _mm256_cmpeq_epi8(c, four));
  return _mm256_or_si256(letters, digits);
}

// The first of the 32 positions at p + at whose candidate byte is set that holds a
// marker (*found, as an offset from p); false when none does (a candidate that is no
// marker: random data has one every ~9 KiB).
__attribute__((target("avx2"), always_inline)) inline bool first_marker(const char* p, std::size_t n, std::size_t at,
                                                                        __m256i cand, std::size_t* found) {
  return first_in_mask(p, n, at, static_cast<unsigned>(_mm256_movemask_epi8(cand)), found);
}

__attribute__((target("avx2"))) std::size_t find_avx2(const char* p, std::size_t n) {
  std::size_t i = 0, found = 0;
  // 128 bytes per step; a step with a candidate is looked at 32 bytes at a time, and the
  // 128-byte steps go on after it (they must: one stray candidate early in a 64 KiB write
  // would otherwise send the rest of the buffer through the slower loop below).
  for (; i + kTenth + 128 <= n; i += 128) {
    const __m256i c0 = candidates(p + i), c1 = candidates(p + i + 32), c2 = candidates(p + i + 64),
                  c3 = candidates(p + i + 96);
    const __m256i any = _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3));
    if (_mm256_testz_si256(any, any)) continue;
    if (first_marker(p, n, i, c0, &found) || first_marker(p, n, i + 32, c1, &found) ||
        first_marker(p, n, i + 64, c2, &found) || first_marker(p, n, i + 96, c3, &found))
      return found;
  }
  for (; i + kTenth + 32 <= n; i += 32)
    if (first_marker(p, n, i, candidates(p + i), &found)) return found;
  // As in find_sse2: one last vector ending at the end, overlapping checked positions.
  if (n >= kTenth + 32 && i < n - kTenth) {
    const std::size_t last = n - kTenth - 32;
    if (first_marker(p, n, last, candidates(p + last), &found)) return found;
    i = n - kTenth;
  } else if (n < kTenth + 32) {
    return find_sse2(p, n);   // too short for one vector of 32
  }
  return finish_bytewise(p, n, i);   // the last positions, where only a letter marker fits
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
  return finish_bytewise(p, n, 0);
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
std::size_t find_token_prefix_sse2(const char* p, std::size_t n) { return finish_bytewise(p, n, 0); }
std::size_t find_token_prefix_avx2(const char* p, std::size_t n) { return finish_bytewise(p, n, 0); }
#endif
}  // namespace detail

std::size_t marker_at(const char* p, std::size_t n) {
  if (n >= kTokenPrefixLen && (std::memcmp(p, kTokenPrefix, kTokenPrefixLen) == 0 ||
                               std::memcmp(p, kMarkerLower, kMarkerLetterLen) == 0 ||
                               std::memcmp(p, kMarkerUpper, kMarkerLetterLen) == 0))
    return kTokenPrefixLen;
  if (n >= kMarkerDigitLen && std::memcmp(p, kMarkerDigits, kMarkerDigitLen) == 0) return kMarkerDigitLen;
  return 0;
}

bool is_plain_marker(const char* p, std::size_t n) {
  return n >= kTokenPrefixLen && std::memcmp(p, kTokenPrefix, kTokenPrefixLen) == 0;
}

namespace {
// The first byte of some marker: what every fragment starts with.
inline bool may_start_marker(char c) {
  return c == kTokenPrefix[0] || c == kMarkerLower[0] || c == kMarkerUpper[0] || c == kMarkerDigits[0];
}
}  // namespace

bool is_marker_fragment(const char* p, std::size_t n) {
  if (n == 0 || !may_start_marker(p[0])) return false;
  return (n < kTokenPrefixLen && std::memcmp(p, kTokenPrefix, n) == 0) ||
         (n < kMarkerLetterLen && std::memcmp(p, kMarkerLower, n) == 0) ||
         (n < kMarkerLetterLen && std::memcmp(p, kMarkerUpper, n) == 0) ||
         (n < kMarkerDigitLen && std::memcmp(p, kMarkerDigits, n) == 0);
}

std::size_t token_extent(const char* p, std::size_t n) {
  const bool plain = is_plain_marker(p, n);
  std::size_t i = plain ? kTokenPrefixLen : marker_at(p, n);
  if (plain) {
    while (i < n && i < kMaxTokenLen && is_base62(static_cast<unsigned char>(p[i]))) ++i;
  } else {
    while (i < n && i < kMaxTokenLen && is_shaped_text(static_cast<unsigned char>(p[i]))) ++i;
  }
  return i;
}

std::size_t trailing_prefix_len(const char* p, std::size_t n) {
  // A fragment of length k starts at n - k: test the first byte before comparing.
  for (std::size_t k = kMaxMarkerLen - 1; k >= 1; --k)
    if (n >= k && may_start_marker(p[n - k]) && is_marker_fragment(p + n - k, k)) return k;
  return 0;
}

}  // namespace kz::wire
