// `Authorization: Basic <base64>` and `Proxy-Authorization: Basic <base64>`: a token
// inside the credential is invisible to the plain "KZ_TOK_" scan, so request heads are
// searched for these headers, the credential decoded, tokens swapped inside, and the
// result re-encoded. Pure functions, no allocation.
#pragma once

#include <cstddef>

namespace kz::preload {

struct B64Span {
  std::size_t pos = 0, len = 0;   // the base64 text (after "Basic ", up to CR/LF/space)
};

// Finds Basic credentials in the head [p, p+head_end) (header names case-insensitive).
// Returns how many were stored in spans (at most max).
std::size_t find_basic_credentials(const char* p, std::size_t head_end, B64Span* spans, std::size_t max);

// Cheap pre-check for the fast path: could [p, p+n) hold a Basic header? (Looks for
// "basic" in any case followed by a space or tab; callers confirm with
// find_basic_credentials.)
bool may_hold_basic(const char* p, std::size_t n);

// Standard base64 (with '=' padding). decode returns the decoded length, or -1 (bad input
// or output too small). encode returns the encoded length, or -1 when out is too small.
long b64_decode(const char* in, std::size_t n, unsigned char* out, std::size_t cap);
long b64_encode(const unsigned char* in, std::size_t n, char* out, std::size_t cap);

}  // namespace kz::preload
