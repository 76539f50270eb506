// Finding tokens in a buffer: the shim's fast path. No allocation, no locks, no system
// calls; a buffer without the prefix costs one memmem-class scan.
#pragma once

#include <cstddef>

namespace kz::wire {

// Offset of the first "KZ_TOK_" in [p, p+n), or n when there is none.
std::size_t find_token_prefix(const char* p, std::size_t n);

namespace detail {
// The vector variants behind find_token_prefix, for tests (each falls back to the
// portable search where the CPU lacks it).
std::size_t find_token_prefix_sse2(const char* p, std::size_t n);
std::size_t find_token_prefix_avx2(const char* p, std::size_t n);
}  // namespace detail

// Length of the token that starts at p (prefix plus its base62 run), looking at most n
// bytes. Precondition: p starts with the prefix (n >= kTokenPrefixLen).
std::size_t token_extent(const char* p, std::size_t n);

// How many bytes at the end of [p, p+n) form a proper, non-empty prefix of "KZ_TOK_"
// (1..6), e.g. 3 for a buffer ending in "KZ_"; 0 otherwise.
std::size_t trailing_prefix_len(const char* p, std::size_t n);

}  // namespace kz::wire
