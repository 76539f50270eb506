// Finding tokens in a buffer: the shim's fast path. No allocation, no locks, no system
// calls; a buffer without the prefix costs one memmem-class scan.
#pragma once

#include <cstddef>

namespace kz::wire {

// Offset of the first token marker in [p, p+n), or n when there is none: "KZ_TOK_" (a
// plain token) or one of the class-shaped markers of wire/token.h.
std::size_t find_token_prefix(const char* p, std::size_t n);

namespace detail {
// The vector variants behind find_token_prefix, for tests (each falls back to the
// portable search where the CPU lacks it).
std::size_t find_token_prefix_sse2(const char* p, std::size_t n);
std::size_t find_token_prefix_avx2(const char* p, std::size_t n);
}  // namespace detail

// Length of the marker [p, p+n) starts with (7 or 10), 0 when it starts with none.
std::size_t marker_at(const char* p, std::size_t n);
// Whether [p, p+n) starts with "KZ_TOK_" (a plain token's marker).
bool is_plain_marker(const char* p, std::size_t n);
// Whether [p, p+n) (n >= 1) is a proper prefix of some marker ("KZ_", "kzto", "7306").
bool is_marker_fragment(const char* p, std::size_t n);

// Length of the token that starts at p, looking at most n bytes: a plain token is its
// prefix plus the base62 run after it; a shaped one its marker plus the [A-Za-z0-9_-]
// run after it. Precondition: p starts with a marker (marker_at(p, n) > 0).
std::size_t token_extent(const char* p, std::size_t n);

// How many bytes at the end of [p, p+n) form a proper, non-empty prefix of a marker
// (1..9), e.g. 3 for a buffer ending in "KZ_"; 0 otherwise.
std::size_t trailing_prefix_len(const char* p, std::size_t n);

}  // namespace kz::wire
